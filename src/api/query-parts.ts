import { QueryError } from '../errors.js';
import { type AggregatePart, type UsageAggregate, combine } from '../usage/aggregation.js';
import { Decimal } from '../usage/decimal.js';
import { AGGREGATIONS, type Aggregation } from '../usage/meters.js';
import type { WindowSize } from '../usage/windows.js';
import { type QueryPlan, iso } from './query-plan.js';

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

/** What a query reads of a stored aggregate: a UsageAggregate is one; a store may keep no more. */
export type QueriedAggregate = Pick<UsageAggregate, 'subject' | 'groupBy'> & AggregatePart;

/** A cell of one output window as one holder of partitions computed it: mergeable with the same cell of the others. */
export interface PartCell {
  subject: string | null;
  groupBy: Record<string, string | null>;
  part: AggregatePart;
}

export interface PartsAnswer {
  /** Index = the plan's window index. */
  windows: PartCell[][];
}

export interface AggregateSource {
  /** Aggregates of one stored window (meter, size, start) in the given partitions (undefined: all held), optionally of listed subjects only. */
  window(meter: string, size: WindowSize, start: number, subjects: readonly string[] | undefined, partitions: ReadonlySet<number> | undefined): Iterable<QueriedAggregate>;
}

/** The cells of every output window of the plan, from the aggregates `source` holds in `partitions` (undefined: all it holds). */
export function collectParts(plan: QueryPlan, source: AggregateSource, partitions?: ReadonlySet<number>): PartsAnswer {
  const { meter, filter, subjects, groupNames, bySubject, unique } = plan;
  const allows = subjects === undefined ? plan.query.allowsSubject : undefined;
  const windows: PartCell[][] = [];
  for (const { pieces } of plan.windows) {
    const cells = new Map<string, PartCell>();
    for (const piece of pieces) {
      for (const aggregate of source.window(meter.slug, piece.size, piece.start, subjects, partitions)) {
        // A meter whose aggregation changed in the configuration: older aggregates do not combine with the new ones.
        if (aggregate.aggregation !== meter.aggregation || !matches(aggregate, filter)) continue;
        if (allows !== undefined && !allows(aggregate.subject)) continue;
        const subject = bySubject ? aggregate.subject : null;
        const values = groupNames.map((name) => groupValue(aggregate, name));
        const id = JSON.stringify([subject, ...values]);
        const cell = cells.get(id);
        if (cell === undefined) {
          const groupBy: Record<string, string | null> = {};
          groupNames.forEach((name, i) => (groupBy[name] = values[i] ?? null));
          cells.set(id, { subject, groupBy, part: aggregate });
        } else {
          // Only when the meter's groups changed since these aggregates were written.
          if (unique) throw groupsChanged(meter.slug, piece.start);
          cell.part = combine(cell.part, aggregate);
        }
      }
    }
    windows.push([...cells.values()]);
  }
  return { windows };
}

interface Cell {
  subject: string | null;
  groupBy: Record<string, string | null>;
  /** Identity of (subject, group values). */
  id: string;
  /** JSON of groupBy: the sort key after the subject. */
  groupJson: string;
  part: AggregatePart;
}

/**
 * The answer from the parts of every holder, exact: cells meeting across parts combine, as
 * cells meeting within one store do. Distinct counts never meet (a subject's aggregates live
 * in one partition); if they do (aggregates of one subject in two partitions) the answer is
 * refused as not exact. Parts that do not fit the plan (another meter configuration on a
 * peer, a malformed answer) are an Error naming the defect.
 */
export function mergeParts(plan: QueryPlan, answers: readonly PartsAnswer[]): UsageAnswer {
  const { meter, groupNames, bySubject, unique } = plan;
  for (const answer of answers) {
    if (answer.windows.length !== plan.windows.length) {
      throw new Error(`parts answer has ${answer.windows.length} windows, the plan ${plan.windows.length}`);
    }
  }
  const data: UsageRow[] = [];
  const totals = new Map<string, Cell>();
  plan.windows.forEach(({ window }, w) => {
    const cells = new Map<string, Cell>();
    for (const answer of answers) {
      for (const [i, parted] of answer.windows[w]!.entries()) {
        const at = `windows[${w}][${i}]`;
        if (parted.part.aggregation !== meter.aggregation) {
          throw new Error(`parts answer ${at}: aggregation ${parted.part.aggregation}, but meter ${meter.slug} is ${meter.aggregation}`);
        }
        if ((parted.subject === null) === bySubject) throw new Error(`parts answer ${at}: subject ${bySubject ? 'missing' : 'not asked for'}`);
        const extra = Object.keys(parted.groupBy).find((name) => !groupNames.includes(name));
        if (extra !== undefined) throw new Error(`parts answer ${at}: group ${JSON.stringify(extra)} was not asked for`);
        // In the plan's order, whatever the order of the part's keys: the same cell always sorts the same.
        const groupBy: Record<string, string | null> = {};
        for (const name of groupNames) groupBy[name] = parted.groupBy[name] ?? null;
        const id = JSON.stringify([parted.subject, ...groupNames.map((name) => groupBy[name])]);
        const cell = cells.get(id);
        if (cell === undefined) {
          cells.set(id, { subject: parted.subject, groupBy, id, groupJson: JSON.stringify(groupBy), part: parted.part });
        } else {
          if (unique) throw distinctCountsMeet(meter.slug, window.start);
          cell.part = combine(cell.part, parted.part);
        }
      }
    }
    const start = iso(window.start);
    const end = iso(window.end);
    for (const cell of [...cells.values()].sort(byRowOrder)) {
      data.push(row(start, end, cell));
      const total = totals.get(cell.id);
      if (total === undefined) totals.set(cell.id, { ...cell });
      else if (!unique) total.part = combine(total.part, cell.part);
    }
  });
  const q = plan.query;
  return {
    meter: meter.slug,
    aggregation: meter.aggregation,
    from: iso(q.from),
    to: iso(q.to),
    windowSize: q.windowSize ?? null,
    windowTimeZone: plan.timeZone,
    groupBy: plan.groupBy,
    data,
    totals: unique && plan.windows.length > 1 ? null : [...totals.values()].sort(byRowOrder).map((cell) => row(null, null, cell)),
    windowsRead: plan.windowsRead,
  };
}

// ---- the wire form ------------------------------------------------------------------------

/** Names the wire form; a peer speaking another one is refused, not misread. */
export const PARTS_FORMAT = 'ordo-parts/1';

/** A cell on the wire: one array, so an answer with many cells stays small. */
type WireCell = [
  subject: string | null,
  groupBy: Record<string, string | null>,
  aggregation: Aggregation,
  value: string,
  sum: string | null,
  count: number,
  firstEventTime: number,
  lastEventTime: number,
  lastServiceTime: string,
  lastServiceNode: string,
];

/** The JSON body a holder sends back (JSON.stringify it). */
export function encodePartsAnswer(a: PartsAnswer): unknown {
  return {
    format: PARTS_FORMAT,
    windows: a.windows.map((cells) =>
      cells.map(({ subject, groupBy, part: p }): WireCell => [
        subject,
        groupBy,
        p.aggregation,
        p.value,
        p.sum,
        p.count,
        p.firstEventTime,
        p.lastEventTime,
        p.lastServiceTime,
        p.lastServiceNode,
      ]),
    ),
  };
}

const SERVICE_TIME = /^[0-9a-f]{16}$/;

/** A parts answer from its JSON (a peer's HTTP body), checked field by field: an Error names the first defect. */
export function decodePartsAnswer(json: unknown): PartsAnswer {
  if (!isRecord(json)) throw new Error(`parts answer: expected an object, got ${describe(json)}`);
  if (json.format !== PARTS_FORMAT) throw new Error(`parts answer: format ${describe(json.format)}, expected ${JSON.stringify(PARTS_FORMAT)}`);
  if (!Array.isArray(json.windows)) throw new Error(`parts answer: windows: expected an array, got ${describe(json.windows)}`);
  const windows = (json.windows as unknown[]).map((cells, w) => {
    if (!Array.isArray(cells)) throw new Error(`parts answer: windows[${w}]: expected an array, got ${describe(cells)}`);
    return (cells as unknown[]).map((cell, i) => decodeCell(cell, `windows[${w}][${i}]`));
  });
  return { windows };
}

function decodeCell(cell: unknown, at: string): PartCell {
  const fail = (what: string, value: unknown): never => {
    throw new Error(`parts answer: ${at}${what}: got ${describe(value)}`);
  };
  if (!Array.isArray(cell) || cell.length !== 10) return fail(': expected an array of 10 fields', cell);
  const [subject, groupBy, aggregation, value, sum, count, first, last, time, node] = cell as unknown[];
  if (subject !== null && typeof subject !== 'string') fail('.subject: expected a string or null', subject);
  if (!isRecord(groupBy)) return fail('.groupBy: expected an object', groupBy);
  for (const [name, v] of Object.entries(groupBy)) if (v !== null && typeof v !== 'string') fail(`.groupBy.${name}: expected a string or null`, v);
  if (!(AGGREGATIONS as readonly unknown[]).includes(aggregation)) fail(`.aggregation: expected one of ${AGGREGATIONS.join(', ')}`, aggregation);
  if (!isDecimal(value)) fail('.value: expected a decimal string', value);
  if (sum !== null && !isDecimal(sum)) fail('.sum: expected a decimal string or null', sum);
  if (!Number.isSafeInteger(count) || (count as number) < 0) fail('.count: expected a whole number >= 0', count);
  if (!Number.isSafeInteger(first)) fail('.firstEventTime: expected whole milliseconds', first);
  if (!Number.isSafeInteger(last)) fail('.lastEventTime: expected whole milliseconds', last);
  if (typeof time !== 'string' || !SERVICE_TIME.test(time)) fail('.lastServiceTime: expected 16 lowercase hex digits', time);
  if (typeof node !== 'string') fail('.lastServiceNode: expected a string', node);
  return {
    subject: subject as string | null,
    groupBy: groupBy as Record<string, string | null>,
    part: {
      aggregation: aggregation as Aggregation,
      value: value as string,
      sum: sum as string | null,
      count: count as number,
      firstEventTime: first as number,
      lastEventTime: last as number,
      lastServiceTime: time as string,
      lastServiceNode: node as string,
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDecimal(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    Decimal.parse(value);
    return true;
  } catch {
    return false;
  }
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

// ---- cells and rows -----------------------------------------------------------------------

function groupValue(aggregate: QueriedAggregate, name: string): string | null {
  return Object.hasOwn(aggregate.groupBy, name) ? (aggregate.groupBy[name] ?? null) : null;
}

function matches(aggregate: QueriedAggregate, filter: [string, Set<string>][]): boolean {
  for (const [name, accepted] of filter) {
    const value = groupValue(aggregate, name);
    if (value === null || !accepted.has(value)) return false;
  }
  return true;
}

function groupsChanged(meter: string, windowStart: number): QueryError {
  return new QueryError(
    'not-exact',
    `meter ${meter} counts distinct values (UNIQUE_COUNT), and window ${iso(windowStart)} holds aggregates written with ` +
      'other groups than the meter has now; distinct counts of different groups cannot be added',
  );
}

function distinctCountsMeet(meter: string, windowStart: number): QueryError {
  return new QueryError(
    'not-exact',
    `meter ${meter} counts distinct values (UNIQUE_COUNT), and the window from ${iso(windowStart)} has the same cell in two partitions ` +
      '(aggregates of one subject written to two partitions); distinct counts of different partitions cannot be added',
  );
}

function row(windowStart: string | null, windowEnd: string | null, cell: Cell): UsageRow {
  return { windowStart, windowEnd, subject: cell.subject, groupBy: cell.groupBy, value: cell.part.value, count: cell.part.count };
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
