import { randomUUID } from 'node:crypto';
import { pipelineVerdict } from '../processors/decode.js';
import { setHeader } from '../model/records.js';
import { TRACEPARENT } from '../model/headers.js';
import { parseRfc3339, rfc3339Refusal } from '../model/rfc3339.js';
import type { UsageEvent } from '../schema/usage-event.js';
import { EventInputError } from './command-error.js';

/**
 * `ordo events produce` input: one UsageEvent per JSON line (or from flags), with the
 * optional headers an upstream service may send. Everything is checked here, before a
 * byte goes to Kafka, by the pipeline's own decode step: what passes would not be
 * dead-lettered as undecodable, invalid or a bad time context.
 */
export interface EventToProduce {
  event: UsageEvent;
  headers: Record<string, string>;
}

const FIELDS = ['id', 'source', 'type', 'subject', 'time', 'value', 'dimensions', 'headers'] as const;
/** The headers an upstream producer may set (README, Headers). */
export const INPUT_HEADERS = ['service-time', 'service-node', 'traceparent', 'producer-seq', 'producer-id'] as const;

export interface InputDefaults {
  source: string;
  now: () => number;
  newId: () => string;
}

export const defaultInput: InputDefaults = { source: 'ordo-cli', now: Date.now, newId: randomUUID };

/**
 * Parses one JSON object into an event and its headers. Required: `type`, `subject`,
 * `value`; `id` (a UUID), `source` (`ordo-cli`) and `time` (now) default.
 */
export function parseEventObject(input: unknown, where: string, defaults: InputDefaults = defaultInput): EventToProduce {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new EventInputError(where, 'expected a JSON object');
  const object = input as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!(FIELDS as readonly string[]).includes(key)) throw new EventInputError(where, `unknown field "${key}" (fields: ${FIELDS.join(', ')})`);
  }
  const text = (field: 'id' | 'source' | 'type' | 'subject', fallback?: () => string): string => {
    const value = object[field];
    if (value === undefined && fallback) return fallback();
    if (typeof value !== 'string') throw new EventInputError(where, `field "${field}" must be a string${fallback ? '' : ' (required)'}`);
    return value;
  };
  const event: UsageEvent = {
    id: text('id', defaults.newId),
    source: text('source', () => defaults.source),
    type: text('type'),
    subject: text('subject'),
    time: parseTime(object.time, where, defaults.now),
    value: parseValue(object.value, where),
    dimensions: stringMap(object.dimensions, 'dimensions', where),
  };
  const headers = stringMap(object.headers, 'headers', where);
  for (const name of Object.keys(headers)) {
    if (!(INPUT_HEADERS as readonly string[]).includes(name)) {
      throw new EventInputError(where, `header "${name}" is not one an upstream producer sets (${INPUT_HEADERS.join(', ')})`);
    }
  }
  if (headers.traceparent !== undefined && !TRACEPARENT.test(headers.traceparent)) {
    throw new EventInputError(where, `header "traceparent" ${JSON.stringify(headers.traceparent)} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)`);
  }
  const checked = { event, headers };
  checkWithPipeline(checked, where);
  return checked;
}

/** Parses JSON lines; blank lines and lines starting with `#` are skipped. Fails on the first bad line. */
export function parseEventLines(text: string, defaults: InputDefaults = defaultInput): EventToProduce[] {
  const out: EventToProduce[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      throw new EventInputError(`line ${i + 1}`, `not JSON: ${(error as Error).message}`);
    }
    out.push(parseEventObject(parsed, `line ${i + 1}`, defaults));
  }
  return out;
}

function parseTime(value: unknown, where: string, now: () => number): number {
  if (value === undefined) return now();
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return value;
    throw new EventInputError(where, `field "time" ${value} is not whole milliseconds since the epoch`);
  }
  const parsed = typeof value === 'string' ? parseRfc3339(value) : { ok: false as const, why: '', syntax: true };
  if (parsed.ok) return parsed.ms;
  throw new EventInputError(where, rfc3339Refusal(`field "time" ${JSON.stringify(value)}`, parsed, '2026-11-30T14:00:00Z (or epoch milliseconds)'));
}

/** A decimal string as-is; a JSON number only when its text is already a plain decimal (3, 0.75). */
function parseValue(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new EventInputError(where, 'field "value" must be a decimal string such as "12.50" (required)');
}

function stringMap(value: unknown, field: string, where: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EventInputError(where, `field "${field}" must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new EventInputError(where, `${field}.${key} must be a string`);
    setHeader(out, key, v);
  }
  return out;
}

/** The pipeline's decode step over the encoded record: the producer and the pipeline agree by construction. */
function checkWithPipeline({ event, headers }: EventToProduce, where: string): void {
  const verdict = pipelineVerdict(event, headers);
  if (verdict) throw new EventInputError(where, verdict.message);
}
