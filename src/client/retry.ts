/**
 * When the ingest client tries again: exponential backoff with jitter, or what a 503's
 * Retry-After asks for. Pure (the random source is passed in) so it is property-tested.
 */

/** How the ingest client retries network errors and 5xx answers (never a 4xx). */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 5; 1 = never retry. */
  maxAttempts?: number;
  /** Backoff before the second attempt, doubled for each further one. Default 100 ms. */
  initialDelayMs?: number;
  /** Upper bound of one backoff. Default 5,000 ms. */
  maxDelayMs?: number;
  /** Upper bound of a wait a Retry-After header asks for. Default 60,000 ms. */
  maxRetryAfterMs?: number;
}

/** {@link RetryOptions} with every default applied. */
export type RetryPolicy = Required<RetryOptions>;

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 5_000, maxRetryAfterMs: 60_000 };

/** Applies the defaults and checks the values (RangeError naming the option). */
export function retryPolicy(options: RetryOptions = {}): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...definedOnly(options) };
  if (!Number.isSafeInteger(policy.maxAttempts) || policy.maxAttempts < 1) throw new RangeError(`retry.maxAttempts must be a whole number >= 1, got ${policy.maxAttempts}`);
  for (const name of ['initialDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const) {
    if (!Number.isFinite(policy[name]) || policy[name] < 0) throw new RangeError(`retry.${name} must be a finite number >= 0, got ${policy[name]}`);
  }
  return policy;
}

/**
 * The wait before attempt `failed + 1` after `failed` failed attempts: the exponential
 * delay `d = min(maxDelayMs, initialDelayMs * 2^(failed-1))`, jittered uniformly over
 * [d/2, d] ("equal jitter": clients that failed together spread out, and the wait still
 * grows). `random` returns a number in [0, 1).
 */
export function backoffDelay(failed: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(failed - 1, 52));
  return exponential / 2 + (exponential / 2) * random();
}

/**
 * A Retry-After header (delay-seconds or an HTTP-date, RFC 9110 10.2.3) in milliseconds from
 * `now`; undefined when absent or not one of those forms. A date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  const date = Date.parse(text);
  if (!/[a-z]/i.test(text) || Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The wait before the next attempt: what Retry-After asks (bounded), else the backoff. */
export function retryDelay(failed: number, retryAfter: string | null | undefined, policy: RetryPolicy, random: () => number = Math.random, now: number = Date.now()): number {
  const asked = parseRetryAfter(retryAfter, now);
  return asked === undefined ? backoffDelay(failed, policy, random) : Math.min(asked, policy.maxRetryAfterMs);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
