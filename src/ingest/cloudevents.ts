import type { DeadLetterReason } from '../errors.js';
import { TRACEPARENT } from '../model/headers.js';
import { parseRfc3339, rfc3339Refusal } from '../model/rfc3339.js';
import { checkAsPipeline } from '../processors/decode.js';
import type { UsageEvent } from '../schema/usage-event.js';

/**
 * CloudEvents 1.0 (JSON format) into UsageEvents, for `POST /v1/events`. Pure: no I/O.
 *
 * Mapping (README, Schema): `id`, `source`, `type`, `subject` as they are; `time` (RFC 3339,
 * optional: default the time of receipt); `data.value` a plain decimal STRING (optional:
 * default "1", the schema's default; a JSON number is refused, it may already have lost
 * digits); `data.dimensions` a map of strings; the `traceparent` extension attribute (or the
 * request's `traceparent` header) goes on the record. Any other attribute is refused rather
 * than dropped: nothing an upstream sends is silently lost.
 *
 * Every item is checked by the pipeline's own decode and validation (checkAsPipeline) before
 * anything is written, so what is accepted here is never dead-lettered as invalid later.
 */

/** One event, with the headers of its record (`traceparent` only; the ingest adds the time context). */
export interface IngestEvent {
  event: UsageEvent;
  headers: Record<string, string>;
}

/** An event the pipeline's checks accepted, with its Avro body (unframed: the writer adds its schema id). */
export interface CheckedEvent extends IngestEvent {
  body: Buffer;
}

/** Why one item of a request is refused: `kind` is a dead-letter reason name (README, Dead letters). */
export interface ItemError {
  index: number;
  kind: DeadLetterReason;
  message: string;
}

export type ParsedItems = { ok: true; events: CheckedEvent[] } | { ok: false; errors: ItemError[] };

export const SINGLE = 'application/cloudevents+json';
export const BATCH = 'application/cloudevents-batch+json';

const ATTRIBUTES = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'data', 'traceparent', 'tracestate']);
const DATA_FIELDS = new Set(['value', 'dimensions']);

/** The media type of a Content-Type header, lowercased, without parameters; undefined if absent. */
export function mediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  return contentType.split(';')[0]!.trim().toLowerCase();
}

/**
 * The items of a parsed body: `single` for application/cloudevents+json (one object),
 * otherwise a batch (an array). Returns undefined when the body is not of that shape.
 */
export function itemsOf(body: unknown, single: boolean): unknown[] | undefined {
  if (single) return typeof body === 'object' && body !== null && !Array.isArray(body) ? [body] : undefined;
  return Array.isArray(body) ? body : undefined;
}

/**
 * Maps and validates every item; any error refuses the whole request (all items' errors are
 * reported, each with its index). `requestTraceparent` applies to items without their own.
 */
export function parseCloudEvents(items: readonly unknown[], options: { now: number; requestTraceparent?: string }): ParsedItems {
  const events: CheckedEvent[] = [];
  const errors: ItemError[] = [];
  for (const [index, item] of items.entries()) {
    const parsed = parseOne(item, options);
    if ('kind' in parsed) {
      errors.push({ index, kind: parsed.kind, message: parsed.message });
      continue;
    }
    const checked = checkAsPipeline(parsed.event, parsed.headers);
    if (!checked.ok) errors.push({ index, kind: checked.reason, message: checked.message });
    else events.push({ ...parsed, body: checked.body });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, events };
}

type Refusal = { kind: DeadLetterReason; message: string };

function parseOne(item: unknown, options: { now: number; requestTraceparent?: string }): IngestEvent | Refusal {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return invalid('expected a CloudEvent (a JSON object)');
  const ce = item as Record<string, unknown>;
  for (const key of Object.keys(ce)) {
    if (!ATTRIBUTES.has(key)) return invalid(`attribute ${describe(key)} is not one Ordo keeps (${[...ATTRIBUTES].join(', ')}); it would be lost`);
  }
  if (ce.specversion !== '1.0') return invalid(`specversion must be "1.0", got ${describe(ce.specversion)}`);
  const text: Partial<Record<'id' | 'source' | 'type' | 'subject', string>> = {};
  for (const field of ['id', 'source', 'type', 'subject'] as const) {
    const value = ce[field];
    if (typeof value !== 'string') return invalid(`${field} must be a string (required), got ${describe(value)}`);
    text[field] = value;
  }
  if (ce.datacontenttype !== undefined && (typeof ce.datacontenttype !== 'string' || mediaType(ce.datacontenttype) !== 'application/json')) {
    return invalid(`datacontenttype must be "application/json" (or absent), got ${describe(ce.datacontenttype)}`);
  }
  const time = parseTime(ce.time, options.now);
  if (typeof time !== 'number') return time;
  const data = parseData(ce.data);
  if ('kind' in data) return data;
  const headers: Record<string, string> = {};
  const traceparent = ce.traceparent ?? options.requestTraceparent;
  if (traceparent !== undefined) {
    if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return invalid(`traceparent ${describe(traceparent)} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)`);
    headers.traceparent = traceparent;
  }
  if (ce.tracestate !== undefined) {
    if (typeof ce.tracestate !== 'string' || ce.tracestate.length > 512) return invalid('tracestate must be a string of at most 512 characters');
    headers.tracestate = ce.tracestate;
  }
  const event: UsageEvent = { id: text.id!, source: text.source!, type: text.type!, subject: text.subject!, time, value: data.value, dimensions: data.dimensions };
  return { event, headers };
}

function parseTime(value: unknown, now: number): number | Refusal {
  if (value === undefined) return now;
  // Sub-millisecond digits are cut: a UsageEvent time is in milliseconds.
  const parsed = typeof value === 'string' ? parseRfc3339(value) : { ok: false as const, why: '', syntax: true };
  return parsed.ok ? parsed.ms : invalid(rfc3339Refusal(`time ${describe(value)}`, parsed, '"2026-11-30T14:00:00Z"'));
}

function parseData(data: unknown): { value: string; dimensions: Record<string, string> } | Refusal {
  if (data === undefined) return { value: '1', dimensions: {} };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return invalid(`data must be an object { value, dimensions }, got ${describe(data)}`);
  const fields = data as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!DATA_FIELDS.has(key)) return invalid(`data.${key} is not a field Ordo keeps (value, dimensions); put attributes in data.dimensions`);
  }
  let value = '1';
  if (fields.value !== undefined) {
    if (typeof fields.value !== 'string') {
      return { kind: 'invalid-value', message: `data.value must be a decimal string such as "12.50", got ${describe(fields.value)} (a JSON number may already have lost digits)` };
    }
    value = fields.value;
  }
  const dimensions: Record<string, string> = {};
  if (fields.dimensions !== undefined) {
    if (typeof fields.dimensions !== 'object' || fields.dimensions === null || Array.isArray(fields.dimensions)) return invalid(`data.dimensions must be an object of strings, got ${describe(fields.dimensions)}`);
    for (const [key, v] of Object.entries(fields.dimensions)) {
      if (typeof v !== 'string') return invalid(`data.dimensions.${key} must be a string, got ${describe(v)}`);
      // JSON.parse keeps "__proto__" as an own key; a plain assignment would drop it.
      Object.defineProperty(dimensions, key, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return { value, dimensions };
}

function invalid(message: string): Refusal {
  return { kind: 'invalid-event', message };
}

/** A value from the client, for a message: its JSON, cut short. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value) ?? typeof value;
  return json.length > 64 ? `${json.slice(0, 64)}... (${json.length} chars)` : json;
}
