export const LIFECYCLE_STATES = ['starting', 'restoring', 'running', 'draining', 'stopped', 'failed'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

const ALLOWED: Record<LifecycleState, readonly LifecycleState[]> = {
  starting: ['restoring', 'running', 'draining', 'failed'],
  restoring: ['running', 'draining', 'failed'],
  running: ['restoring', 'draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** The worker's explicit state machine: starting -> restoring <-> running -> draining -> stopped | failed. */
export class Lifecycle {
  private current: LifecycleState = 'starting';
  private readonly listeners: ((to: LifecycleState, from: LifecycleState) => void)[] = [];
  readonly history: LifecycleState[] = ['starting'];

  get state(): LifecycleState {
    return this.current;
  }

  onChange(listener: (to: LifecycleState, from: LifecycleState) => void): void {
    this.listeners.push(listener);
  }

  /** Moves to `to` if allowed; returns false (and stays) otherwise. Same-state moves are no-ops. */
  transition(to: LifecycleState): boolean {
    const from = this.current;
    if (from === to) return true;
    if (!ALLOWED[from].includes(to)) return false;
    this.current = to;
    this.history.push(to);
    for (const listener of this.listeners) listener(to, from);
    return true;
  }

  get done(): boolean {
    return this.current === 'stopped' || this.current === 'failed';
  }
}
