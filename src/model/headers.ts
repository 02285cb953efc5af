/**
 * The shapes of record headers and of a time context, and the time context's header names:
 * a leaf without schema types, so the client SDK (src/client) shares them without Avro.
 * Every other header name is in HEADER (./records.ts).
 */

/** A header value as kafkajs delivers it (a repeated header is a list), or as node:http does. */
export type HeaderValue = Buffer | string | (Buffer | string)[] | undefined;
/** A record's or request's headers by lowercase name. */
export type Headers = Record<string, HeaderValue>;

/** A time context as received: the upstream's `service-time` and, when it sent one, its `service-node`. */
export interface TimeContext {
  /** The received `service-time`. */
  time: bigint;
  /** The received `service-node`; undefined when only a time was sent. */
  node: string | undefined;
}

/** Header carrying the hybrid service time: exactly 16 lowercase hex digits (docs/hybrid-time.md). */
export const SERVICE_TIME_HEADER = 'service-time';
/** Header carrying the id of the node that produced the service time (1-255 printable ASCII). */
export const SERVICE_NODE_HEADER = 'service-node';

/** A W3C trace context header (`00-<32 hex>-<16 hex>-<2 hex>`), passed through to the record. */
export const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
