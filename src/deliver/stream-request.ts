import { QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import { CursorError, type Positions, STREAMS, type StreamCursor, type StreamName, decodeCursor, startPositions } from '../model/stream-cursor.js';
import type { StreamFilter } from './delivery.js';

/**
 * What a client asks of a delivered stream, read the same way for an SSE stream (the query
 * string of GET /v1/streams/{s}/events) and a receiver session (the body of POST
 * /v1/streams/{s}/sessions): which stream, which records (filter), and where to start.
 * Every refusal is a QueryError naming the parameter: 400 bad-parameter, 400 bad-cursor.
 */

/** More subjects or types than this in one filter is not a client's need (and each record is checked against all). */
export const MAX_FILTER_VALUES = 100;
/** The query parameters of GET /v1/streams/{s}/events, as error messages list them. */
export const STREAM_PARAMETERS = ['subject', 'type', 'from'] as const;

/** Where a reader starts: the first record still stored, the end (records written from now on), or right after a cursor. */
export type StreamStart = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'cursor'; cursor: StreamCursor };

/** The stream of a path segment; 404 not-found otherwise (the path names no resource). */
export function parseStreamName(text: string): StreamName {
  const name = STREAMS.find((s) => s === text);
  if (name === undefined) throw new QueryError('not-found', `no stream ${quote(text)}; streams: ${STREAMS.join(', ')}`, 404);
  return name;
}

/**
 * A filter as JSON (a session's `filter`): `{"subjects": [...], "types": [...]}`, each list
 * optional; undefined or null is no filter. Duplicates are dropped, so one subject named
 * twice still gets that subject's `s.` cursors.
 */
export function parseFilter(value: unknown, what = 'filter'): StreamFilter {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw bad(`${what}: not an object; give {"subjects": [...], "types": [...]} (each optional)`);
  const filter: StreamFilter = {};
  for (const [name, list] of Object.entries(value)) {
    if (name !== 'subjects' && name !== 'types') throw bad(`${what}: unknown field ${quote(name)}; fields: subjects, types`);
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw bad(`${what}.${name}: not an array of strings`);
    filter[name] = checkValues(`${what}.${name}`, list);
  }
  return filter;
}

/**
 * Where to start: `earliest`, `latest`, or a cursor (400 bad-cursor saying what is wrong
 * with it). undefined (not given) is `latest`.
 */
export function parseFrom(value: unknown, what = 'from'): StreamStart {
  if (value === undefined) return { kind: 'latest' };
  if (typeof value !== 'string') throw bad(`${what}: not a string; give earliest, latest or a cursor (an event's id)`);
  if (value === 'earliest' || value === 'latest') return { kind: value };
  if (value === '') throw bad(`${what}: empty; give earliest, latest or a cursor (an event's id)`);
  try {
    return { kind: 'cursor', cursor: decodeCursor(value) };
  } catch (error) {
    if (error instanceof CursorError) throw new QueryError('bad-cursor', `${what}: ${error.message}`);
    throw error;
  }
}

/** The query of GET /v1/streams/{s}/events: `subject` and `type` repeatable, `from` at most once. */
export function parseStreamQuery(params: URLSearchParams): { filter: StreamFilter; from: string | undefined } {
  const subjects: string[] = [];
  const types: string[] = [];
  let from: string | undefined;
  for (const [name, value] of params) {
    if (name === 'subject') subjects.push(value);
    else if (name === 'type') types.push(value);
    else if (name === 'from') {
      if (from !== undefined) throw bad(`from: given more than once (${quote(from)} and ${quote(value)}); give it once`);
      from = value;
    } else throw bad(`unknown parameter ${quote(name)}; known parameters: ${STREAM_PARAMETERS.join(', ')}`);
  }
  const filter: StreamFilter = {};
  if (subjects.length > 0) filter.subjects = checkValues('subject', subjects);
  if (types.length > 0) filter.types = checkValues('type', types);
  return { filter, from };
}

/**
 * The positions a reader of `stream` starts at: per partition the log start (earliest), the
 * end (latest), or right after the cursor (400 bad-cursor when it is not one of this stream's).
 * A cursor's positions are checked against the stored range by StreamSource.open (410, 400).
 */
export async function resolveStart(
  start: StreamStart,
  stream: StreamName,
  source: { partitions(): number; bounds(): Promise<Map<number, { earliest: bigint; end: bigint }>> },
): Promise<Positions> {
  if (start.kind === 'cursor') {
    try {
      return startPositions(start.cursor, stream, source.partitions());
    } catch (error) {
      if (error instanceof CursorError) throw new QueryError('bad-cursor', error.message);
      throw error;
    }
  }
  const bounds = await source.bounds();
  return new Map([...bounds].map(([partition, b]) => [partition, start.kind === 'earliest' ? b.earliest : b.end]));
}

function checkValues(what: string, values: readonly unknown[]): string[] {
  if (values.length === 0) throw bad(`${what}: empty list; name at least one, or leave it out for all`);
  const out = new Set<string>();
  for (const value of values) {
    if (typeof value !== 'string') throw bad(`${what}: ${JSON.stringify(value)?.slice(0, 64) ?? 'undefined'} is not a string`);
    if (value === '') throw bad(`${what}: empty value; name one, or leave the parameter out for all`);
    out.add(value);
  }
  if (out.size > MAX_FILTER_VALUES) throw bad(`${what}: ${out.size} values; at most ${MAX_FILTER_VALUES}`);
  return [...out];
}

function bad(message: string): QueryError {
  return new QueryError('bad-parameter', message);
}
