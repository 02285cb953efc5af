import { createHash } from 'node:crypto';
import { CORRECTION_HEADER, type CorrectionKind, MAX_TARGET_BYTES } from '../corrections/correction.js';
import { QueryError } from '../errors.js';
import { quoteClient } from '../http/json.js';
import { type CheckedEvent, parseCloudEvents } from './cloudevents.js';

/** The correction routes of the ingest API (docs/corrections-openapi.yaml). */
export const CORRECTION_ROUTES = ['/v1/events/{source}/{id}/void', '/v1/events/{source}/{id}/amend'] as const;

/** The event type of a void (its content is not aggregated; only its headers matter). */
export const VOID_TYPE = 'ordo.void';

const VOID_FIELDS = new Set(['subject', 'id', 'source', 'traceparent']);
const AMEND_FIELDS = new Set(['subject', 'id', 'source', 'type', 'time', 'data', 'traceparent']);

/**
 * `POST /v1/events/{source}/{id}/void|amend`: the correction event for the original
 * `(source, id)`, as the pipeline expects it (docs/corrections.md): a UsageEvent with the
 * `ordo-correction` headers, under the original's `subject` (the body says which: the
 * ingest does not know it, and the pipeline refuses a correction under another subject).
 *
 * Its own id is the body's `id`, else derived from the request: `<kind>-` and 32 hex digits
 * of SHA-256 over the kind, the original's source and id, the subject and (amend) the
 * amended content. So a retried request writes the same id, which the pipeline drops as a
 * duplicate; its own source is the body's `source`, else the original's. An amend must name
 * its `time` (no default to the time of receipt, which would change the derived id).
 */
export function correctionEvent(kind: CorrectionKind, original: { source: string; id: string }, body: unknown, now: number): CheckedEvent {
  for (const [name, value] of [['source', original.source], ['id', original.id]] as const) {
    if (value === '') throw new QueryError('bad-parameter', `the original's ${name} in the path is empty`);
    if (Buffer.byteLength(value) > MAX_TARGET_BYTES) throw new QueryError('bad-parameter', `the original's ${name} in the path is longer than ${MAX_TARGET_BYTES} bytes`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new QueryError('invalid-body', `a ${kind} is a JSON object, e.g. {"subject": "acme"${kind === 'amend' ? ', "type": …, "time": …, "data": {"value": …}' : ''}}`);
  const fields = body as Record<string, unknown>;
  const allowed = kind === 'void' ? VOID_FIELDS : AMEND_FIELDS;
  for (const key of Object.keys(fields)) {
    if (!allowed.has(key)) throw new QueryError('invalid-body', `field ${quoteClient(key)} is not one a ${kind} takes (${[...allowed].join(', ')})`);
  }
  for (const key of ['subject', ...(kind === 'amend' ? ['type', 'time'] : [])]) {
    if (typeof fields[key] !== 'string' || fields[key] === '') throw new QueryError('invalid-body', `a ${kind} needs ${quoteClient(key)} (a non-empty string)${key === 'subject' ? ": the original's subject" : ''}`);
  }
  for (const key of ['id', 'source']) {
    if (fields[key] !== undefined && (typeof fields[key] !== 'string' || fields[key] === '')) throw new QueryError('invalid-body', `${quoteClient(key)} must be a non-empty string when given`);
  }
  const subject = fields.subject as string;
  const content = kind === 'amend' ? { type: fields.type, time: fields.time, data: fields.data ?? null } : {};
  const derived = `${kind}-${createHash('sha256').update(JSON.stringify([kind, original.source, original.id, subject, canonical(content)])).digest('hex').slice(0, 32)}`;
  const cloudEvent: Record<string, unknown> = {
    specversion: '1.0',
    id: (fields.id) ?? derived,
    source: (fields.source) ?? original.source,
    subject,
    type: kind === 'amend' ? fields.type : VOID_TYPE,
    ...(kind === 'amend' ? { time: fields.time, ...(fields.data === undefined ? {} : { data: fields.data }) } : {}),
    ...(fields.traceparent === undefined ? {} : { traceparent: fields.traceparent }),
  };
  const parsed = parseCloudEvents([cloudEvent], { now });
  if (!parsed.ok) {
    throw new QueryError('invalid-events', `the ${kind} is not a valid event: ${parsed.errors[0]!.message}; nothing was written`, 400, { details: { items: parsed.errors } });
  }
  const event = parsed.events[0]!;
  if (event.event.source === original.source && event.event.id === original.id) throw new QueryError('invalid-body', `the ${kind}'s own (source, id) is the original's: a correction needs an id of its own`);
  return { ...event, headers: { ...event.headers, [CORRECTION_HEADER.kind]: kind, [CORRECTION_HEADER.source]: original.source, [CORRECTION_HEADER.id]: original.id } };
}

/** JSON with object keys sorted, so equal content gives equal text whatever order the client wrote. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
}
