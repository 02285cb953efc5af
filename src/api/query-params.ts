import { QueryError } from '../errors.js';
import type { MeterCatalog } from '../usage/meters.js';
import { WINDOW_SIZES, type WindowSize, checkTimeZone } from '../usage/windows.js';
import { type UsageQuery, unknownMeter } from './read-model.js';
import { ConsistencyTokenError, type InputPosition, decodeConsistencyToken } from '../model/consistency-token.js';

/** The parameters of GET /v1/meters/{slug}/usage, as listed in error messages. */
export const USAGE_PARAMETERS = ['subject', 'from', 'to', 'windowSize', 'windowTimeZone', 'groupBy', 'filter[<group>]', 'consistentWith'] as const;
const CONSISTENT_WITH = 'consistentWith';

const SINGLE = new Set(['from', 'to', 'windowSize', 'windowTimeZone']);
const FILTER = /^filter\[(.+)\]$/s;
/**
 * RFC 3339 date-time (section 5.6) with a mandatory offset. A space where the offset's sign
 * belongs is an unencoded "+" that form decoding turned into a space (`...T00:00:00+01:00`
 * typed into a URL): it is read as "+", since nothing else can be meant there.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+\- ])(\d{2}):(\d{2}))$/;
const EXAMPLE = 'e.g. 2026-11-01T00:00:00Z or 2026-11-01T00:00:00+01:00';
const QUOTE_LIMIT = 64;
/** More tokens than this in one query is not a client's need (one per partition suffices). */
const MAX_TOKENS = 1_000;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/**
 * The usage query in the query string of GET /v1/meters/{slug}/usage. Throws QueryError
 * (unknown-meter 404, bad-parameter 400) naming the parameter and the offending value; group
 * names are checked against the meter by the read model.
 */
export function parseUsageQuery(slug: string, params: URLSearchParams, meters: MeterCatalog): UsageQuery {
  if (meters.get(slug) === undefined) throw unknownMeter(slug, meters);
  const subjects: string[] = [];
  const groupBy: string[] = [];
  const filter = new Map<string, string[]>();
  const single = new Map<string, string>();
  for (const [name, value] of params) {
    if (SINGLE.has(name)) {
      if (single.has(name)) throw bad(`${name}: given more than once (${quote(single.get(name) ?? '')} and ${quote(value)}); give it once`);
      single.set(name, value);
    } else if (name === 'subject') {
      if (value === '') throw bad('subject: empty; give a subject, or leave the parameter out for all subjects');
      subjects.push(value);
    } else if (name === CONSISTENT_WITH) {
      continue; // parseConsistentWith reads it
    } else if (name === 'groupBy') {
      for (const part of value.split(',')) {
        const group = part.trim();
        if (group === '') throw bad(`groupBy: ${quote(value)} has an empty name; give group names separated by commas, e.g. groupBy=subject,model`);
        groupBy.push(group);
      }
    } else {
      const group = FILTER.exec(name)?.[1];
      if (group === undefined) {
        throw bad(`unknown parameter ${quote(name)}; known parameters: ${USAGE_PARAMETERS.join(', ')}`);
      }
      const values = filter.get(group);
      if (values === undefined) filter.set(group, [value]);
      else values.push(value);
    }
  }
  const fromText = single.get('from');
  const toText = single.get('to');
  if (fromText === undefined) throw bad(`from: required (the inclusive start of the range, RFC 3339, ${EXAMPLE})`);
  if (toText === undefined) throw bad(`to: required (the exclusive end of the range, RFC 3339, ${EXAMPLE})`);
  const from = parseTimestamp('from', fromText);
  const to = parseTimestamp('to', toText);
  if (from >= to) throw bad(`from (${quote(fromText)}) must be before to (${quote(toText)})`);
  const windowSizeText = single.get('windowSize');
  const timeZoneText = single.get('windowTimeZone');
  return {
    meter: slug,
    subjects: subjects.length === 0 ? undefined : [...new Set(subjects)],
    from,
    to,
    windowSize: windowSizeText === undefined ? undefined : parseWindowSize(windowSizeText),
    timeZone: timeZoneText === undefined ? 'UTC' : parseTimeZone(timeZoneText),
    groupBy: [...new Set(groupBy)],
    // fromEntries defines own properties, so even a "__proto__" group stays an ordinary key.
    filter: Object.fromEntries(filter),
  };
}

/** The consistency tokens of a usage query (consistentWith, repeatable), deduplicated, in the order given. */
export interface ConsistencyRequest {
  tokens: string[];
  positions: InputPosition[];
}

/**
 * The `consistentWith` tokens of a usage query: 400 bad-parameter naming the token that is
 * not one, or that names another topic than the pipeline's input topic.
 */
export function parseConsistentWith(params: URLSearchParams, inputTopic: string): ConsistencyRequest {
  const tokens = [...new Set(params.getAll(CONSISTENT_WITH))];
  if (tokens.length > MAX_TOKENS) throw bad(`${CONSISTENT_WITH}: ${tokens.length} tokens; give at most ${MAX_TOKENS} (only the highest per partition matters)`);
  const positions = tokens.map((token) => {
    let position: InputPosition;
    try {
      position = decodeConsistencyToken(token);
    } catch (error) {
      if (error instanceof ConsistencyTokenError) throw bad(`${CONSISTENT_WITH}: ${error.message}`);
      throw error;
    }
    if (position.topic !== inputTopic) {
      throw bad(`${CONSISTENT_WITH}: token ${quote(token)} names topic ${quote(position.topic)}; this API answers for the input topic ${quote(inputTopic)}`);
    }
    return position;
  });
  return { tokens, positions };
}

/** Milliseconds since the epoch of a strict RFC 3339 date-time with an offset. */
export function parseTimestamp(parameter: string, text: string): number {
  const m = RFC3339.exec(text);
  const invalid = (why: string): QueryError => bad(`${parameter}: ${quote(text)} ${why}`);
  if (m === null) throw invalid(`is not an RFC 3339 date-time with an offset (${EXAMPLE})`);
  const [, y, mo, d, h, mi, s, fraction = '', zulu, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12) throw invalid(`has month ${mo}; months are 01-12`);
  const daysInMonth = month === 2 && isLeapYear(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 31);
  if (day < 1 || day > daysInMonth) throw invalid(`has day ${d}, but ${y}-${mo} has ${daysInMonth} days`);
  if (hour > 23) throw invalid(`has hour ${h}; hours are 00-23`);
  if (minute > 59) throw invalid(`has minute ${mi}; minutes are 00-59`);
  // Leap seconds (:60) have no millisecond of their own in Unix time.
  if (second > 59) throw invalid(`has second ${s}; seconds are 00-59 (leap seconds cannot be queried)`);
  if (/[1-9]/.test(fraction.slice(3))) throw invalid('has sub-millisecond digits; times are whole milliseconds');
  let offsetMinutes = 0;
  if (zulu === undefined) {
    const offsetHours = Number(oh);
    const offsetMins = Number(om);
    if (offsetHours > 23 || offsetMins > 59) throw invalid(`has offset ${sign === ' ' ? '+' : sign}${oh}:${om}; offsets are -23:59 to +23:59`);
    offsetMinutes = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const local = new Date(0);
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 literally.
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, Number(fraction.slice(0, 3).padEnd(3, '0')));
  return local.getTime() - offsetMinutes * 60_000;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function parseWindowSize(text: string): WindowSize {
  const size = WINDOW_SIZES.find((s) => s === text);
  if (size !== undefined) return size;
  const hint = WINDOW_SIZES.some((s) => s === text.toUpperCase()) ? ' (they are upper case)' : '';
  throw bad(`windowSize: ${quote(text)} is not one of ${WINDOW_SIZES.join(', ')}${hint}`);
}

/** The zone as given (the read model names it in the answer); checked here to blame the parameter. */
function parseTimeZone(text: string): string {
  try {
    checkTimeZone(text);
    return text;
  } catch (error) {
    if (error instanceof QueryError) {
      // Keep the windows module's explanation, but always say which parameter it is about.
      throw new QueryError(error.kind, error.message.startsWith('windowTimeZone') ? error.message : `windowTimeZone: ${error.message}`, error.status);
    }
    throw error;
  }
}

function bad(message: string): QueryError {
  return new QueryError('bad-parameter', message);
}

/** Values come from the URL: quote them (control characters visible) and cut them short. */
function quote(value: string): string {
  return value.length > QUOTE_LIMIT ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}... (${value.length} chars)` : JSON.stringify(value);
}
