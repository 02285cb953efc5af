import { parseRfc3339, rfc3339Refusal } from '../model/rfc3339.js';
import { decimalOfNumber, quote, scaleDecimal } from './decimal-text.js';
import type { ConnectorDescriptor, DimensionMapping, Mapping, TimeMapping, ValueMapping } from './descriptor.js';

/**
 * A native payload to a CloudEvent through a connector's mappings. Pure, and total: any JSON
 * value gives either an event or the payload path that does not fit, never a throw. It only
 * maps: the event then goes through the same validation as `POST /v1/events` (ids too long,
 * a value beyond 38 digits, ... are found there, with the same answers).
 */

/** The CloudEvent of the ingest contract (docs/ingest.md); `time` absent: the time of receipt. */
export interface ConnectorCloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time?: string;
  data: { value: string; dimensions?: Record<string, string> };
}

export type MapResult = { ok: true; event: ConnectorCloudEvent } | { ok: false; path: string; message: string };

/** Milliseconds of the latest time a UsageEvent can carry (year 9999), and of the earliest (year 0000). */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const MIN_TIME_MS = Date.parse('0000-01-01T00:00:00Z');

/** Internal: unwinds to mapPayload, which returns it as `{ ok: false }`. */
class Misfit extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export function mapPayload(descriptor: ConnectorDescriptor, payload: unknown): MapResult {
  try {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new Misfit('', `expected a JSON object, got ${kind(payload)}`);
    const m = descriptor.mappings;
    const event: ConnectorCloudEvent = {
      specversion: '1.0',
      id: text(payload, m.id),
      source: text(payload, m.source),
      type: text(payload, m.type),
      subject: text(payload, m.subject),
      data: { value: value(payload, m.value) },
    };
    if (m.time) event.time = time(payload, m.time);
    const dimensions: Record<string, string> = {};
    let any = false;
    for (const [name, mapping] of Object.entries(m.dimensions)) {
      const dimension = dimensionValue(payload, mapping);
      if (dimension === undefined) continue;
      dimensions[name] = dimension;
      any = true;
    }
    if (any) event.data.dimensions = dimensions;
    return { ok: true, event };
  } catch (error) {
    if (error instanceof Misfit) return { ok: false, path: error.path, message: error.message };
    throw error;
  }
}

/**
 * The value at a dotted path; undefined when a segment is missing. An array is indexed by a
 * decimal segment (`items.0.id`). Own properties only: `__proto__` or `constructor` in a path
 * finds nothing rather than the prototype.
 */
export function valueAt(payload: unknown, segments: readonly string[]): unknown {
  let at: unknown = payload;
  for (const segment of segments) {
    if (Array.isArray(at)) {
      if (!/^(?:0|[1-9]\d{0,8})$/.test(segment)) return undefined;
      at = at[Number(segment)];
    } else if (typeof at === 'object' && at !== null && Object.hasOwn(at, segment)) {
      at = (at as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return at;
}

function required(payload: object, mapping: { path: string; segments: string[] }): unknown {
  const found = valueAt(payload, mapping.segments);
  if (found === undefined || found === null) throw new Misfit(mapping.path, found === null ? 'is null' : 'is missing');
  return found;
}

/** id, source, type, subject: a string, or an integer id written as decimal text. */
function text(payload: object, mapping: Mapping): string {
  if ('const' in mapping) return mapping.const;
  const found = required(payload, mapping);
  if (typeof found === 'string') return found;
  if (typeof found === 'number' && Number.isSafeInteger(found)) return String(found);
  throw new Misfit(mapping.path, `expected a string (or an integer), got ${kind(found)}`);
}

function value(payload: object, mapping: ValueMapping): string {
  if ('const' in mapping) return mapping.const;
  const found = required(payload, mapping);
  let decimal;
  if (typeof found === 'number') {
    const exact = decimalOfNumber(found);
    decimal = exact.ok ? scaleDecimal(exact.text, mapping.scale) : exact;
  } else if (typeof found === 'string') {
    decimal = scaleDecimal(found, mapping.scale);
  } else {
    throw new Misfit(mapping.path, `expected a number or a decimal string, got ${kind(found)}`);
  }
  if (!decimal.ok) throw new Misfit(mapping.path, decimal.message);
  return decimal.text;
}

function time(payload: object, mapping: TimeMapping): string {
  const found = required(payload, mapping);
  let ms: number;
  if (mapping.format === 'rfc3339') {
    if (typeof found !== 'string') throw new Misfit(mapping.path, `expected an RFC 3339 time string, got ${kind(found)}`);
    const parsed = parseRfc3339(found);
    if (!parsed.ok) throw new Misfit(mapping.path, rfc3339Refusal(quote(found), parsed, '2026-11-30T21:00:00Z'));
    ms = parsed.ms;
  } else {
    const unit = mapping.format === 'unix-seconds' ? 'seconds' : 'milliseconds';
    // A numeric string is common in payloads (int64 as string); read it exactly.
    const decimal = typeof found === 'number' ? decimalOfNumber(found) : typeof found === 'string' ? scaleDecimal(found, 0) : undefined;
    if (decimal === undefined) throw new Misfit(mapping.path, `expected ${unit} since the Unix epoch (a number), got ${kind(found)}`);
    if (!decimal.ok) throw new Misfit(mapping.path, `not ${unit} since the Unix epoch: ${decimal.message}`);
    const millis = scaleDecimal(decimal.text, mapping.format === 'unix-seconds' ? 3 : 0);
    // Sub-millisecond digits are cut: a UsageEvent time is in milliseconds.
    ms = millis.ok ? Number(millis.text.split('.')[0]) : Number.NaN;
    if (!millis.ok || !Number.isSafeInteger(ms)) throw new Misfit(mapping.path, `${decimal.text} ${unit} is out of range`);
  }
  if (ms > MAX_TIME_MS || ms < MIN_TIME_MS) throw new Misfit(mapping.path, `${ms} ms since the Unix epoch is outside the years 0000 to 9999`);
  return new Date(ms).toISOString();
}

/** Date.parse rolls 2026-02-30 over into March: check the fields themselves. */
function dimensionValue(payload: object, mapping: DimensionMapping): string | undefined {
  if ('const' in mapping) return mapping.const;
  const found = valueAt(payload, mapping.segments);
  if (found === undefined || found === null) {
    if (mapping.optional) return undefined;
    throw new Misfit(mapping.path, `${found === null ? 'is null' : 'is missing'} (mark the dimension optional: true if payloads may leave it out)`);
  }
  if (typeof found === 'string') return found;
  if (typeof found === 'boolean') return String(found);
  if (typeof found === 'number') {
    const decimal = decimalOfNumber(found);
    if (decimal.ok) return decimal.text;
    throw new Misfit(mapping.path, decimal.message);
  }
  throw new Misfit(mapping.path, `a dimension is a string, number or boolean, got ${kind(found)}`);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${quote(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value;
}
