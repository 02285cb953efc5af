/**
 * The service-time protocol on HTTP headers: what a caller sends (`service-time`,
 * `service-node`: a send stamp of its clock) and what a receiver does with it (the clock
 * receives it, strictly parsed and skew bounded). The fetch wrapper, the `node:http`
 * middleware and the ingest client are this file plus their transport.
 */
import type { HybridClock } from '../clock/hybrid-clock.js';
import { formatServiceTime, type Stamp } from '../clock/service-time.js';
import { isServiceNode, readTimeContext } from '../clock/time-context.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, type HeaderValue, type TimeContext } from '../model/headers.js';

export { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER };

/** The two time-context headers as sent on a request, a response or a Kafka record. */
export type TimeContextHeaders = {
  'service-time': string;
  'service-node': string;
};

/**
 * Formats a stamp as the `service-time` / `service-node` headers. Throws RangeError for a
 * node id no receiver would accept (not 1-255 printable ASCII characters without spaces):
 * better to fail at the sender than to have every receiver refuse the context.
 */
export function formatTimeContext(stamp: Stamp): TimeContextHeaders {
  if (!isServiceNode(stamp.node)) {
    throw new RangeError(`service-node ${JSON.stringify(stamp.node.slice(0, 40))} is not 1-255 printable ASCII characters (no spaces)`);
  }
  return { [SERVICE_TIME_HEADER]: formatServiceTime(stamp.time), [SERVICE_NODE_HEADER]: stamp.node };
}

/**
 * A send event of the clock, as headers: `clock.now()` (greater than every time the clock
 * issued or received before) and `clock.node`. Call once per outgoing message.
 */
export function sendTimeContext(clock: HybridClock): TimeContextHeaders {
  return formatTimeContext({ time: clock.now(), node: clock.node });
}

/** Anything that holds headers: a fetch `Headers`, `node:http` request headers, kafkajs record headers. */
export type HeaderSource = Pick<Headers, 'get'> | Readonly<Record<string, HeaderValue>>;

/**
 * Receives the time context a message carried into the clock and returns it (undefined
 * when it carried none; the clock is then unchanged). Strict: a malformed context throws
 * `BadRecordError` (reason `bad-service-time`), a time more than the clock's `maxSkewMs`
 * ahead of its physical clock throws `ClockSkewError` (reason `clock-skew`); either way the
 * clock is unchanged.
 */
export function receiveTimeContext(clock: HybridClock, headers: HeaderSource): TimeContext | undefined {
  const context = readTimeContext(isFetchHeaders(headers) ? fromFetchHeaders(headers) : headers);
  if (context !== undefined) clock.receive(context.time);
  return context;
}

function isFetchHeaders(headers: HeaderSource): headers is Pick<Headers, 'get'> {
  return typeof (headers as { get?: unknown }).get === 'function';
}

/** Fetch joins repeated headers with ", ": such a value fails the strict parse, as it should. */
function fromFetchHeaders(headers: Pick<Headers, 'get'>): Record<string, HeaderValue> {
  return {
    [SERVICE_TIME_HEADER]: headers.get(SERVICE_TIME_HEADER) ?? undefined,
    [SERVICE_NODE_HEADER]: headers.get(SERVICE_NODE_HEADER) ?? undefined,
  };
}
