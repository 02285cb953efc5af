import type { Principal } from '../auth/principal.js';
import { SubjectScope } from '../auth/subject-scope.js';
import type { RecordView } from '../commands/record-view.js';
import type { SourceRecord } from '../model/records.js';
import type { StreamName } from '../model/stream-cursor.js';

/**
 * What the parts of the `deliver` role share (docs/delivery.md): the filter of a stream or
 * session, a delivered record as clients see it, and a request as it travels between
 * replicas when a session's owner is another node.
 */

/** Which records of a stream a client gets: all when a list is absent. */
export interface StreamFilter {
  /** Record keys (the events' subjects). */
  subjects?: string[];
  /** Event types (the UsageEvent `type`). */
  types?: string[];
}

/** Whether a decoded record passes the filter (a type filter passes only decoded events). */
export function matchesFilter(filter: StreamFilter, view: RecordView): boolean {
  if (filter.subjects !== undefined && (view.key === null || !filter.subjects.includes(view.key))) return false;
  if (filter.types !== undefined) {
    const type = view.kind === 'event' ? (view.value as { type?: unknown }).type : undefined;
    if (typeof type !== 'string' || !filter.types.includes(type)) return false;
  }
  return true;
}

/**
 * Decodes only the records whose key can pass: a subject filter or a token's subject scope is
 * decided on the record key, and decoding (Avro, schema lookup) costs far more than the
 * check. Returns a view per record, undefined for those the key rules out.
 */
export async function viewsOfPassing(
  records: readonly SourceRecord[],
  filter: StreamFilter,
  allows: ((subject: string) => boolean) | undefined,
  views: RecordViews,
): Promise<(RecordView | undefined)[]> {
  if (filter.subjects === undefined && allows === undefined) return views([...records]);
  const subjects = filter.subjects === undefined ? undefined : new Set(filter.subjects);
  const passes = records.map((r) => {
    if (r.key === null) return false;
    const subject = r.key.toString('utf8');
    return (subjects === undefined || subjects.has(subject)) && (allows === undefined || allows(subject));
  });
  const decoded = await views(records.filter((_, i) => passes[i]));
  let next = 0;
  return passes.map((pass) => (pass ? decoded[next++] : undefined));
}

/** One record as a client receives it: the SSE event's data and a session read's item. */
export interface DeliveredRecord extends RecordView {
  stream: StreamName;
  /** The cursor after this record (the SSE id): resume from here with no gap and no repeat. */
  cursor: string;
}

/** Decodes records of a stream topic for clients (the schema registry is asked for new ids first). */
export type RecordViews = (records: SourceRecord[]) => Promise<RecordView[]>;

/** A principal as it travels in a forwarded request: the token never leaves the replica that checked it. */
export interface WirePrincipal {
  name: string;
  method: Principal['method'];
  scopes: string[];
  subjects: string[];
}

export function principalToWire(principal: Principal): WirePrincipal {
  return { name: principal.name, method: principal.method, scopes: [...principal.scopes], subjects: principal.subjects.entries() };
}

export function principalFromWire(wire: WirePrincipal): Principal {
  return { name: wire.name, method: wire.method, scopes: new Set(wire.scopes), subjects: SubjectScope.parse(wire.subjects) };
}

/** A session request, authenticated, as the replica that received it passes it on (locally or to the owner). */
export interface DeliverRequest {
  method: string;
  /** The path, e.g. /v1/sessions/<id>/records. */
  path: string;
  /** The query string without `?` ('' when none). */
  query: string;
  /** The request body as text ('' when none). */
  body: string;
  principal: Principal;
}

/** The answer to a DeliverRequest: what the HTTP server sends. `body` is JSON. */
export interface DeliverAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Response headers naming the replica that served a session request and, if it was forwarded, the one that forwarded it. */
export const SERVED_BY_HEADER = 'ordo-served-by';
export const FORWARDED_BY_HEADER = 'ordo-forwarded-by';
