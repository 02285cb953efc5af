import { BadRecordError, DEAD_LETTER_REASONS, type DeadLetterReason, QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import { parseRfc3339, rfc3339Refusal } from '../model/rfc3339.js';
import { type UsageEvent, validateUsageEvent } from '../schema/usage-event.js';
import type { LetterFilter } from './dead-letter-view.js';

/**
 * What a replay request asks, read and checked before anything touches Kafka: every bad
 * input is a QueryError (4xx) naming what is wrong. Pure.
 */

/** Letters replayed by one bulk request at most; repeating the request goes on where it stopped (replayed letters are skipped). */
export const MAX_BULK_REPLAY = 10_000;
/** Examples a bulk answer shows. */
export const BULK_EXAMPLES = 5;
/** Letters one list request answers at most (and by default). */
export const MAX_LIST = 1_000;
export const DEFAULT_LIST = 100;

const MAX_PARTITION = 2 ** 31 - 1;
const MAX_OFFSET = (1n << 63n) - 1n;

/** The `{partition}/{offset}` of a letter's path. */
export function parseLetterPosition(params: Record<string, string>): { partition: number; offset: string } {
  const partition = params.partition ?? '';
  const offset = params.offset ?? '';
  if (!/^\d{1,10}$/.test(partition) || Number(partition) > MAX_PARTITION) throw new QueryError('bad-parameter', `partition: ${quote(partition)} is not a partition number (0 to ${MAX_PARTITION})`);
  if (!/^\d{1,19}$/.test(offset) || BigInt(offset) > MAX_OFFSET) throw new QueryError('bad-parameter', `offset: ${quote(offset)} is not an offset (a decimal integer from 0 to 2^63-1)`);
  return { partition: Number(partition), offset: BigInt(offset).toString() };
}

const EVENT_FIELDS = ['id', 'source', 'type', 'subject', 'time', 'value', 'dimensions'] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKeys(object: Record<string, unknown>, known: readonly string[], where: string): void {
  const extra = Object.keys(object).filter((k) => !known.includes(k));
  if (extra.length > 0) throw new QueryError('bad-body', `${where}: unknown field ${extra.map(quote).join(', ')}; fields: ${known.join(', ')}`);
}

/**
 * The corrected event of a single replay's body (`{"value": {...UsageEvent fields...}}`), or
 * undefined without one (the letter is replayed unchanged). The fields given replace the
 * original's (`dimensions` as a whole); without a decodable original every field is needed.
 * The correction keeps the original's `(source, id)`: its replay is deduplicated as that
 * event, so a second replay can never count it twice. `time` is ms since the epoch or an
 * RFC 3339 date-time. The result is validated as the pipeline does (invalid-value,
 * invalid-event), as 400 `invalid-event` with the DLQ reason the pipeline would give.
 */
export function correctedEvent(body: unknown, original: UsageEvent | undefined): UsageEvent | undefined {
  if (body === undefined) return undefined;
  if (!isObject(body)) throw new QueryError('bad-body', 'the body is a JSON object {"value": {...corrected UsageEvent fields...}}, or empty to replay the letter unchanged');
  unknownKeys(body, ['value'], 'body');
  const given = body.value;
  if (given === undefined) return undefined;
  if (!isObject(given)) throw new QueryError('bad-body', `value: a JSON object of UsageEvent fields (${EVENT_FIELDS.join(', ')})`);
  unknownKeys(given, EVENT_FIELDS, 'value');
  const merged: Partial<UsageEvent> = original === undefined ? {} : { ...original, dimensions: { ...original.dimensions } };
  for (const field of ['id', 'source', 'type', 'subject', 'value'] as const) {
    const v = given[field];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new QueryError('bad-body', `value.${field}: a string${field === 'value' ? ' (a plain decimal, e.g. "12.50")' : ''}, not ${JSON.stringify(v)?.slice(0, 40)}`);
    merged[field] = v;
  }
  if (given.time !== undefined) merged.time = parseTime(given.time);
  if (given.dimensions !== undefined) {
    const d = given.dimensions;
    if (!isObject(d) || Object.values(d).some((v) => typeof v !== 'string')) throw new QueryError('bad-body', 'value.dimensions: an object of string values');
    const dimensions: Record<string, string> = {};
    for (const [k, v] of Object.entries(d)) Object.defineProperty(dimensions, k, { value: v, enumerable: true, writable: true, configurable: true });
    merged.dimensions = dimensions;
  }
  const missing = EVENT_FIELDS.filter((f) => merged[f] === undefined);
  if (missing.length > 0) throw new QueryError('bad-body', `value: ${missing.join(', ')} missing; the dead letter does not decode as a UsageEvent, so the corrected value must give every field`);
  const event = merged as UsageEvent;
  if (original !== undefined && (event.source !== original.source || event.id !== original.id)) {
    throw new QueryError('identity-changed', `value: the correction must keep the event's source and id (${quote(original.source)}, ${quote(original.id)}): the replay is deduplicated as that event; send a new event through the ingest API instead`);
  }
  if (Object.hasOwn(event.dimensions, '__proto__')) throw new QueryError('invalid-event', 'value.dimensions: the name "__proto__" is reserved', 400, { details: { reason: 'invalid-event' } });
  try {
    validateUsageEvent(event);
  } catch (error) {
    if (!(error instanceof BadRecordError)) throw error;
    throw new QueryError('invalid-event', `the corrected value is not a valid UsageEvent: ${error.message}`, 400, { details: { reason: error.reason } });
  }
  return event;
}

function parseTime(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new QueryError('bad-body', `value.time: ${value} is not whole milliseconds since the epoch`);
    return value;
  }
  if (typeof value === 'string') {
    const parsed = parseRfc3339(value);
    if (!parsed.ok) throw new QueryError('bad-body', `value.time: ${rfc3339Refusal(quote(value), parsed)}`);
    return parsed.ms;
  }
  throw new QueryError('bad-body', 'value.time: milliseconds since the epoch or an RFC 3339 date-time');
}

function reasonOf(value: unknown, where: string): DeadLetterReason {
  if (typeof value !== 'string' || !(DEAD_LETTER_REASONS as readonly string[]).includes(value)) {
    throw new QueryError('bad-parameter', `${where}: ${value === undefined ? 'missing' : quote(JSON.stringify(value))}; one of ${DEAD_LETTER_REASONS.join(', ')}`);
  }
  return value as DeadLetterReason;
}

/** A bounded range [from, to): both ends are required, `from` before `to`. */
function rangeOf(from: unknown, to: unknown): { fromMs: number; toMs: number } {
  if (from === undefined || to === undefined || from === '' || to === '') {
    throw new QueryError('unbounded-range', 'from and to are both required (RFC 3339, e.g. 2026-11-01T00:00:00Z): a replay or listing never covers the whole dead-letter topic unasked');
  }
  const ms = (value: unknown, name: string): number => {
    if (typeof value !== 'string') throw new QueryError('bad-parameter', `${name}: an RFC 3339 date-time string`);
    const parsed = parseRfc3339(value, { spaceForPlus: true });
    if (!parsed.ok) throw new QueryError('bad-parameter', `${name}: ${rfc3339Refusal(quote(value), parsed)}`);
    return parsed.ms;
  };
  const fromMs = ms(from, 'from');
  const toMs = ms(to, 'to');
  if (fromMs >= toMs) throw new QueryError('bad-parameter', `from ${new Date(fromMs).toISOString()} is not before to ${new Date(toMs).toISOString()}`);
  return { fromMs, toMs };
}

export interface BulkReplayRequest {
  filter: LetterFilter & { reason: DeadLetterReason };
  dryRun: boolean;
}

/** `{"reason", "from", "to", "dryRun"}`: reason and both ends required; dryRun defaults to false. */
export function parseBulkRequest(body: unknown): BulkReplayRequest {
  if (!isObject(body)) throw new QueryError('bad-body', 'the body is a JSON object {"reason": "...", "from": "<RFC 3339>", "to": "<RFC 3339>", "dryRun": true|false}');
  unknownKeys(body, ['reason', 'from', 'to', 'dryRun'], 'body');
  const reason = reasonOf(body.reason, 'reason');
  const range = rangeOf(body.from, body.to);
  if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw new QueryError('bad-body', 'dryRun: true or false');
  return { filter: { reason, ...range }, dryRun: body.dryRun === true };
}

/** `?reason=&from=&to=&limit=`: the range is required, the reason optional. */
export function parseListQuery(params: URLSearchParams): { filter: LetterFilter; limit: number } {
  for (const name of params.keys()) {
    if (!['reason', 'from', 'to', 'limit'].includes(name)) throw new QueryError('bad-parameter', `unknown parameter ${quote(name)}; parameters: reason, from, to, limit`);
  }
  const reason = params.get('reason');
  const range = rangeOf(params.get('from') ?? undefined, params.get('to') ?? undefined);
  const rawLimit = params.get('limit');
  let limit = DEFAULT_LIST;
  if (rawLimit !== null) {
    if (!/^\d{1,7}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > MAX_LIST) throw new QueryError('bad-parameter', `limit: ${quote(rawLimit)} is not a number from 1 to ${MAX_LIST}`);
    limit = Number(rawLimit);
  }
  return { filter: { ...(reason === null || reason === '' ? {} : { reason: reasonOf(reason, 'reason') }), ...range }, limit };
}
