import type { EventField, TimeFormat } from './descriptor.js';
import type { PayloadField } from './openapi.js';

/**
 * Guesses which payload field feeds which UsageEvent field, from names and formats: the
 * first draft `generate` writes and the user reviews. Deterministic: the same fields give
 * the same guess. Names are compared without case and punctuation (`request_id` = `requestId`).
 */

/** A mapping as written in the descriptor's YAML. */
export type DraftMapping =
  | { path: string; format?: TimeFormat; scale?: number; optional?: true }
  | { const: string };

export interface Draft {
  mappings: Partial<Record<Exclude<EventField, 'dimensions'>, DraftMapping>> & { dimensions: Record<string, DraftMapping> };
  /** Why a field was mapped as it was, or, for a required field left out, what to do. */
  notes: Partial<Record<EventField, string>>;
  /** Payload fields no mapping reads. */
  unused: PayloadField[];
}

/** Candidate names per event field, best first. */
const NAMES = {
  id: ['requestid', 'eventid', 'idempotencykey', 'id', 'transactionid', 'messageid', 'uuid'],
  source: ['source', 'service', 'servicename', 'origin', 'application', 'app'],
  type: ['type', 'eventtype', 'eventname', 'event', 'kind', 'metric', 'metricname', 'meter'],
  subject: ['subject', 'customerid', 'customer', 'accountid', 'account', 'tenantid', 'tenant', 'organizationid', 'orgid', 'organization', 'workspaceid', 'projectid', 'userid', 'user'],
  time: ['timestamp', 'time', 'occurredat', 'eventtime', 'createdat', 'created', 'ts', 'timestampms', 'createdms', 'timems'],
  value: ['value', 'quantity', 'totaltokens', 'tokens', 'usage', 'amount', 'count', 'units', 'total', 'credits', 'cost'],
} as const;
const IDENTIFIER_TYPES = new Set(['string', 'integer']);
const NUMBER_TYPES = new Set(['integer', 'number']);
const MINOR_UNITS = /\bcents?\b|smallest currency unit|minor units?/i;

export function draftMappings(fields: readonly PayloadField[], connectorName: string): Draft {
  const used = new Set<string>();
  const draft: Draft = { mappings: { dimensions: {} }, notes: {}, unused: [] };
  const take = (field: PayloadField | undefined): PayloadField | undefined => {
    if (field) used.add(field.path);
    return field;
  };
  const free = (): PayloadField[] => fields.filter((f) => !used.has(f.path));

  const id = take(best(free(), NAMES.id, (f) => IDENTIFIER_TYPES.has(f.type)));
  if (id) draft.mappings.id = { path: id.path };
  else draft.notes.id = 'REQUIRED, not mapped: no payload field looks like a unique event id. Map one ({ path: ... }): (source, id) is how retries are deduplicated.';

  const time = timeField(free());
  if (time) {
    take(time.field);
    draft.mappings.time = { path: time.field.path, format: time.format };
  } else {
    draft.notes.time = 'not mapped: no payload field looks like the event time, so the ingest uses the time of receipt. Map one with { path: ..., format: rfc3339 | unix-seconds | unix-millis }.';
  }

  const subject = take(best(free(), NAMES.subject, (f) => IDENTIFIER_TYPES.has(f.type)));
  if (subject) draft.mappings.subject = { path: subject.path };
  else draft.notes.subject = 'REQUIRED, not mapped: no payload field looks like the customer the usage is billed to. Map one ({ path: ... }).';

  const source = take(best(free(), NAMES.source, (f) => f.type === 'string'));
  if (source) draft.mappings.source = { path: source.path };
  else {
    draft.mappings.source = { const: connectorName };
    draft.notes.source = 'a constant: no payload field names the sender. (source, id) identifies an event, so keep it stable.';
  }

  const type = take(best(free(), NAMES.type, (f) => f.type === 'string'));
  if (type) draft.mappings.type = { path: type.path };
  else draft.notes.type = 'REQUIRED, not mapped: no payload field names the event type the meters select on. Set a constant ({ const: "llm.tokens" }) or map a field.';

  const value = take(best(free(), NAMES.value, (f) => NUMBER_TYPES.has(f.type) || (f.type === 'string' && f.format === 'decimal')));
  if (value) {
    const minor = MINOR_UNITS.test(value.description ?? '') || /cents$/i.test(normalise(last(value.path)));
    draft.mappings.value = minor ? { path: value.path, scale: -2 } : { path: value.path };
    if (minor) draft.notes.value = 'scale -2: the spec describes this amount in cents (the smallest currency unit), so 1234 becomes "12.34".';
  } else {
    draft.notes.value = 'REQUIRED, not mapped: no numeric payload field looks like the quantity. Map one ({ path: ..., scale: 0 }) or count payloads ({ const: "1" }).';
  }

  for (const field of free()) {
    if (!dimensionLike(field)) continue;
    const key = dimensionKey(field, draft.mappings.dimensions, fields);
    draft.mappings.dimensions[key] = field.required ? { path: field.path } : { path: field.path, optional: true };
    used.add(field.path);
  }
  draft.unused = free();
  return draft;
}

/** A field of one of the wanted names, best name first, then the shallowest, then required. */
function best(fields: readonly PayloadField[], names: readonly string[], fits: (f: PayloadField) => boolean): PayloadField | undefined {
  let found: { field: PayloadField; rank: number[] } | undefined;
  for (const field of fields) {
    if (!fits(field)) continue;
    const index = names.indexOf(normalise(last(field.path)));
    if (index < 0) continue;
    const rank = [index, field.path.split('.').length, field.required ? 0 : 1];
    if (!found || compareRanks(rank, found.rank) < 0) found = { field, rank };
  }
  return found?.field;
}

function timeField(fields: readonly PayloadField[]): { field: PayloadField; format: TimeFormat } | undefined {
  const named = best(fields, NAMES.time, (f) => (f.type === 'string' && f.format === 'date-time') || f.type === 'integer' || f.type === 'number');
  const field = named ?? fields.find((f) => f.type === 'string' && f.format === 'date-time');
  if (!field) return undefined;
  if (field.type === 'string') return { field, format: 'rfc3339' };
  const name = normalise(last(field.path));
  const millis = /ms$|millis/.test(name) || /millisecond/i.test(field.description ?? '');
  return { field, format: millis ? 'unix-millis' : 'unix-seconds' };
}

/** Low-cardinality looking scalars: not ids, not times, not free numbers. */
function dimensionLike(field: PayloadField): boolean {
  if (field.type !== 'string' && field.type !== 'boolean') return false;
  if (field.format !== undefined && ['uuid', 'date-time', 'date', 'byte', 'binary', 'password', 'uri', 'email'].includes(field.format)) return false;
  const name = normalise(last(field.path));
  return !name.endsWith('id') && !name.endsWith('key') && !name.endsWith('token');
}

function dimensionKey(field: PayloadField, taken: Record<string, unknown>, all: readonly PayloadField[]): string {
  const short = last(field.path);
  const clash = Object.hasOwn(taken, short) || all.some((f) => f !== field && last(f.path) === short && dimensionLike(f));
  return clash ? field.path.replaceAll('.', '_') : short;
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export function normalise(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

function last(path: string): string {
  return path.slice(path.lastIndexOf('.') + 1);
}
