import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReadModel, type UsageQuery, type UsageRow } from '../../src/api/read-model.js';
import { QueryError } from '../../src/errors.js';
import { type AggregateCoordinates, type UsageAggregate, addMeasurement, aggregateKey } from '../../src/usage/aggregation.js';
import { Decimal } from '../../src/usage/decimal.js';
import { type Aggregation, type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { type WindowSize, windowEnd, windowStart, zonedWindows } from '../../src/usage/windows.js';
import { catchError } from '../support/unit/fixtures.js';

// ---- raw events and the writer's fold ----------------------------------------------------

interface RawEvent {
  subject: string;
  time: number;
  /** Thousandths: the value is units / 1000, exactly. */
  units: bigint;
  member: string;
  model: string | undefined;
  region: string | undefined;
  orderTime: bigint;
  orderNode: string;
}

// 'a"q' and 'a#q' sort one way as strings and the other way as JSON: rows sort by the string.
const SUBJECTS = ['acme', 'globex', 'a"q', 'a#q'];
const GROUPS = { model: 'model', region: 'region' };
const SPAN_START = Date.UTC(2026, 9, 30); // the US leaves daylight saving time on 2026-11-01
const SPAN_END = Date.UTC(2026, 10, 3);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function meter(slug: string, aggregation: Aggregation, windows: WindowSize[], groupBy: Record<string, string> = GROUPS): Meter {
  return {
    slug,
    description: undefined,
    eventTypes: ['api.request'],
    aggregation,
    valueProperty: aggregation === 'COUNT' ? undefined : { kind: 'value' },
    groupBy,
    windows,
  };
}

const ADDITIVE: Meter[] = [
  meter('sum', 'SUM', ['HOUR', 'DAY', 'MONTH']),
  meter('count', 'COUNT', ['HOUR', 'DAY']),
  meter('min', 'MIN', ['HOUR', 'DAY', 'MONTH']),
  meter('max', 'MAX', ['HOUR', 'DAY']),
  meter('avg', 'AVG', ['HOUR', 'DAY', 'MONTH']),
  meter('latest', 'LATEST', ['HOUR', 'DAY']),
];
const UNIQUE = meter('unique', 'UNIQUE_COUNT', ['HOUR', 'DAY'], { model: 'model' });
const MINUTES = meter('minutes', 'SUM', ['MINUTE', 'HOUR']);
const ALL_METERS = [...ADDITIVE, UNIQUE, MINUTES];

/** Canonical decimal text of units / 10^scale: no exponent, no trailing fractional zeros. */
function decimalText(units: bigint, scale: number): string {
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale -= 1;
  }
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  const point = digits.length - scale;
  return `${negative ? '-' : ''}${digits.slice(0, point)}${scale > 0 ? `.${digits.slice(point)}` : ''}`;
}

function groupsOf(m: Meter, e: RawEvent): Record<string, string> {
  const groupBy: Record<string, string> = {};
  if ('model' in m.groupBy && e.model !== undefined) groupBy.model = e.model;
  if ('region' in m.groupBy && e.region !== undefined) groupBy.region = e.region;
  return groupBy;
}

/** Every version of every aggregate, built as the pipeline's AggregateStep builds them. */
function writeAggregates(meters: Meter[], events: RawEvent[]): Map<string, UsageAggregate[]> {
  const versions = new Map<string, UsageAggregate[]>();
  const members = new Set<string>();
  for (const e of events) {
    for (const m of meters) {
      for (const size of m.windows) {
        const start = windowStart(e.time, size);
        const at: AggregateCoordinates = {
          meter: m.slug,
          aggregation: m.aggregation,
          subject: e.subject,
          groupBy: groupsOf(m, e),
          windowSize: size,
          windowStart: start,
          windowEnd: windowEnd(start, size),
        };
        const key = aggregateKey(at);
        const memberKey = `${key}\u0000${e.member}`;
        const newMember = m.aggregation === 'UNIQUE_COUNT' && !members.has(memberKey);
        if (newMember) members.add(memberKey);
        const history = versions.get(key) ?? [];
        const next = addMeasurement(history.at(-1), at, {
          value: m.aggregation === 'COUNT' || m.aggregation === 'UNIQUE_COUNT' ? undefined : Decimal.parse(decimalText(e.units, 3)),
          newMember,
          eventTime: e.time,
          orderTime: e.orderTime,
          orderNode: e.orderNode,
        });
        history.push(next);
        versions.set(key, history);
      }
    }
  }
  return versions;
}

/**
 * Applies every key, some with their whole history and some with only the last version (as
 * after compaction), then, given a seed, re-delivers an older version of every key that has
 * one (as a consumer restarting from an older offset would): those must be ignored.
 */
function readModelOf(meters: Meter[], versions: Map<string, UsageAggregate[]>, seed?: number): ReadModel {
  const model = new ReadModel(new MeterCatalog(meters));
  for (const [key, history] of versions) {
    if (key.length % 2 === 0) for (const version of history) model.apply(key, version);
    else model.apply(key, history.at(-1)!);
  }
  if (seed !== undefined) {
    for (const [i, [key, history]] of [...versions].entries()) {
      if (history.length > 1) model.apply(key, history[(seed + i) % (history.length - 1)]!);
    }
  }
  return model;
}

// ---- the brute force: straight from the raw events, BigInt arithmetic ---------------------

function compareOrderKey(a: RawEvent, b: RawEvent): number {
  if (a.orderTime !== b.orderTime) return a.orderTime < b.orderTime ? -1 : 1;
  return a.orderNode < b.orderNode ? -1 : a.orderNode > b.orderNode ? 1 : 0;
}

function bruteValue(aggregation: Aggregation, events: RawEvent[]): string {
  const units = events.map((e) => e.units);
  switch (aggregation) {
    case 'SUM':
      return decimalText(units.reduce((a, b) => a + b, 0n), 3);
    case 'COUNT':
      return String(events.length);
    case 'MIN':
      return decimalText(units.reduce((a, b) => (b < a ? b : a)), 3);
    case 'MAX':
      return decimalText(units.reduce((a, b) => (b > a ? b : a)), 3);
    case 'AVG': {
      // sum / count to 20 fractional digits, half to even.
      const numerator = units.reduce((a, b) => a + b, 0n) * 10n ** 20n;
      const denominator = BigInt(events.length) * 1000n;
      let quotient = numerator / denominator;
      const remainder = numerator % denominator;
      const twice = 2n * (remainder < 0n ? -remainder : remainder);
      if (twice > denominator || (twice === denominator && quotient % 2n !== 0n)) quotient += numerator < 0n ? -1n : 1n;
      return decimalText(quotient, 20);
    }
    case 'LATEST':
      return decimalText(events.reduce((a, b) => (compareOrderKey(b, a) > 0 ? b : a)).units, 3);
    case 'UNIQUE_COUNT':
      return String(new Set(events.map((e) => e.member)).size);
  }
}

function bruteForce(m: Meter, events: RawEvent[], q: UsageQuery): { data: UsageRow[]; totals: UsageRow[] } {
  const windows = q.windowSize === undefined ? [{ start: q.from, end: q.to }] : zonedWindows(q.from, q.to, q.windowSize, q.timeZone);
  const groupNames = q.groupBy.filter((n) => n !== 'subject');
  const selected = events.filter((e) => {
    if (q.subjects !== undefined && !q.subjects.includes(e.subject)) return false;
    const groups = groupsOf(m, e);
    return Object.entries(q.filter).every(([name, accepted]) => groups[name] !== undefined && accepted.includes(groups[name]));
  });
  const cellsOf = (inWindow: RawEvent[], start: string | null, end: string | null): UsageRow[] => {
    const cells = new Map<string, { row: Omit<UsageRow, 'value' | 'count'>; events: RawEvent[] }>();
    for (const e of inWindow) {
      const groups = groupsOf(m, e);
      const subject = q.groupBy.includes('subject') ? e.subject : null;
      const groupBy = Object.fromEntries(groupNames.map((n) => [n, groups[n] ?? null]));
      const id = JSON.stringify([subject, groupBy]);
      const cell = cells.get(id) ?? { row: { windowStart: start, windowEnd: end, subject, groupBy }, events: [] };
      cell.events.push(e);
      cells.set(id, cell);
    }
    return [...cells.values()]
      .map(({ row, events: es }) => ({ ...row, value: bruteValue(m.aggregation, es), count: es.length }))
      .sort(rowOrder);
  };
  const data = windows.flatMap((w) =>
    cellsOf(
      selected.filter((e) => e.time >= w.start && e.time < w.end),
      new Date(w.start).toISOString(),
      new Date(w.end).toISOString(),
    ),
  );
  const totals = cellsOf(
    selected.filter((e) => e.time >= q.from && e.time < q.to),
    null,
    null,
  );
  return { data, totals };
}

function rowOrder(a: UsageRow, b: UsageRow): number {
  const subjectA = a.subject ?? '';
  const subjectB = b.subject ?? '';
  if (subjectA !== subjectB) return subjectA < subjectB ? -1 : 1;
  const groupsA = JSON.stringify(a.groupBy);
  const groupsB = JSON.stringify(b.groupBy);
  return groupsA < groupsB ? -1 : groupsA > groupsB ? 1 : 0;
}

// ---- valid query ranges, found without the windows module ---------------------------------

const localFormats = new Map<string, Intl.DateTimeFormat>();

/** The local calendar unit of `size` that `ms` falls in, e.g. "11/1/2026, 01" for an HOUR. */
function localUnit(ms: number, size: WindowSize, timeZone: string): string {
  let format = localFormats.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: '2-digit' });
    localFormats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(ms).map((p) => [p.type, p.value]));
  if (size === 'MONTH') return `${parts.year}-${parts.month}`;
  if (size === 'DAY') return `${parts.year}-${parts.month}-${parts.day}`;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}`;
}

/**
 * Instants where a local window of `size` starts in `timeZone`, around the events' span: where
 * the local unit differs from the one a millisecond earlier (so the hour repeated when clocks
 * fall back is one two-hour window). Without a size: any UTC hour, which tileRange can tile.
 */
function boundaries(size: WindowSize | undefined, timeZone: string): number[] {
  const found: number[] = [];
  const first = size === 'MONTH' ? Date.UTC(2026, 8, 30) : SPAN_START - DAY;
  const last = size === 'MONTH' ? Date.UTC(2026, 11, 2) : SPAN_END + DAY;
  for (let t = first; t <= last; t += HOUR) {
    if (size === undefined || localUnit(t, size, timeZone) !== localUnit(t - 1, size, timeZone)) found.push(t);
  }
  return found;
}

const boundaryCache = new Map<string, number[]>();
function cachedBoundaries(size: WindowSize | undefined, timeZone: string): number[] {
  const id = `${size}/${timeZone}`;
  let list = boundaryCache.get(id);
  if (list === undefined) {
    list = boundaries(size, timeZone);
    boundaryCache.set(id, list);
  }
  return list;
}

// ---- arbitraries --------------------------------------------------------------------------

const anyUnits = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: -100_000n, max: 100_000n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 35n), max: 10n ** 35n }) },
);

const anyEvents: fc.Arbitrary<RawEvent[]> = fc
  .array(
    fc.record({
      subject: fc.constantFrom(...SUBJECTS),
      time: fc.integer({ min: SPAN_START, max: SPAN_END - 1 }),
      units: anyUnits,
      member: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
      model: fc.constantFrom('x', 'y', undefined),
      region: fc.constantFrom('eu', 'us', undefined),
      rank: fc.integer({ min: 0, max: 50 }),
      orderNode: fc.constantFrom('node-a', 'node-b'),
    }),
    { minLength: 1, maxLength: 150, size: 'large' },
  )
  // Order keys are unique per event (the rank makes them disagree with event time and arrival).
  .map((events) => events.map(({ rank, ...e }, i) => ({ ...e, orderTime: BigInt(rank) * 4096n + BigInt(i) })));

const anyQueryShape = fc
  .record({
    timeZone: fc.constantFrom('UTC', 'America/New_York'),
    windowSize: fc.constantFrom<WindowSize | undefined>(undefined, 'HOUR', 'DAY', 'MONTH'),
    // Unbiased: small numbers would put most ranges before the events.
    a: fc.noBias(fc.nat({ max: 1_000_000 })),
    b: fc.noBias(fc.nat({ max: 1_000_000 })),
    groupBy: fc.subarray(['subject', 'model', 'region']),
    subjects: fc.option(fc.subarray(SUBJECTS, { minLength: 1 }), { nil: undefined }),
    models: fc.option(fc.subarray(['x', 'y', 'z'], { minLength: 1 }), { nil: undefined }),
    regions: fc.option(fc.subarray(['eu', 'us'], { minLength: 1 }), { nil: undefined }),
  })
  .map(({ timeZone, windowSize, a, b, groupBy, subjects, models, regions }): UsageQuery => {
    const list = cachedBoundaries(windowSize, timeZone);
    const i = a % (list.length - 1);
    // At most 48 output windows keeps the brute force quick.
    const j = i + 1 + (b % Math.min(48, list.length - 1 - i));
    const filter: Record<string, string[]> = {};
    if (models !== undefined) filter.model = models;
    if (regions !== undefined) filter.region = regions;
    return { meter: '', subjects, from: list[i]!, to: list[j]!, windowSize, timeZone, groupBy, filter };
  });

function query(overrides: Partial<UsageQuery>): UsageQuery {
  return {
    meter: 'sum',
    subjects: undefined,
    from: SPAN_START,
    to: SPAN_START + DAY,
    windowSize: undefined,
    timeZone: 'UTC',
    groupBy: [],
    filter: {},
    ...overrides,
  };
}

function expectQueryError(fn: () => unknown, kind: string, status = 400): QueryError {
  const error = catchError(fn);
  expect(error).toBeInstanceOf(QueryError);
  expect(error).toMatchObject({ kind, status });
  return error as QueryError;
}

// ---- the properties -----------------------------------------------------------------------

describe('ReadModel.query against a brute force over the raw events', () => {
  it('answers SUM, COUNT, MIN, MAX, AVG and LATEST exactly for any aligned range, window size, zone, grouping and filter', () => {
    fc.assert(
      fc.property(anyEvents, fc.nat(), fc.array(anyQueryShape, { minLength: 3, maxLength: 3 }), (events, seed, shapes) => {
        const versions = writeAggregates(ADDITIVE, events);
        const model = readModelOf(ADDITIVE, versions, seed);
        expect(model.size).toBe(versions.size);
        for (const shape of shapes) {
          for (const m of ADDITIVE) {
            const q = { ...shape, meter: m.slug };
            const answer = model.query(q);
            const expected = bruteForce(m, events, q);
            expect(answer.data).toEqual(expected.data);
            expect(answer.totals).toEqual(expected.totals);
            expect(answer).toMatchObject({
              meter: m.slug,
              aggregation: m.aggregation,
              from: new Date(q.from).toISOString(),
              to: new Date(q.to).toISOString(),
              windowSize: q.windowSize ?? null,
              windowTimeZone: q.timeZone,
              groupBy: q.groupBy,
            });
          }
        }
      }),
      { numRuns: Number(process.env.RUNS ?? 40) },
    );
  });

  it('answers UNIQUE_COUNT where each cell is one stored aggregate', () => {
    const asks = fc.constantFrom<Partial<UsageQuery>>(
      { windowSize: 'HOUR', groupBy: ['subject', 'model'] },
      { windowSize: 'DAY', groupBy: ['model'], subjects: ['acme'] },
      { windowSize: 'DAY', groupBy: ['model', 'subject'], subjects: ['acme', 'globex'], filter: { model: ['x'] } },
      { windowSize: undefined, groupBy: ['subject', 'model'] },
    );
    fc.assert(
      fc.property(anyEvents, asks, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 6 }), (events, ask, day, n) => {
        const model = readModelOf([UNIQUE], writeAggregates([UNIQUE], events), day);
        const from = SPAN_START + day * DAY;
        const to = ask.windowSize === 'HOUR' ? from + n * HOUR : ask.windowSize === 'DAY' ? from + n * DAY : from + DAY;
        const q = query({ meter: 'unique', from, to, ...ask });
        const answer = model.query(q);
        const expected = bruteForce(UNIQUE, events, q);
        expect(answer.data).toEqual(expected.data);
        const windows = q.windowSize === undefined ? 1 : zonedWindows(from, to, q.windowSize, 'UTC').length;
        expect(answer.totals).toEqual(windows === 1 ? expected.totals : null);
        expect(answer.windowsRead).toBe(windows);
      }),
      { numRuns: Number(process.env.RUNS ?? 40) },
    );
  });
});

describe('ReadModel.apply', () => {
  const m = meter('sum', 'SUM', ['HOUR']);
  const at: AggregateCoordinates = {
    meter: 'sum',
    aggregation: 'SUM',
    subject: 'acme',
    groupBy: { model: 'x' },
    windowSize: 'HOUR',
    windowStart: SPAN_START,
    windowEnd: SPAN_START + HOUR,
  };
  const measure = (value: string, n: number) => ({
    value: Decimal.parse(value),
    newMember: false,
    eventTime: SPAN_START + n,
    orderTime: BigInt(n),
    orderNode: 'node-a',
  });

  it('keeps the highest version per key and ignores re-delivered older ones', () => {
    const v1 = addMeasurement(undefined, at, measure('1.5', 1));
    const v2 = addMeasurement(v1, at, measure('2', 2));
    const model = new ReadModel(new MeterCatalog([m]));
    const key = aggregateKey(at);
    model.apply(key, v1);
    model.apply(key, v2);
    model.apply(key, v1);
    expect(model.size).toBe(1);
    expect(model.query(query({ to: SPAN_START + HOUR })).data).toEqual([
      { windowStart: '2026-10-30T00:00:00.000Z', windowEnd: '2026-10-30T01:00:00.000Z', subject: null, groupBy: {}, value: '3.5', count: 2 },
    ]);
  });

  it('keeps aggregates of meters that are not configured, without making them queryable', () => {
    const model = new ReadModel(new MeterCatalog([m]));
    const gone = { ...at, meter: 'removed' };
    model.apply(aggregateKey(gone), addMeasurement(undefined, gone, measure('1', 1)));
    expect(model.size).toBe(1);
    const error = expectQueryError(() => model.query(query({ meter: 'removed' })), 'unknown-meter', 404);
    expect(error.message).toContain('"removed"');
    expect(error.message).toContain('sum');
    expect(model.query(query({})).data).toEqual([]);
  });
});

describe('ReadModel read cost', () => {
  const events = (n: number): RawEvent[] =>
    Array.from({ length: n }, (_, i) => ({
      subject: SUBJECTS[i % SUBJECTS.length]!,
      time: SPAN_START + ((i * 7_919_993) % (SPAN_END - SPAN_START)),
      units: BigInt(i % 1000),
      member: `u${i % 5}`,
      model: i % 3 === 0 ? undefined : 'x',
      region: 'eu',
      orderTime: BigInt(i),
      orderNode: 'node-a',
    }));

  it('reads the same number of stored windows whatever the number of events', () => {
    const meters = [ADDITIVE[0]!];
    const small = readModelOf(meters, writeAggregates(meters, events(30)));
    const large = readModelOf(meters, writeAggregates(meters, events(3_000)));
    const cases: [Partial<UsageQuery>, number][] = [
      // 3 whole UTC days: three DAY aggregates.
      [{ from: SPAN_START, to: SPAN_START + 3 * DAY }, 3],
      [{ from: SPAN_START, to: SPAN_START + 3 * DAY, windowSize: 'HOUR', groupBy: ['subject', 'model'] }, 72],
      // New York days around the end of daylight saving time: no whole UTC day inside, so 24 + 25 HOUR pieces.
      [{ from: Date.UTC(2026, 9, 31, 4), to: Date.UTC(2026, 10, 2, 5), windowSize: 'DAY', timeZone: 'America/New_York' }, 24 + 25],
    ];
    for (const [ask, reads] of cases) {
      const q = query(ask);
      const a = small.query(q);
      const b = large.query(q);
      expect(a.windowsRead).toBe(b.windowsRead);
      expect(b.windowsRead).toBe(reads);
      expect(b.data.reduce((n, row) => n + row.count, 0)).toBeGreaterThan(a.data.reduce((n, row) => n + row.count, 0));
    }
  });
});

describe('ReadModel.query refusals', () => {
  const model = new ReadModel(new MeterCatalog(ALL_METERS));

  it('answers 404 for an unknown meter', () => {
    expectQueryError(() => model.query(query({ meter: 'nope' })), 'unknown-meter', 404);
  });

  it('refuses an empty or reversed range', () => {
    expectQueryError(() => model.query(query({ from: SPAN_START, to: SPAN_START })), 'bad-parameter');
    expectQueryError(() => model.query(query({ from: SPAN_START + HOUR, to: SPAN_START })), 'bad-parameter');
  });

  it('refuses group names the meter does not have, listing the allowed ones', () => {
    let error = expectQueryError(() => model.query(query({ groupBy: ['colour'] })), 'bad-parameter');
    expect(error.message).toContain('"colour"');
    expect(error.message).toContain('subject, model, region');
    error = expectQueryError(() => model.query(query({ filter: { colour: ['red'] } })), 'bad-parameter');
    expect(error.message).toContain('colour');
    expect(error.message).toContain('model, region');
    error = expectQueryError(() => model.query(query({ filter: { subject: ['acme'] } })), 'bad-parameter');
    expect(error.message).toContain('subject parameter');
  });

  it('refuses queries that would read too many stored windows, before listing them', () => {
    const small = new ReadModel(new MeterCatalog(ALL_METERS), { maxWindowsRead: 48 });
    expect(small.query(query({ meter: 'count', windowSize: 'HOUR', to: SPAN_START + 2 * DAY })).windowsRead).toBe(48);
    const error = expectQueryError(() => small.query(query({ meter: 'count', windowSize: 'HOUR', to: SPAN_START + 2 * DAY + HOUR })), 'too-many-windows');
    expect(error.message).toContain('more than 48');
    // Ten thousand years of MINUTE pieces: refused at once, never tiled.
    const started = Date.now();
    expectQueryError(() => model.query(query({ meter: 'minutes', from: Date.parse('0001-01-01T00:00:00Z'), to: Date.parse('9999-01-01T00:00:00Z') })), 'too-many-windows');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('names the zone as asked (case fixed), not as ICU renames it', () => {
    expect(model.query(query({ timeZone: 'utc' })).windowTimeZone).toBe('UTC');
    expect(model.query(query({ timeZone: 'Europe/Kyiv' })).windowTimeZone).toBe('Europe/Kyiv');
    expectQueryError(() => model.query(query({ timeZone: 'Mars/Olympus_Mons' })), 'bad-parameter');
  });

  it('refuses ranges the maintained UTC windows cannot tile exactly (Asia/Kolkata is UTC+05:30)', () => {
    // Kolkata hours and days start at half past a UTC hour; the meter keeps HOUR and DAY only.
    const from = Date.UTC(2026, 9, 30, 18, 30);
    expectQueryError(() => model.query(query({ from, to: from + DAY, windowSize: 'DAY', timeZone: 'Asia/Kolkata' })), 'not-exact');
    expectQueryError(() => model.query(query({ from, to: from + 2 * HOUR, windowSize: 'HOUR', timeZone: 'Asia/Kolkata' })), 'not-exact');
    // A meter that keeps MINUTE windows can answer the same query, at 60 reads an hour.
    const answer = model.query(query({ meter: 'minutes', from, to: from + 2 * HOUR, windowSize: 'HOUR', timeZone: 'Asia/Kolkata' }));
    expect(answer.windowsRead).toBe(120);
    expect(answer.windowTimeZone).toBe('Asia/Kolkata');
  });

  it('refuses UNIQUE_COUNT queries that would add distinct counts up, saying what to ask instead', () => {
    const unique = (ask: Partial<UsageQuery>): QueryError =>
      expectQueryError(() => model.query(query({ meter: 'unique', windowSize: 'HOUR', groupBy: ['subject', 'model'], ...ask })), 'not-exact');
    expect(unique({ groupBy: ['subject'] }).message).toContain('groupBy=model');
    expect(unique({ groupBy: ['model'] }).message).toContain('exactly one subject');
    expect(unique({ groupBy: ['model'], subjects: ['acme', 'globex'] }).message).toContain('groupBy=subject');
    // A DAY in New York is not one stored UTC DAY.
    const from = Date.UTC(2026, 9, 31, 4);
    expect(unique({ windowSize: 'DAY', timeZone: 'America/New_York', from, to: from + DAY }).message).toContain('windowTimeZone=UTC');
    // Two stored days in one output window.
    expect(unique({ windowSize: undefined, to: SPAN_START + 2 * DAY }).message).toContain('spans 2 stored windows');
    // Allowed: one subject, every group, stored windows.
    expect(model.query(query({ meter: 'unique', windowSize: 'HOUR', groupBy: ['model'], subjects: ['acme'] })).totals).toBeNull();
    expect(model.query(query({ meter: 'unique', groupBy: ['model'], subjects: ['acme'] })).totals).toEqual([]);
  });
});
