import { QueryError } from '../errors.js';
import type { MeterCatalog } from '../usage/meters.js';
import { WINDOW_SIZES, type WindowSize, checkTimeZone } from '../usage/windows.js';
import { type UsageQuery, unknownMeter } from './read-model.js';
import { ConsistencyTokenError, type InputPosition, decodeConsistencyToken } from '../model/consistency-token.js';
import { RFC3339_EXAMPLE, parseRfc3339 } from '../model/rfc3339.js';

/** The parameters of GET /v1/meters/{slug}/usage, as listed in error messages. */
export const USAGE_PARAMETERS = ['subject', 'from', 'to', 'windowSize', 'windowTimeZone', 'groupBy', 'filter[<group>]', 'consistentWith', 'requireComplete'] as const;
const CONSISTENT_WITH = 'consistentWith';

const SINGLE = new Set(['from', 'to', 'windowSize', 'windowTimeZone', 'requireComplete']);
const FILTER = /^filter\[(.+)\]$/s;
const QUOTE_LIMIT = 64;
/** More tokens than this in one query is not a client's need (one per partition suffices). */
const MAX_TOKENS = 1_000;

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
  if (fromText === undefined) throw bad(`from: required (the inclusive start of the range, RFC 3339, ${RFC3339_EXAMPLE})`);
  if (toText === undefined) throw bad(`to: required (the exclusive end of the range, RFC 3339, ${RFC3339_EXAMPLE})`);
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

/**
 * `requireComplete=true`: a partitioned read side answers 503 partitions-unavailable rather
 * than a partial answer when some partition has no live holder. Default false.
 */
export function parseRequireComplete(params: URLSearchParams): boolean {
  const values = params.getAll('requireComplete');
  if (values.length > 1) throw bad('requireComplete: given more than once; give it once');
  const value = values[0];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw bad(`requireComplete: ${quote(value)} is not true or false`);
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

/**
 * Milliseconds since the epoch of a strict RFC 3339 date-time with an offset (whole
 * milliseconds). A space where the offset's sign belongs is an unencoded "+" that form
 * decoding turned into a space (`...T00:00:00+01:00` typed into a URL): read as "+".
 */
export function parseTimestamp(parameter: string, text: string): number {
  const parsed = parseRfc3339(text, { spaceForPlus: true });
  const invalid = (why: string): QueryError => bad(`${parameter}: ${quote(text)} ${why}`);
  if (!parsed.ok) throw invalid(parsed.why);
  if (parsed.subMillisecond) throw invalid('has sub-millisecond digits; times are whole milliseconds');
  return parsed.ms;
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
