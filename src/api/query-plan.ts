import { QueryError } from '../errors.js';
import { type RetentionPolicy, tileAvailable } from '../usage/retention.js';
import type { Meter, MeterCatalog } from '../usage/meters.js';
import { type SizedWindow, type Window, type WindowSize, checkTimeZone, zonedWindows } from '../usage/windows.js';

/** A usage query, already parsed (see query-params.ts); the plan checks it against the meter. */
export interface UsageQuery {
  meter: string;
  /** undefined: all subjects. */
  subjects: string[] | undefined;
  /** Milliseconds since the epoch, [from, to). */
  from: number;
  to: number;
  /** undefined: one row per group over the whole range. */
  windowSize: WindowSize | undefined;
  /** IANA name; output windows follow its calendar. 'UTC' by default. */
  timeZone: string;
  /** Meter group names and/or 'subject'. */
  groupBy: string[];
  /** Group name -> accepted values: OR within a name, AND across names. */
  filter: Record<string, string[]>;
  /** The caller's subject scope (src/auth): subjects it rejects are never read. undefined: all. */
  allowsSubject?: (subject: string) => boolean;
}

/**
 * What a usage query reads, decided once before any aggregate is looked at: the checked
 * parameters and, per output window, the stored windows that tile it. Every replica that
 * answers a part of a query (query-parts.ts) works from the same plan, so the parts merge.
 */
export interface QueryPlan {
  meter: Meter;
  query: UsageQuery;
  /** The zone as the answer names it. */
  timeZone: string;
  /** Checked and deduplicated: group names and/or 'subject'. */
  groupBy: string[];
  /** groupBy without 'subject': the meter groups a cell is keyed by. */
  groupNames: string[];
  bySubject: boolean;
  filter: [string, Set<string>][];
  /** Deduplicated and already narrowed to the caller's scope; undefined: every subject the scope allows. */
  subjects: string[] | undefined;
  /** UNIQUE_COUNT: cells are single stored aggregates, never combined. */
  unique: boolean;
  windows: { window: Window; pieces: SizedWindow[] }[];
  /** Stored windows the plan reads (on each partition). */
  windowsRead: number;
}

export interface PlanOptions {
  /** Refuse queries needing more stored-window lookups than this (default 100,000). */
  maxWindowsRead?: number;
  /** Expired window sizes are read from coarser ones where exact (usage/retention.ts). */
  retention?: RetentionPolicy;
  /** The clock retention is judged by (ms; default now). */
  now?: number;
}

export const DEFAULT_MAX_WINDOWS_READ = 100_000;
/** The longest span of each window size (a month is at most 31 days). */
const MAX_WINDOW_MS: Record<WindowSize, number> = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000, MONTH: 31 * 86_400_000 };
export const SUBJECT = 'subject';

/** Checks a query against its meter and tiles its output windows; throws QueryError. Pure. */
export function planQuery(meters: MeterCatalog, q: UsageQuery, options: PlanOptions = {}): QueryPlan {
  const maxWindowsRead = options.maxWindowsRead ?? DEFAULT_MAX_WINDOWS_READ;
  const meter = meters.get(q.meter);
  if (meter === undefined) throw unknownMeter(q.meter, meters);
  if (!Number.isSafeInteger(q.from) || !Number.isSafeInteger(q.to)) {
    throw new QueryError('bad-parameter', `from and to must be whole milliseconds, got from=${q.from}, to=${q.to}`);
  }
  if (q.from >= q.to) {
    throw new QueryError('bad-parameter', `from (${iso(q.from)}) must be before to (${iso(q.to)})`);
  }
  const timeZone = zoneName(q.timeZone);
  const groupBy = checkGroupBy(meter, q.groupBy);
  const filter = checkFilter(meter, q.filter);
  const allows = q.allowsSubject;
  const subjects = q.subjects === undefined ? undefined : [...new Set(q.subjects)].filter((s) => allows === undefined || allows(s));
  const unique = meter.aggregation === 'UNIQUE_COUNT';
  if (unique) checkUniqueCountShape(meter, groupBy, subjects);

  // Tiling lists every piece: first refuse what needs too many even if every piece were the longest.
  const coarsest = meter.windows.reduce((ms, size) => Math.max(ms, MAX_WINDOW_MS[size]), 0);
  if ((q.to - q.from) / coarsest > maxWindowsRead) throw tooManyReads(meter, maxWindowsRead);
  const outputs: Window[] = q.windowSize === undefined ? [{ start: q.from, end: q.to }] : zonedWindows(q.from, q.to, q.windowSize, timeZone);
  const windows: QueryPlan['windows'] = [];
  let windowsRead = 0;
  for (const window of outputs) {
    const pieces = tileAvailable(window.start, window.end, meter.windows, options.retention, options.now);
    if (unique && pieces.length !== 1) throw uniqueCountSpansWindows(meter, window, pieces.length, q.windowSize);
    windowsRead += pieces.length;
    if (windowsRead > maxWindowsRead) throw tooManyReads(meter, maxWindowsRead);
    windows.push({ window, pieces });
  }
  return {
    meter,
    query: q,
    timeZone,
    groupBy,
    groupNames: groupBy.filter((name) => name !== SUBJECT),
    bySubject: groupBy.includes(SUBJECT),
    filter,
    subjects,
    unique,
    windows,
    windowsRead,
  };
}

/** 404 naming the slug asked for (cut short: it comes from the URL) and the configured ones. */
export function unknownMeter(slug: string, meters: MeterCatalog): QueryError {
  const known = meters.meters.map((m) => m.slug);
  const asked = slug.length > 64 ? `${JSON.stringify(slug.slice(0, 64))}... (${slug.length} chars)` : JSON.stringify(slug);
  return new QueryError('unknown-meter', `no meter ${asked}; known meters: ${known.length === 0 ? '(none)' : known.join(', ')}`, 404);
}

export function iso(ms: number): string {
  const date = new Date(ms);
  // Only error messages can meet an instant outside the Date range (the windows module refuses those ranges).
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function tooManyReads(meter: Meter, max: number): QueryError {
  return new QueryError(
    'too-many-windows',
    `the query needs more than ${max} stored-window reads (meter ${meter.slug} keeps ${meter.windows.join(', ')}); ask for a shorter range or a coarser windowSize`,
  );
}

/**
 * The zone as the answer names it: the caller's spelling, case fixed. Not Intl's canonical
 * name, which is often a retired one (ICU resolves Asia/Kolkata to Asia/Calcutta).
 */
function zoneName(asked: string): string {
  const canonical = checkTimeZone(asked);
  return canonical.toLowerCase() === asked.toLowerCase() ? canonical : asked;
}

function checkGroupBy(meter: Meter, groupBy: string[]): string[] {
  const allowed = [SUBJECT, ...Object.keys(meter.groupBy)];
  for (const name of groupBy) {
    if (!allowed.includes(name)) {
      throw new QueryError('bad-parameter', `groupBy: ${JSON.stringify(name)} is not a group of meter ${meter.slug}; allowed: ${allowed.join(', ')}`);
    }
  }
  return [...new Set(groupBy)];
}

function checkFilter(meter: Meter, filter: Record<string, string[]>): [string, Set<string>][] {
  const allowed = Object.keys(meter.groupBy);
  const checked: [string, Set<string>][] = [];
  for (const [name, values] of Object.entries(filter)) {
    if (!allowed.includes(name)) {
      const hint = name === SUBJECT ? ' (select subjects with the subject parameter)' : '';
      throw new QueryError(
        'bad-parameter',
        `filter[${name}]: ${JSON.stringify(name)} is not a group of meter ${meter.slug}${hint}; allowed: ${allowed.length === 0 ? '(the meter has no groups)' : allowed.join(', ')}`,
      );
    }
    if (values.length === 0) throw new QueryError('bad-parameter', `filter[${name}]: needs at least one value`);
    checked.push([name, new Set(values)]);
  }
  return checked;
}

/** Distinct counts cannot be added: each answer cell must be exactly one stored aggregate. */
function checkUniqueCountShape(meter: Meter, groupBy: string[], subjects: string[] | undefined): void {
  const what = `meter ${meter.slug} counts distinct values (UNIQUE_COUNT), which cannot be added up`;
  const missing = Object.keys(meter.groupBy).filter((name) => !groupBy.includes(name));
  if (missing.length > 0) {
    throw new QueryError('not-exact', `${what} across groups: add groupBy=${missing.join(',')} (every group of the meter must be grouped by)`);
  }
  if (!groupBy.includes(SUBJECT) && subjects?.length !== 1) {
    throw new QueryError('not-exact', `${what} across subjects: ask exactly one subject, or add groupBy=subject`);
  }
}

function uniqueCountSpansWindows(meter: Meter, window: Window, pieces: number, windowSize: WindowSize | undefined): QueryError {
  const asked = windowSize === undefined ? 'the range' : `the output window`;
  return new QueryError(
    'not-exact',
    `meter ${meter.slug} counts distinct values (UNIQUE_COUNT), which cannot be added up across windows: ${asked} ` +
      `[${iso(window.start)}, ${iso(window.end)}) spans ${pieces} stored windows. Ask a windowSize the meter keeps ` +
      `(${meter.windows.join(', ')}) with windowTimeZone=UTC, or a range that is exactly one such window`,
  );
}
