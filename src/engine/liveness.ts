import type { Lifecycle } from './lifecycle.js';

/** A failure streak (a retry loop that has not succeeded yet, or a drain): closed when it ends. */
export interface Streak {
  /** When the streak began (ms since the epoch). */
  readonly sinceMs: number;
  close(): void;
}

/** What /healthz reports about a role that is stuck. */
export interface StuckReport {
  /** What has not made progress, e.g. "batch of partition 3" or "draining". */
  what: string;
  /** For how long, in ms. */
  forMs: number;
}

/**
 * Tells /healthz whether a role is stuck, so that Kubernetes restarts what cannot recover
 * by itself. Retry loops open a streak at their first failure and close it when they
 * succeed or give up; the lifecycle's `draining` is a streak too. A role is stuck when a
 * streak has lasted longer than its bound: `stuckAfterMs` (ORDO_STUCK_AFTER_MS) for retry
 * loops, which give up (the role fails) at that same bound, so only an attempt that hangs
 * outlives it; the shutdown grace plus `stuckAfterMs` for a drain, which is itself bounded
 * by the grace.
 */
export class Liveness {
  private readonly streaks = new Map<number, { what: string; sinceMs: number; boundMs: number }>();
  private nextId = 0;

  constructor(
    readonly stuckAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Opens a streak of `what`; stuck once it has lasted `boundMs` (default stuckAfterMs). */
  streak(what: string, boundMs = this.stuckAfterMs): Streak {
    const id = this.nextId++;
    const sinceMs = this.now();
    this.streaks.set(id, { what, sinceMs, boundMs });
    return { sinceMs, close: () => void this.streaks.delete(id) };
  }

  /** Opens a streak while `lifecycle` is draining, bounded by the drain's own grace plus stuckAfterMs. */
  watchDrain(lifecycle: Lifecycle, graceMs: number): void {
    let drain: Streak | undefined;
    lifecycle.onChange((to) => {
      if (to === 'draining') drain ??= this.streak('draining', graceMs + this.stuckAfterMs);
      else {
        drain?.close();
        drain = undefined;
      }
    });
  }

  /** The longest streak past its bound, if any. */
  stuck(): StuckReport | undefined {
    const now = this.now();
    let worst: StuckReport | undefined;
    for (const s of this.streaks.values()) {
      const forMs = now - s.sinceMs;
      if (forMs > s.boundMs && (worst === undefined || forMs > worst.forMs)) worst = { what: s.what, forMs };
    }
    return worst;
  }
}
