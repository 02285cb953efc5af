import fc from 'fast-check';
import { expect } from 'vitest';
import { planQuery, type UsageQuery } from '../../../src/api/query-plan.js';
import { type AggregateSource, type PartsAnswer, collectParts, decodePartsAnswer, encodePartsAnswer, mergeParts } from '../../../src/api/query-parts.js';
import { ReadModel } from '../../../src/api/read-model.js';
import { type AggregateCoordinates, type UsageAggregate, addMeasurement, aggregateKey } from '../../../src/usage/aggregation.js';
import { Decimal } from '../../../src/usage/decimal.js';
import { type Aggregation, type Meter, MeterCatalog } from '../../../src/usage/meters.js';
import { type WindowSize, windowEnd, windowStart, zonedWindows } from '../../../src/usage/windows.js';

/**
 * Random aggregates spread over partitions, random usage queries, and the check that the
 * parts of any split of the partitions merge into the single-holder answer (ReadModel, the
 * oracle). Shared by the in-memory source's and the lmdb ReadStore's property tests.
 */

const SUBJECTS = ['acme', 'globex', 'a"q', 'a#q', 'ünï'];
const SPAN_START = Date.UTC(2026, 9, 30); // the US leaves daylight saving time on 2026-11-01
const SPAN_END = Date.UTC(2026, 10, 3);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function meter(slug: string, aggregation: Aggregation, windows: WindowSize[], groupBy: Record<string, string> = { model: 'model', region: 'region' }): Meter {
  return { slug, description: undefined, eventTypes: ['api.request'], aggregation, valueProperty: aggregation === 'COUNT' ? undefined : { kind: 'value' }, groupBy, windows };
}

export const ADDITIVE: Meter[] = [
  meter('sum', 'SUM', ['HOUR', 'DAY', 'MONTH']),
  meter('count', 'COUNT', ['HOUR', 'DAY']),
  meter('min', 'MIN', ['HOUR', 'DAY', 'MONTH']),
  meter('max', 'MAX', ['HOUR', 'DAY']),
  meter('avg', 'AVG', ['HOUR', 'DAY', 'MONTH']),
  meter('latest', 'LATEST', ['HOUR', 'DAY']),
  meter('minutes', 'SUM', ['MINUTE', 'HOUR'], {}),
];
export const UNIQUE = meter('unique', 'UNIQUE_COUNT', ['HOUR', 'DAY'], { model: 'model' });
export const ALL_METERS = [...ADDITIVE, UNIQUE];
export const CATALOG = new MeterCatalog(ALL_METERS);

interface RawEvent {
  subject: string;
  time: number;
  units: bigint;
  member: string;
  model: string | undefined;
  region: string | undefined;
  orderTime: bigint;
  orderNode: string;
}

export const anyEvents: fc.Arbitrary<RawEvent[]> = fc
  .array(
    fc.record({
      subject: fc.constantFrom(...SUBJECTS),
      time: fc.integer({ min: SPAN_START, max: SPAN_END - 1 }),
      units: fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: -100_000n, max: 100_000n }) }, { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }) }),
      member: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
      model: fc.constantFrom('x', 'y', undefined),
      region: fc.constantFrom('eu', 'us', undefined),
      rank: fc.integer({ min: 0, max: 50 }),
      orderNode: fc.constantFrom('node-a', 'node-b'),
    }),
    { minLength: 1, maxLength: 120, size: 'large' },
  )
  // Order keys are unique per event, as the pipeline's stamps are (LATEST never meets a tie).
  .map((events) => events.map(({ rank, ...e }, i) => ({ ...e, orderTime: BigInt(rank) * 4096n + BigInt(i) })));

/** Every version of every aggregate of the events, as the pipeline's fold writes them. */
export function writeAggregates(meters: readonly Meter[], events: readonly RawEvent[]): Map<string, UsageAggregate[]> {
  const versions = new Map<string, UsageAggregate[]>();
  const members = new Set<string>();
  for (const e of events) {
    for (const m of meters) {
      for (const size of m.windows) {
        const start = windowStart(e.time, size);
        const groupBy: Record<string, string> = {};
        if ('model' in m.groupBy && e.model !== undefined) groupBy.model = e.model;
        if ('region' in m.groupBy && e.region !== undefined) groupBy.region = e.region;
        const at: AggregateCoordinates = { meter: m.slug, aggregation: m.aggregation, subject: e.subject, groupBy, windowSize: size, windowStart: start, windowEnd: windowEnd(start, size) };
        const key = aggregateKey(at);
        const memberKey = `${key}\u0000${e.member}`;
        const newMember = m.aggregation === 'UNIQUE_COUNT' && !members.has(memberKey);
        if (newMember) members.add(memberKey);
        const history = versions.get(key) ?? [];
        history.push(
          addMeasurement(history.at(-1), at, {
            value: m.aggregation === 'COUNT' || m.aggregation === 'UNIQUE_COUNT' ? undefined : Decimal.parse(thousandths(e.units)),
            newMember,
            eventTime: e.time,
            orderTime: e.orderTime,
            orderNode: e.orderNode,
          }),
        );
        versions.set(key, history);
      }
    }
  }
  return versions;
}

/** Canonical decimal text of units / 1000. */
function thousandths(units: bigint): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(4, '0');
  const fraction = digits.slice(-3).replace(/0+$/, '');
  return `${negative ? '-' : ''}${digits.slice(0, -3)}${fraction === '' ? '' : `.${fraction}`}`;
}

/** How the keys lie in partitions and how the partitions are split among holders. */
export interface Placement {
  partitions: number;
  /** Salt of the key -> partition hash. */
  salt: number;
  /** Per partition, the holder (group) answering for it. */
  holders: number[];
}

export const anyPlacement: fc.Arbitrary<Placement> = fc
  .integer({ min: 1, max: 6 })
  .chain((partitions) => fc.record({ partitions: fc.constant(partitions), salt: fc.nat(), holders: fc.array(fc.nat({ max: partitions - 1 }), { minLength: partitions, maxLength: partitions }) }));

/** The partition of a key: a hash of it (aggregates of one subject may lie apart: merges must not care). */
export function partitionOf(key: string, p: Placement): number {
  let h = p.salt;
  for (let i = 0; i < key.length; i += 1) h = (Math.imul(h, 31) + key.charCodeAt(i)) >>> 0;
  return h % p.partitions;
}

/** Partition sets, one per holder that holds any. */
export function splits(p: Placement): Set<number>[] {
  const groups = new Map<number, Set<number>>();
  p.holders.forEach((holder, partition) => {
    const set = groups.get(holder) ?? new Set<number>();
    set.add(partition);
    groups.set(holder, set);
  });
  return [...groups.values()];
}

/**
 * What a holder sees: some keys with their whole history, some only the last version (as
 * after compaction), some with an older version re-delivered after the newest (a consumer
 * restarting from an older offset): the newest must win everywhere.
 */
export function deliveries(versions: Map<string, UsageAggregate[]>): { key: string; aggregate: UsageAggregate }[] {
  const out: { key: string; aggregate: UsageAggregate }[] = [];
  let i = 0;
  for (const [key, history] of versions) {
    i += 1;
    if (i % 3 === 0) for (const aggregate of history) out.push({ key, aggregate });
    else out.push({ key, aggregate: history.at(-1)! });
    if (i % 2 === 0 && history.length > 1) out.push({ key, aggregate: history[i % (history.length - 1)]! });
  }
  return out;
}

export function oracleOf(versions: Map<string, UsageAggregate[]>): ReadModel {
  const model = new ReadModel(CATALOG);
  for (const { key, aggregate } of deliveries(versions)) model.apply(key, aggregate);
  return model;
}

const boundaries = new Map<string, number[]>();
/** Where output windows of `size` start in `zone` around the events' span (New York: UTC-4 until 2026-11-01, then UTC-5). */
function boundaryList(size: WindowSize | undefined, zone: string): number[] {
  const id = `${size ?? 'HOUR'}/${zone}`;
  let list = boundaries.get(id);
  if (list === undefined) {
    const daylight = zone === 'UTC' || size === 'HOUR' || size === undefined ? [0, 0] : [4 * HOUR, 5 * HOUR];
    const [first, last] = size === 'MONTH' ? [Date.UTC(2026, 9, 1), Date.UTC(2026, 11, 1)] : [SPAN_START - 2 * DAY, SPAN_END + 2 * DAY];
    const windows = zonedWindows(first + daylight[0]!, last + daylight[1]!, size ?? 'HOUR', zone);
    list = [windows[0]!.start, ...windows.map((w) => w.end)];
    boundaries.set(id, list);
  }
  return list;
}

/** Additive queries of any shape: aligned ranges in UTC or New York, any window size, grouping, filter, subjects, scope. */
export const anyAdditiveQuery: fc.Arbitrary<UsageQuery> = fc
  .record({
    meter: fc.constantFrom(...ADDITIVE.map((m) => m.slug)),
    timeZone: fc.constantFrom('UTC', 'America/New_York'),
    windowSize: fc.constantFrom<WindowSize | undefined>(undefined, 'HOUR', 'DAY', 'MONTH'),
    a: fc.noBias(fc.nat({ max: 1_000_000 })),
    b: fc.noBias(fc.nat({ max: 1_000_000 })),
    groupBy: fc.subarray(['subject', 'model', 'region']),
    subjects: fc.option(fc.subarray(SUBJECTS, { minLength: 1 }), { nil: undefined }),
    models: fc.option(fc.subarray(['x', 'y', 'z'], { minLength: 1 }), { nil: undefined }),
    regions: fc.option(fc.subarray(['eu', 'us'], { minLength: 1 }), { nil: undefined }),
    scoped: fc.boolean(),
  })
  .map(({ meter, timeZone, windowSize, a, b, groupBy, subjects, models, regions, scoped }): UsageQuery => {
    const m = ADDITIVE.find((x) => x.slug === meter)!;
    const list = boundaryList(windowSize, timeZone);
    const i = a % (list.length - 1);
    const j = i + 1 + (b % Math.min(48, list.length - 1 - i));
    const filter: Record<string, string[]> = {};
    if (models !== undefined && 'model' in m.groupBy) filter.model = models;
    if (regions !== undefined && 'region' in m.groupBy) filter.region = regions;
    const q: UsageQuery = { meter, subjects, from: list[i]!, to: list[j]!, windowSize, timeZone, groupBy: groupBy.filter((g) => g === 'subject' || g in m.groupBy), filter };
    return scoped ? { ...q, allowsSubject: (s) => s !== 'globex' } : q;
  });

/** UNIQUE_COUNT in its legal shapes: each cell one stored aggregate. */
export const anyUniqueQuery: fc.Arbitrary<UsageQuery> = fc
  .record({
    ask: fc.constantFrom<Partial<UsageQuery>>(
      { windowSize: 'HOUR', groupBy: ['subject', 'model'] },
      { windowSize: 'DAY', groupBy: ['model'], subjects: ['acme'] },
      { windowSize: 'DAY', groupBy: ['model', 'subject'], subjects: ['acme', 'globex'], filter: { model: ['x'] } },
      { windowSize: undefined, groupBy: ['subject', 'model'] },
    ),
    day: fc.integer({ min: 0, max: 3 }),
    n: fc.integer({ min: 1, max: 6 }),
  })
  .map(({ ask, day, n }): UsageQuery => {
    const from = SPAN_START + day * DAY;
    const to = ask.windowSize === 'HOUR' ? from + n * HOUR : ask.windowSize === 'DAY' ? from + n * DAY : from + DAY;
    return { meter: UNIQUE.slug, subjects: undefined, from, to, windowSize: undefined, timeZone: 'UTC', groupBy: [], filter: {}, ...ask };
  });

export const anyQuery = fc.oneof({ weight: 4, arbitrary: anyAdditiveQuery }, { weight: 1, arbitrary: anyUniqueQuery });

/**
 * The answer merged from each holder's parts (and again after the parts crossed the wire)
 * equals the oracle's, or both refuse the query the same way.
 */
export function expectMergedEqualsOracle(oracle: ReadModel, q: UsageQuery, source: AggregateSource, holders: readonly Set<number>[]): void {
  const expected = attempt(() => oracle.query(q));
  const plan = attempt(() => planQuery(CATALOG, q));
  if (expected instanceof Error) {
    expect(plan).toBeInstanceOf(Error);
    expect(plan).toMatchObject({ kind: (expected as { kind?: string }).kind });
    return;
  }
  if (plan instanceof Error) throw plan;
  const answers: PartsAnswer[] = holders.map((partitions) => collectParts(plan, source, partitions));
  expect(mergeParts(plan, answers)).toEqual(expected);
  const wired = answers.map((a) => decodePartsAnswer(JSON.parse(JSON.stringify(encodePartsAnswer(a)))));
  expect(mergeParts(plan, wired)).toEqual(expected);
  // Merging is order-free: the holders answering in reverse give the same answer.
  expect(mergeParts(plan, [...wired].reverse())).toEqual(expected);
}

function attempt<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (error) {
    return error as Error;
  }
}
