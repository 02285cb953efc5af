/**
 * `withServiceTime(fetch, clock)`: the service-time protocol on outgoing HTTP calls.
 */
import type { HybridClock } from '../clock/hybrid-clock.js';
import { BadRecordError } from '../errors.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, receiveTimeContext, sendTimeContext } from './time-headers.js';

/** The shape of the global `fetch` (also what undici's `fetch` and most test doubles have). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Options of {@link withServiceTime}. */
export interface WithServiceTimeOptions {
  /**
   * Called when a response carries a `service-time` the clock refuses (malformed:
   * `BadRecordError` reason `bad-service-time`; too far ahead: `ClockSkewError`). The
   * clock is unchanged and the response is returned as usual: the call itself succeeded.
   * Default: a process warning (`process.emitWarning`), so it is seen but not fatal.
   */
  onRejectedTime?: (error: BadRecordError, response: Response) => void;
}

/**
 * Wraps a `fetch` so every call carries the clock's time context and the clock learns the
 * callee's: each request gets `service-time` = a fresh send stamp (`clock.now()`) and
 * `service-node` = `clock.node` (overriding any the caller set), and a `service-time` on the
 * response is received into the clock, so the next stamp is above everything the callee
 * did. A network error rejects as the wrapped fetch does.
 *
 * @example
 * const clock = new HybridClock({ node: 'checkout-1' });
 * const fetchT = withServiceTime(fetch, clock);
 * await fetchT('http://billing.internal/charge', { method: 'POST', body });
 */
export function withServiceTime(fetchImpl: FetchLike, clock: HybridClock, options: WithServiceTimeOptions = {}): FetchLike {
  const onRejectedTime = options.onRejectedTime ?? warnRejectedTime;
  return async (input, init) => {
    // init.headers replaces a Request's own headers in fetch; start from whichever applies.
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const context = sendTimeContext(clock);
    headers.set(SERVICE_TIME_HEADER, context[SERVICE_TIME_HEADER]);
    headers.set(SERVICE_NODE_HEADER, context[SERVICE_NODE_HEADER]);
    const response = await fetchImpl(input, { ...init, headers });
    try {
      receiveTimeContext(clock, response.headers);
    } catch (error) {
      if (!(error instanceof BadRecordError)) throw error;
      onRejectedTime(error, response);
    }
    return response;
  };
}

function warnRejectedTime(error: BadRecordError, response: Response): void {
  process.emitWarning(`ignored the service-time of the response from ${response.url || 'a fetch call'}: ${error.message}`, { code: error.code });
}
