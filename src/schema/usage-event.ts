import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { BadRecordError } from '../errors.js';
import { frame } from './wire-format.js';

/** A decoded usage event (schemas/usage-event.avsc). */
export interface UsageEvent {
  id: string;
  source: string;
  type: string;
  subject: string;
  /** ms since the Unix epoch (UTC). */
  time: number;
  /** Exact decimal string. */
  value: string;
  dimensions: Record<string, string>;
}

export const USAGE_EVENT_SCHEMA_PATH = new URL('../../schemas/usage-event.avsc', import.meta.url);
export const usageEventSchema = JSON.parse(readFileSync(USAGE_EVENT_SCHEMA_PATH, 'utf8')) as avro.Schema;
export const usageEventType = avro.Type.forSchema(usageEventSchema);

/** Plain decimal: optional minus, digits, optional fraction. No exponent, NaN, Infinity or '+'. */
export const DECIMAL = /^-?(?:0|[1-9]\d{0,37})(?:\.\d{1,38})?$/;
const MAX_TEXT = 1024;
const MAX_DIMENSIONS = 64;
/** 1970..9999 is what RFC 3339 times (CloudEvents `time`) can express. */
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Checks what Avro cannot: non-empty identifiers, a plain decimal value, a sane time. A bad
 * `value` is `invalid-value`; everything else `invalid-event`.
 */
export function validateUsageEvent(event: UsageEvent): void {
  for (const field of ['id', 'source', 'type', 'subject'] as const) {
    const value = event[field];
    if (value.length === 0) throw invalid(`${field} is empty`);
    if (value.length > MAX_TEXT) throw invalid(`${field} is longer than ${MAX_TEXT} characters`);
  }
  if (!DECIMAL.test(event.value)) {
    // Its own reason, like a bad value a meter reads from a dimension: whatever the field, a
    // bad value is `invalid-value` (docs/operations.md#dead-letters).
    throw new BadRecordError('invalid-value', `value ${JSON.stringify(event.value.slice(0, 48))} is not a plain decimal string (e.g. "12.50"; no exponent, NaN or Infinity)`);
  }
  if (!Number.isSafeInteger(event.time) || event.time < 0 || event.time > MAX_TIME) {
    throw invalid(`time ${event.time} is not a millisecond timestamp between 1970 and 9999`);
  }
  const keys = Object.keys(event.dimensions);
  if (keys.length > MAX_DIMENSIONS) throw invalid(`more than ${MAX_DIMENSIONS} dimensions`);
  for (const key of keys) {
    if (key.length === 0 || key.length > MAX_TEXT) throw invalid(`dimension name ${JSON.stringify(key.slice(0, 48))} is empty or too long`);
    if ((event.dimensions[key] ?? '').length > MAX_TEXT) throw invalid(`dimension ${key} is longer than ${MAX_TEXT} characters`);
  }
}

function invalid(message: string): BadRecordError {
  return new BadRecordError('invalid-event', message);
}

/** Confluent wire format with the registered schema id: the pipeline's own codec. */
export function encodeUsageEvent(schemaId: number, event: UsageEvent): Buffer {
  return frame(schemaId, usageEventType.toBuffer(event));
}
