import type { LogMeta, Logger } from '../observability/logger.js';
import { sleep } from './batch.js';
import { causes, classify } from './error-policy.js';
import type { Liveness } from './liveness.js';

/**
 * Conditions a broker reports while it elects leaders for topics just created, loads a
 * coordinator (a fresh cluster, or just after a restart) or finishes a transaction: normal,
 * and gone within seconds. A retry of one of these stays at debug level unless it lasts.
 */
const NORMAL_WHILE_STARTING = new Set([
  // kafkajs' names of the broker's error codes 3, 5, 6, 14, 15, 16, 27, 51.
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'GROUP_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'REBALANCE_IN_PROGRESS',
  'CONCURRENT_TRANSACTIONS',
]);

/** How long a retry of a condition normal on a fresh cluster stays at debug level before it is logged as a warning. */
export const QUIET_RETRY_MS = 5_000;

/** True for the broker conditions that are normal while topics and coordinators come up (see NORMAL_WHILE_STARTING). */
export function normalWhileStarting(error: unknown): boolean {
  return causes(error).some((e) => (e.type !== undefined && NORMAL_WHILE_STARTING.has(e.type)) || e.name === 'KafkaJSTopicMetadataNotLoaded');
}

/**
 * Delay before retry number `attempt` (1-based): 100 ms doubling up to 5 s, with ±20 %
 * jitter so that roles started together do not retry in lockstep.
 */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(5_000, 100 * 2 ** Math.min(attempt - 1, 16));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export interface FailureStreakOptions {
  /** What is retried, for the log and /healthz: "batch", "task start", "merge commit"... */
  what: string;
  log: Logger;
  meta?: LogMeta;
  /** Bounds the streak (stuckAfterMs: then it is exhausted) and reports it to /healthz. */
  liveness: Liveness;
  /** Injectable for tests. */
  now?: () => number;
}

/** A failure streak that gave up: the error policy said so, or it lasted past the bound. */
export type GaveUp = { ok: false; why: 'fenced' | 'fatal' | 'exhausted'; error: unknown };
export type Stop = { ok: false; why: 'abandoned' } | GaveUp;

/**
 * Failures of one operation in a row, until it succeeds: classified by the error policy,
 * bounded by `liveness.stuckAfterMs` from the first failure, reported to /healthz while
 * open, and logged once (a warning at the first failure, or after QUIET_RETRY_MS for a
 * condition normal on a fresh cluster) plus its recovery, not at every attempt. Used by
 * retrying() and, directly, by periodic actions (idle ticks) whose next run is the retry.
 */
export class RepeatedFailures {
  private streak: ReturnType<Liveness['streak']> | undefined;
  private warned = false;
  private attempts = 0;

  constructor(private readonly options: FailureStreakOptions) {}

  /** A failed attempt: `{ ok: true, delayMs }` to retry after that backoff, else why to stop (the streak is closed). */
  failed(error: unknown): { ok: true; delayMs: number } | GaveUp {
    const o = this.options;
    const kind = classify(error);
    if (kind !== 'retry') {
      this.close();
      return { ok: false, why: kind, error };
    }
    this.attempts += 1;
    this.streak ??= o.liveness.streak(`${o.what}${describe(o.meta ?? {})}`);
    const elapsed = this.now() - this.streak.sinceMs;
    if (elapsed >= o.liveness.stuckAfterMs) {
      this.close();
      return { ok: false, why: 'exhausted', error };
    }
    const delayMs = backoffMs(this.attempts);
    const fields = { ...o.meta, attempt: this.attempts, delayMs, error };
    if (!this.warned && (!normalWhileStarting(error) || elapsed >= QUIET_RETRY_MS)) {
      this.warned = true;
      o.log.warn(`${o.what} failed; retrying`, { ...fields, giveUpAfterMs: o.liveness.stuckAfterMs });
    } else {
      o.log.debug(`${o.what} failed; retrying`, fields);
    }
    return { ok: true, delayMs };
  }

  /** The operation succeeded: ends the streak (and says so if its failure was logged). */
  succeeded(): void {
    if (this.streak) {
      const fields = { ...this.options.meta, attempts: this.attempts + 1, seconds: (this.now() - this.streak.sinceMs) / 1000 };
      if (this.warned) this.options.log.info(`${this.options.what} succeeded after retrying`, fields);
      else this.options.log.debug(`${this.options.what} succeeded after retrying`, fields);
    }
    this.close();
  }

  /** Ends the streak without a verdict (e.g. the retry loop was abandoned). */
  close(): void {
    this.streak?.close();
    this.streak = undefined;
    this.warned = false;
    this.attempts = 0;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

export interface RetryOptions extends FailureStreakOptions {
  /** Stop retrying without a failure (e.g. the partition was revoked, the role is stopping). */
  abandoned?: (error: unknown) => boolean;
  /** Between attempts, after the backoff (e.g. a consumer heartbeat, which may throw to end the loop). */
  between?: () => Promise<void>;
  /** After a failed attempt, before the backoff (e.g. replace a task whose transaction broke). */
  recover?: (error: unknown) => Promise<void>;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export type RetryResult<T> = { ok: true; value: T } | Stop;

/**
 * The one retry loop of the engine: runs `action` until it succeeds, retrying what the
 * error policy calls transient with backoff, for at most `liveness.stuckAfterMs` from the
 * first failure (RepeatedFailures). Fenced and fatal errors end it at once.
 */
export async function retrying<T>(action: () => Promise<T>, options: RetryOptions): Promise<RetryResult<T>> {
  const failures = new RepeatedFailures(options);
  try {
    for (;;) {
      try {
        const value = await action();
        failures.succeeded();
        return { ok: true, value };
      } catch (error) {
        if (options.abandoned?.(error)) return { ok: false, why: 'abandoned' };
        const next = failures.failed(error);
        if (!next.ok) return next;
        await options.recover?.(error);
        await (options.sleep ?? sleep)(next.delayMs);
        await options.between?.();
      }
    }
  } finally {
    failures.close();
  }
}

function describe(meta: LogMeta): string {
  const parts = Object.entries(meta).map(([k, v]) => `${k} ${String(v)}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}
