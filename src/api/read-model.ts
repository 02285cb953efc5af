import { QueryError } from '../errors.js';
import { type AggregatePart, type UsageAggregate, combine } from '../usage/aggregation.js';
import type { Aggregation, Meter, MeterCatalog } from '../usage/meters.js';
import { type SizedWindow, type Window, type WindowSize, checkTimeZone, tileRange, zonedWindows } from '../usage/windows.js';

/** A usage query, already parsed (see query-params.ts); the read model checks it against the meter. */
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

/** One cell of an answer: a window (null in totals), a subject (null unless grouped by) and group values. */
export interface UsageRow {
  windowStart: string | null;
  windowEnd: string | null;
  subject: string | null;
  /** Requested group name -> value; null when the events had no value for that group. */
  groupBy: Record<string, string | null>;
  /** Canonical decimal string. */
  value: string;
  /** Events aggregated into the cell. */
  count: number;
}

export interface UsageAnswer {
  meter: string;
  aggregation: Aggregation;
  from: string;
  to: string;
  windowSize: WindowSize | null;
  windowTimeZone: string;
  groupBy: string[];
  /** Sparse: windows and groups without events have no row. */
  data: UsageRow[];
  /** One row per (subject, groups) over the whole range; null when it cannot be computed exactly (UNIQUE_COUNT over several windows). */
  totals: UsageRow[] | null;
  /** Stored windows looked up to answer: the read cost, independent of the number of events. */
  windowsRead: number;
}

export interface ReadModelOptions {
  /** Refuse queries needing more stored-window lookups than this (default 100,000). */
  maxWindowsRead?: number;
}

const DEFAULT_MAX_WINDOWS_READ = 100_000;
/** The longest span of each window size (a month is at most 31 days). */
const MAX_WINDOW_MS: Record<WindowSize, number> = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000, MONTH: 31 * 86_400_000 };
const SUBJECT = 'subject';

/** aggregate key -> aggregate, for one subject in one stored window. */
type SubjectAggregates = Map<string, UsageAggregate>;
/** subject -> its aggregates, for one (meter, window size, window start). */
type Bucket = Map<string, SubjectAggregates>;

interface Cell {
  subject: string | null;
  groupBy: Record<string, string | null>;
  /** Identity of (subject, group values). */
  id: string;
  /** JSON of groupBy: the sort key after the subject. */
  groupJson: string;
  partial: AggregatePart;
}

/**
 * The `api` role's in-memory view of the compacted aggregates topic, indexed by stored window
 * so that a query reads only the windows it asks about: its cost is the number of windows,
 * never the number of events. Pure: the consumer feeds it with `apply`.
 */
export class ReadModel {
  private readonly buckets = new Map<string, Bucket>();
  private held = 0;
  private readonly maxWindowsRead: number;

  constructor(
    private readonly meters: MeterCatalog,
    options: ReadModelOptions = {},
  ) {
    this.maxWindowsRead = options.maxWindowsRead ?? DEFAULT_MAX_WINDOWS_READ;
  }

  /** Aggregates held. */
  get size(): number {
    return this.held;
  }

  /**
   * Applies one record of the aggregates topic, keeping the highest version per key: a
   * re-delivered older version is ignored. Aggregates of meters not in the catalog are kept
   * (the meter may come back in the configuration) but cannot be queried.
   */
  apply(key: string, aggregate: UsageAggregate): void {
    const id = bucketId(aggregate.meter, aggregate.windowSize, aggregate.windowStart);
    let bucket = this.buckets.get(id);
    if (bucket === undefined) {
      bucket = new Map();
      this.buckets.set(id, bucket);
    }
    let aggregates = bucket.get(aggregate.subject);
    if (aggregates === undefined) {
      aggregates = new Map();
      bucket.set(aggregate.subject, aggregates);
    }
    const current = aggregates.get(key);
    if (current === undefined) this.held += 1;
    else if (current.version >= aggregate.version) return;
    aggregates.set(key, aggregate);
  }

  /**
   * A tombstone of the aggregates topic (a subject deletion's sweep): the aggregate leaves.
   * The key says where it is (meter, subject, window): see usage/aggregation.ts aggregateKey.
   */
  remove(key: string): void {
    let parts: unknown;
    try {
      parts = JSON.parse(key);
    } catch {
      return;
    }
    if (!Array.isArray(parts) || parts.length !== 5) return;
    const [meter, subject, , size, startIso] = parts as [string, string, unknown, WindowSize, string];
    const id = bucketId(meter, size, Date.parse(startIso));
    const bucket = this.buckets.get(id);
    const aggregates = bucket?.get(subject);
    if (bucket === undefined || aggregates === undefined || !aggregates.delete(key)) return;
    this.held -= 1;
    if (aggregates.size === 0) bucket.delete(subject);
    if (bucket.size === 0) this.buckets.delete(id);
  }

  query(q: UsageQuery): UsageAnswer {
    const meter = this.meters.get(q.meter);
    if (meter === undefined) throw unknownMeter(q.meter, this.meters);
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
    if (meter.aggregation === 'UNIQUE_COUNT') checkUniqueCountShape(meter, groupBy, subjects);

    // tileRange lists every piece: first refuse what needs too many even if every piece were the longest.
    const coarsest = meter.windows.reduce((ms, size) => Math.max(ms, MAX_WINDOW_MS[size]), 0);
    if ((q.to - q.from) / coarsest > this.maxWindowsRead) throw tooManyReads(meter, this.maxWindowsRead);
    const outputs: Window[] = q.windowSize === undefined ? [{ start: q.from, end: q.to }] : zonedWindows(q.from, q.to, q.windowSize, timeZone);
    const plan: { window: Window; pieces: SizedWindow[] }[] = [];
    let reads = 0;
    for (const window of outputs) {
      const pieces = tileRange(window.start, window.end, meter.windows);
      if (meter.aggregation === 'UNIQUE_COUNT' && pieces.length !== 1) throw uniqueCountSpansWindows(meter, window, pieces.length, q.windowSize);
      reads += pieces.length;
      if (reads > this.maxWindowsRead) throw tooManyReads(meter, this.maxWindowsRead);
      plan.push({ window, pieces });
    }

    const groupNames = groupBy.filter((name) => name !== SUBJECT);
    const bySubject = groupBy.includes(SUBJECT);
    const data: UsageRow[] = [];
    const totals = new Map<string, Cell>();
    const unique = meter.aggregation === 'UNIQUE_COUNT';
    let windowsRead = 0;
    for (const { window, pieces } of plan) {
      const cells = new Map<string, Cell>();
      for (const piece of pieces) {
        windowsRead += 1;
        const bucket = this.buckets.get(bucketId(meter.slug, piece.size, piece.start));
        if (bucket === undefined) continue;
        const visit = (subject: string, aggregates: SubjectAggregates): void => {
          for (const aggregate of aggregates.values()) {
            // A meter whose aggregation changed in the configuration: older aggregates do not combine with the new ones.
            if (aggregate.aggregation !== meter.aggregation || !matches(aggregate, filter)) continue;
            addToCell(cells, bySubject ? subject : null, groupNames, aggregate, unique);
          }
        };
        if (subjects === undefined) {
          for (const [subject, aggregates] of bucket) if (allows === undefined || allows(subject)) visit(subject, aggregates);
        } else {
          for (const subject of subjects) {
            const aggregates = bucket.get(subject);
            if (aggregates !== undefined) visit(subject, aggregates);
          }
        }
      }
      const start = iso(window.start);
      const end = iso(window.end);
      for (const cell of [...cells.values()].sort(byRowOrder)) {
        data.push(row(start, end, cell));
        const total = totals.get(cell.id);
        if (total === undefined) totals.set(cell.id, { ...cell });
        else if (!unique) total.partial = combine(total.partial, cell.partial);
      }
    }
    return {
      meter: meter.slug,
      aggregation: meter.aggregation,
      from: iso(q.from),
      to: iso(q.to),
      windowSize: q.windowSize ?? null,
      windowTimeZone: timeZone,
      groupBy,
      data,
      totals: unique && plan.length > 1 ? null : [...totals.values()].sort(byRowOrder).map((cell) => row(null, null, cell)),
      windowsRead,
    };
  }
}

/** 404 naming the slug asked for (cut short: it comes from the URL) and the configured ones. */
export function unknownMeter(slug: string, meters: MeterCatalog): QueryError {
  const known = meters.meters.map((m) => m.slug);
  const asked = slug.length > 64 ? `${JSON.stringify(slug.slice(0, 64))}... (${slug.length} chars)` : JSON.stringify(slug);
  return new QueryError('unknown-meter', `no meter ${asked}; known meters: ${known.length === 0 ? '(none)' : known.join(', ')}`, 404);
}

function tooManyReads(meter: Meter, max: number): QueryError {
  return new QueryError(
    'too-many-windows',
    `the query needs more than ${max} stored-window reads (meter ${meter.slug} keeps ${meter.windows.join(', ')}); ask for a shorter range or a coarser windowSize`,
  );
}

function bucketId(meter: string, size: WindowSize, start: number): string {
  // Slugs are [a-z0-9_-]: a NUL never occurs in them.
  return `${meter}\u0000${size}\u0000${start}`;
}

/**
 * The zone as the answer names it: the caller's spelling, case fixed. Not Intl's canonical
 * name, which is often a retired one (ICU resolves Asia/Kolkata to Asia/Calcutta).
 */
function zoneName(asked: string): string {
  const canonical = checkTimeZone(asked);
  return canonical.toLowerCase() === asked.toLowerCase() ? canonical : asked;
}

function iso(ms: number): string {
  const date = new Date(ms);
  // Only error messages can meet an instant outside the Date range (the windows module refuses those ranges).
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function groupValue(aggregate: UsageAggregate, name: string): string | null {
  return Object.hasOwn(aggregate.groupBy, name) ? (aggregate.groupBy[name] ?? null) : null;
}

function matches(aggregate: UsageAggregate, filter: [string, Set<string>][]): boolean {
  for (const [name, accepted] of filter) {
    const value = groupValue(aggregate, name);
    if (value === null || !accepted.has(value)) return false;
  }
  return true;
}

function addToCell(cells: Map<string, Cell>, subject: string | null, names: string[], aggregate: UsageAggregate, unique: boolean): void {
  const values = names.map((name) => groupValue(aggregate, name));
  const id = JSON.stringify([subject, ...values]);
  const cell = cells.get(id);
  if (cell === undefined) {
    const groupBy: Record<string, string | null> = {};
    names.forEach((name, i) => (groupBy[name] = values[i] ?? null));
    cells.set(id, { subject, groupBy, id, groupJson: JSON.stringify(groupBy), partial: aggregate });
    return;
  }
  if (unique) {
    // Only when the meter's groups changed since these aggregates were written.
    throw new QueryError(
      'not-exact',
      `meter ${aggregate.meter} counts distinct values (UNIQUE_COUNT), and window ${iso(aggregate.windowStart)} holds aggregates written with ` +
        'other groups than the meter has now; distinct counts of different groups cannot be added',
    );
  }
  cell.partial = combine(cell.partial, aggregate);
}

function row(windowStart: string | null, windowEnd: string | null, cell: Cell): UsageRow {
  return { windowStart, windowEnd, subject: cell.subject, groupBy: cell.groupBy, value: cell.partial.value, count: cell.partial.count };
}

/** Cells of one window, or totals: by subject, then the JSON of the group values (code-unit order, so stable across locales). */
function byRowOrder(a: Cell, b: Cell): number {
  if (a.subject !== b.subject) {
    if (a.subject === null) return -1;
    if (b.subject === null) return 1;
    return a.subject < b.subject ? -1 : 1;
  }
  return a.groupJson < b.groupJson ? -1 : a.groupJson > b.groupJson ? 1 : 0;
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
