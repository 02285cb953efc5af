import { OrdoError } from '../errors.js';

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

  /** Resolves with the final state (stopped or failed). */
  whenDone(): Promise<LifecycleState> {
    if (this.done) return Promise.resolve(this.current);
    return new Promise((resolve) => this.onChange((to) => (to === 'stopped' || to === 'failed' ? resolve(to) : undefined)));
  }
}

/**
 * Mirrors `lifecycle` into ordo_lifecycle_state (1 for the current state, 0 for the
 * others) and, given a logger, logs each transition as `{"msg":"lifecycle","from","to"}`.
 */
export function exportLifecycle(lifecycle: Lifecycle, gauge: { set(labels: { state: string }, value: number): void }, log?: { info(msg: string, fields?: object): void }): void {
  const set = (current: LifecycleState): void => {
    for (const state of LIFECYCLE_STATES) gauge.set({ state }, state === current ? 1 : 0);
  };
  set(lifecycle.state);
  lifecycle.onChange((to, from) => {
    log?.info('lifecycle', { from, to });
    set(to);
  });
}

/**
 * Runs `drain` against a deadline of `graceMs`. Resolves with the error to fail with, or
 * undefined when it drained in time.
 */
export async function drainWithin(graceMs: number, drain: () => Promise<void>): Promise<Error | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
  let drainError: unknown;
  const outcome = await Promise.race([drain().then(() => 'drained' as const), grace]).catch((error: unknown) => {
    drainError = error;
    return 'error' as const;
  });
  clearTimeout(timer);
  if (outcome === 'drained') return undefined;
  return outcome === 'timeout' ? new OrdoError(`drain did not finish within ${graceMs} ms`) : new OrdoError('drain failed', { cause: drainError });
}
