/**
 * Hybrid service time codec.
 *
 * A service time is an unsigned 64-bit value: high 48 bits = wall-clock
 * milliseconds since the Unix epoch, low 16 bits = logical counter. It is a
 * `bigint` everywhere because 64 bits do not fit a JS `number` (2^53).
 * On the wire (`service-time` header) it is exactly 16 lowercase hex digits,
 * zero-padded, so string order equals numeric order.
 */
import { BadServiceTimeError } from '../errors.js';

/** A hybrid service time: an unsigned 64-bit value, (wall-clock ms << 16) | counter. */
export type ServiceTime = bigint;

/** A stamp as written to `service-time` / `service-node`; total order is (time, node). */
export interface Stamp {
  /** The service time. */
  readonly time: ServiceTime;
  /** The node that issued it (breaks ties). */
  readonly node: string;
}

export const COUNTER_BITS = 16n;
export const MAX_COUNTER = 0xffff;
/** 2^48 - 1 ms: year 10889, still a safe integer. */
export const MAX_MILLIS = 2 ** 48 - 1;
/** The largest service time, 2^64 - 1. */
export const MAX_SERVICE_TIME: ServiceTime = (1n << 64n) - 1n;

const COUNTER_MASK = BigInt(MAX_COUNTER);
const HEX16 = /^[0-9a-f]{16}$/;
/** Bad values are attacker/upstream controlled: quote only a prefix in messages. */
const QUOTE_LIMIT = 40;

/** The service time of wall-clock `millis` and logical `counter` (RangeError outside 0..2^48-1, 0..65535). */
export function makeServiceTime(millis: number, counter: number): ServiceTime {
  if (!Number.isInteger(millis) || millis < 0 || millis > MAX_MILLIS) {
    throw new RangeError(`service time millis must be an integer in [0, ${MAX_MILLIS}], got ${millis}`);
  }
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) {
    throw new RangeError(`service time counter must be an integer in [0, ${MAX_COUNTER}], got ${counter}`);
  }
  return (BigInt(millis) << COUNTER_BITS) | BigInt(counter);
}

/** Wall-clock part. `t` must be a valid service time (not checked: hot path). */
export function millisOf(t: ServiceTime): number {
  return Number(t >> COUNTER_BITS);
}

/** Logical counter part. `t` must be a valid service time (not checked: hot path). */
export function counterOf(t: ServiceTime): number {
  return Number(t & COUNTER_MASK);
}

/** The header spelling: exactly 16 lowercase hex digits, zero-padded (RangeError outside 64 bits). */
export function formatServiceTime(t: ServiceTime): string {
  if (t < 0n || t > MAX_SERVICE_TIME) {
    throw new RangeError(`service time out of the unsigned 64-bit range: ${t}`);
  }
  return t.toString(16).padStart(16, '0');
}

function quote(value: string): string {
  // JSON.stringify makes whitespace and control characters visible.
  return value.length > QUOTE_LIMIT
    ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}... (${value.length} chars)`
    : JSON.stringify(value);
}

/**
 * Strict: exactly 16 lowercase hex digits. Anything else (uppercase, `0x`,
 * signs, whitespace, other lengths) is rejected rather than normalised, so one
 * time has exactly one spelling and header strings compare like the numbers.
 */
export function parseServiceTime(text: string): ServiceTime {
  // Header values arrive untyped at runtime; do not trust the static type.
  if (typeof text !== 'string') {
    throw new BadServiceTimeError(`service-time must be a string of 16 lowercase hex digits, got ${typeof text}`);
  }
  if (!HEX16.test(text)) {
    throw new BadServiceTimeError(`service-time must be exactly 16 lowercase hex digits, got ${quote(text)}`);
  }
  return BigInt(`0x${text}`);
}

export type HeaderValue = Buffer | string | undefined | (Buffer | string)[];

/**
 * Decode a Kafka header value (as kafkajs delivers it). Absent (undefined or
 * an empty array) -> undefined. Several values are ambiguous, so rejected.
 */
export function parseServiceTimeHeader(value: HeaderValue): ServiceTime | undefined {
  if (value === undefined) return undefined;
  let single: Buffer | string | undefined;
  if (Array.isArray(value)) {
    if (value.length > 1) {
      throw new BadServiceTimeError(`multiple service-time headers (${value.length}); expected at most one`);
    }
    single = value[0];
    if (single === undefined) return undefined;
  } else {
    single = value;
  }
  return parseServiceTime(typeof single === 'string' ? single : single.toString('utf8'));
}

/** Total order on stamps: time, then node by UTF-16 code units (not locale). */
export function compareStamps(a: Stamp, b: Stamp): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.node === b.node) return 0;
  return a.node < b.node ? -1 : 1;
}
