import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../../src/api/memory-source.js';
import { planQuery } from '../../src/api/query-plan.js';
import { collectParts, mergeParts } from '../../src/api/query-parts.js';
import { ReadModel } from '../../src/api/read-model.js';
import { QueryError } from '../../src/errors.js';
import { type AggregateCoordinates, type UsageAggregate, addMeasurement, aggregateKey } from '../../src/usage/aggregation.js';
import { Decimal } from '../../src/usage/decimal.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import {
  QUERY_MARGIN_MS,
  type RetentionPolicy,
  expiresAt,
  formatRetention,
  isExpired,
  parseRetention,
  queryRetention,
  retentionWarnings,
  tileAvailable,
} from '../../src/usage/retention.js';
import { type SizedWindow, WINDOW_SIZES, type WindowSize, isAligned, tileRange, windowEnd, windowStart } from '../../src/usage/windows.js';
import { catchError } from '../support/unit/fixtures.js';

/** The value, or the error thrown. */
function attempt<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (error) {
    return error as Error;
  }
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const UNIT: Record<WindowSize, number> = { MINUTE, HOUR, DAY, MONTH: 31 * DAY };
const T0 = Date.UTC(2026, 0, 1);

describe('ORDO_WINDOW_RETENTION', () => {
  it('parses sizes and durations; sizes left out are kept for ever', () => {
    expect(parseRetention('MINUTE=2d,HOUR=35d,DAY=730d')).toEqual({ MINUTE: 2 * DAY, HOUR: 35 * DAY, DAY: 730 * DAY });
    expect(parseRetention(' minute = 90s , MONTH=forever ')).toEqual({ MINUTE: 90_000, MONTH: null });
    expect(parseRetention('HOUR=1500ms,DAY=3h,MONTH=10m')).toEqual({ HOUR: 1_500, DAY: 3 * HOUR, MONTH: 10 * MINUTE });
    expect(parseRetention('')).toEqual({});
  });

  it.each([
    ['MINUTE', /not SIZE=DURATION/],
    ['WEEK=7d', /"WEEK" is not a window size \(MINUTE, HOUR, DAY, MONTH\)/],
    ['HOUR=1d,hour=2d', /HOUR is given twice/],
    ['DAY=2', /positive integer with a unit/],
    ['DAY=-2d', /positive integer with a unit/],
    ['DAY=0s', /must be positive/],
    ['DAY=1.5d', /positive integer with a unit/],
    ['DAY=40000d', /more than 36600d/],
  ])('refuses %s, naming the defect', (text, message) => {
    expect(() => parseRetention(text)).toThrow(message);
  });

  it('prints a policy as it reads it', () => {
    fc.assert(
      fc.property(policyArb(), (policy) => {
        const kept = Object.fromEntries(Object.entries(policy).filter(([, ms]) => ms !== null && ms !== undefined));
        expect(parseRetention(formatRetention(policy))).toEqual(kept);
      }),
    );
  });

  it('warns when a finer size is kept longer than a coarser one (allowed: queries fall back to the finer windows)', () => {
    expect(retentionWarnings(parseRetention('MINUTE=2d,HOUR=35d,DAY=730d'))).toEqual([]);
    expect(retentionWarnings(parseRetention('HOUR=35d,DAY=2d'))).toEqual([expect.stringMatching(/^HOUR windows are kept longer than DAY windows/)]);
    expect(retentionWarnings(parseRetention('MINUTE=forever,MONTH=30d'))).toHaveLength(1);
  });
});

describe('when a window expires', () => {
  it('is its end + the allowed lateness + its size\'s retention, once, for the pipeline and for queries', () => {
    const policy: RetentionPolicy = { MINUTE: 2 * DAY, HOUR: null };
    const end = T0 + MINUTE;
    expect(expiresAt('MINUTE', end, policy, HOUR)).toBe(end + HOUR + 2 * DAY);
    expect(isExpired('MINUTE', end, policy, end + HOUR + 2 * DAY - 1, HOUR)).toBe(false);
    expect(isExpired('MINUTE', end, policy, end + HOUR + 2 * DAY, HOUR)).toBe(true);
    expect(expiresAt('HOUR', end, policy, HOUR)).toBe(Number.POSITIVE_INFINITY);
    expect(expiresAt('DAY', end, policy, HOUR)).toBe(Number.POSITIVE_INFINITY);
  });

  it('queries stop reading a window at least the margin before the pipeline may delete it, and never before it is final', () => {
    fc.assert(
      fc.property(policyArb(), fc.constantFrom(...WINDOW_SIZES), fc.integer({ min: 0, max: 40 * DAY }), fc.integer({ min: 0, max: 400 * DAY }), (policy, size, lateness, offset) => {
        const end = T0 + DAY;
        const forQueries = queryRetention(policy, lateness);
        const queryStops = expiresAt(size, end, forQueries, 0);
        const pipelineDeletes = expiresAt(size, end, policy, lateness);
        if (pipelineDeletes === Number.POSITIVE_INFINITY) expect(queryStops).toBe(Number.POSITIVE_INFINITY);
        else expect(queryStops).toBeLessThanOrEqual(Math.max(end, pipelineDeletes - QUERY_MARGIN_MS));
        expect(queryStops).toBeGreaterThanOrEqual(end);
        // A query whose clock is up to the margin behind the pipeline's never reads a deleted window.
        const pipelineNow = end + offset;
        if (isExpired(size, end, policy, pipelineNow, lateness)) expect(isExpired(size, end, forQueries, pipelineNow - QUERY_MARGIN_MS, 0)).toBe(true);
      }),
    );
  });
});

// ---- tileAvailable ------------------------------------------------------------------------

/** Some sizes, with a random retention each (null: for ever), at scales from minutes to months. */
function policyArb(): fc.Arbitrary<RetentionPolicy> {
  const duration = fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 600 }).map((m) => m * MINUTE), fc.integer({ min: 1, max: 72 }).map((h) => h * HOUR), fc.integer({ min: 1, max: 120 }).map((d) => d * DAY));
  return fc.record({ MINUTE: duration, HOUR: duration, DAY: duration, MONTH: duration }, { requiredKeys: [] });
}

interface Case {
  sizes: WindowSize[];
  start: number;
  end: number;
  policy: RetentionPolicy;
  now: number;
}

/** A range on boundaries of the finest size (so that some tiling exists, unless it is cut by a size's alignment) and a clock near it. */
function caseArb(): fc.Arbitrary<Case> {
  return fc
    .subarray([...WINDOW_SIZES], { minLength: 1 })
    .chain((sizes) => {
      const finest = sizes[0]!;
      const unit = UNIT[finest];
      const base = windowStart(T0, finest);
      return fc.record({
        sizes: fc.constant(sizes),
        a: fc.integer({ min: 0, max: 1_500 }),
        length: fc.integer({ min: 1, max: 1_500 }),
        policy: policyArb(),
        // From before the range to long after it: nothing, some or everything expired.
        nowOffset: fc.integer({ min: -10, max: 4_000 }),
        jitter: fc.integer({ min: 0, max: unit - 1 }),
      }).map(({ a, length, policy, nowOffset, jitter }) => {
        const start = windowStart(base + a * unit, finest);
        const end = windowStart(start + length * unit, finest);
        return { sizes, start, end: end > start ? end : windowEnd(start, finest), policy, now: start + nowOffset * unit + jitter };
      });
    });
}

const available = (c: Case, piece: SizedWindow): boolean => !isExpired(piece.size, piece.end, c.policy, c.now, 0);

/** The brute force: the fewest unexpired pieces tiling [start, end), or undefined if none do (dynamic programming over the boundaries). */
function fewestPieces(c: Case): number | undefined {
  const best = new Map<number, number>([[c.end, 0]]);
  const positions: number[] = [];
  const finest = c.sizes[0]!;
  for (let at = c.start; at < c.end; at = windowEnd(at, finest)) positions.push(at);
  for (const at of positions.reverse()) {
    let fewest: number | undefined;
    for (const size of c.sizes) {
      if (!isAligned(at, size)) continue;
      const end = windowEnd(at, size);
      if (end > c.end || !available(c, { start: at, end, size })) continue;
      const rest = best.get(end);
      if (rest !== undefined && (fewest === undefined || rest + 1 < fewest)) fewest = rest + 1;
    }
    if (fewest !== undefined) best.set(at, fewest);
  }
  return best.get(c.start);
}

describe('tileAvailable', () => {
  it('tiles the range exactly with unexpired windows, the fewest of them, whenever any tiling exists; else resolution-expired (or not-exact)', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const fewest = fewestPieces(c);
        const result = attempt(() => tileAvailable(c.start, c.end, c.sizes, c.policy, c.now));
        if (result instanceof Error) {
          expect(result).toBeInstanceOf(QueryError);
          const error = result as QueryError;
          expect(fewest).toBeUndefined();
          const full = attempt(() => tileRange(c.start, c.end, c.sizes));
          expect(error.kind).toBe(full instanceof QueryError ? 'not-exact' : 'resolution-expired');
          expect(error.status).toBe(400);
          return;
        }
        const pieces = result;
        let at = c.start;
        const defects: string[] = [];
        for (const piece of pieces) {
          if (piece.start !== at) defects.push(`gap or overlap at ${at}`);
          if (!c.sizes.includes(piece.size) || !isAligned(piece.start, piece.size) || piece.end !== windowEnd(piece.start, piece.size)) defects.push(`not a ${piece.size} window`);
          if (!available(c, piece)) defects.push(`expired ${piece.size} at ${piece.start}`);
          at = piece.end;
        }
        expect(defects).toEqual([]);
        expect(at).toBe(c.end);
        expect(pieces.length).toBe(fewest);
      }),
      { numRuns: 200 },
    );
  }, 120_000);

  it('equals tileRange while nothing has expired', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const full = attempt(() => tileRange(c.start, c.end, c.sizes));
        const early = c.start - 1; // the range is not over yet: nothing in it has expired
        const got = attempt(() => tileAvailable(c.start, c.end, c.sizes, c.policy, early));
        if (full instanceof Error) expect((got as QueryError).kind).toBe((full as QueryError).kind);
        else expect(got).toEqual(full);
        expect(attempt(() => tileAvailable(c.start, c.end, c.sizes, {}, c.now))).toEqual(full);
      }),
    );
  });

  it('with finer sizes expiring first (the usual policy), reads what tileRange reads or refuses: the coarsest fitting window is the last to go', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        let longest = 0;
        const monotone: RetentionPolicy = {};
        for (const size of WINDOW_SIZES) {
          const ms = c.policy[size];
          if (ms === null || ms === undefined) break; // this size and the coarser ones kept for ever
          longest = Math.max(longest, ms);
          monotone[size] = longest;
        }
        const full = attempt(() => tileRange(c.start, c.end, c.sizes));
        const got = attempt(() => tileAvailable(c.start, c.end, c.sizes, monotone, c.now));
        if (!(got instanceof Error)) expect(got).toEqual(full);
      }),
    );
  }, 60_000);

  it('answers across the boundary from coarser windows, and names what expired and what is still kept', () => {
    const sizes: WindowSize[] = ['MINUTE', 'HOUR', 'DAY', 'MONTH'];
    const policy = parseRetention('MINUTE=2d,HOUR=35d,DAY=730d');
    const now = Date.UTC(2026, 5, 15, 12);
    // Whole days of January: DAY windows (kept), though their MINUTE and HOUR windows are gone.
    const days = tileAvailable(Date.UTC(2026, 0, 3), Date.UTC(2026, 0, 5), sizes, policy, now);
    expect(days.map((p) => p.size)).toEqual(['DAY', 'DAY']);
    // A range ending mid-day in January needs HOUR windows: expired.
    const error = catchError(() => tileAvailable(Date.UTC(2026, 0, 3), Date.UTC(2026, 0, 5, 6), sizes, policy, now)) as QueryError;
    expect(error.kind).toBe('resolution-expired');
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/the HOUR window 2026-01-05T00:00:00.000Z..2026-01-05T01:00:00.000Z this range needs expired at 2026-02-09T01:00:00.000Z/);
    expect(error.message).toMatch(/still kept there: DAY, MONTH; ask for DAY windows or coarser/);
    expect(error.details).toMatchObject({ expired: { size: 'HOUR' }, kept: ['DAY', 'MONTH'] });
    // Recent hours still answer from HOUR windows; the last two days from MINUTE windows.
    expect(tileAvailable(Date.UTC(2026, 5, 1, 3), Date.UTC(2026, 5, 1, 5), sizes, policy, now).map((p) => p.size)).toEqual(['HOUR', 'HOUR']);
    expect(tileAvailable(Date.UTC(2026, 5, 15, 3, 7), Date.UTC(2026, 5, 15, 3, 9), sizes, policy, now).map((p) => p.size)).toEqual(['MINUTE', 'MINUTE']);
    // Not-exact stays not-exact (no window size can ever answer it).
    expect((catchError(() => tileAvailable(Date.UTC(2026, 0, 3, 0, 0, 30), Date.UTC(2026, 0, 4), sizes, policy, now)) as QueryError).kind).toBe('not-exact');
    // Nothing kept that far back at all.
    const none = catchError(() => tileAvailable(Date.UTC(2020, 0, 3), Date.UTC(2020, 0, 4), ['HOUR', 'DAY'], policy, now)) as QueryError;
    expect(none.message).toMatch(/none of its window sizes is kept that far back/);
  });
});

// ---- exact answers across the boundary, through the in-memory read model -------------------

/**
 * Raw events are folded into aggregates of every size (as the pipeline does); the pipeline's
 * retention deletes the expired ones (its clock, with the allowed lateness); a query reads the
 * pieces tileAvailable gives under queryRetention at a clock up to the margin behind the
 * pipeline's. Each piece is read from the ReadModel alone (a range of exactly one window tiles
 * to that window), and the sum must equal the raw events' sum: no piece is missing.
 */
describe('queries across the retention boundary', () => {
  const meter: Meter = { slug: 'spend', description: undefined, eventTypes: ['api.request'], aggregation: 'SUM', valueProperty: { kind: 'value' }, groupBy: {}, windows: ['MINUTE', 'HOUR', 'DAY', 'MONTH'] };
  const SPAN = 75 * DAY;

  it('are exact when answered, and resolution-expired otherwise', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: SPAN - 1 }), units: fc.integer({ min: 1, max: 1_000 }) }), { minLength: 1, maxLength: 120 }),
        policyArb(),
        fc.integer({ min: 0, max: 3 * DAY }),
        fc.integer({ min: 0, max: 120 * DAY }),
        fc.integer({ min: -QUERY_MARGIN_MS, max: DAY }),
        fc.tuple(fc.integer({ min: 0, max: SPAN / MINUTE }), fc.integer({ min: 1, max: SPAN / MINUTE })),
        (raw, policy, lateness, pipelineAfter, queryLead, [a, length]) => {
          const events = raw.map((e) => ({ time: T0 + e.at, units: e.units }));
          const pipelineNow = T0 + pipelineAfter;
          const model = new ReadModel(new MeterCatalog([meter]));
          for (const [key, aggregate] of fold(meter, events)) {
            // What the pipeline's sweep has tombstoned by now is not in the model.
            if (!isExpired(aggregate.windowSize, aggregate.windowEnd, policy, pipelineNow, lateness)) model.apply(key, aggregate);
          }
          const start = T0 + a * MINUTE;
          const end = Math.min(T0 + SPAN, start + length * MINUTE);
          if (end <= start) return;
          const pieces = attempt(() => tileAvailable(start, end, meter.windows, queryRetention(policy, lateness), pipelineNow + queryLead));
          if (pieces instanceof Error) {
            expect((pieces as QueryError).kind).toBe('resolution-expired');
            return;
          }
          let sum = 0;
          let read = 0;
          for (const piece of pieces) {
            const answer = model.query({ meter: 'spend', subjects: undefined, from: piece.start, to: piece.end, windowSize: undefined, timeZone: 'UTC', groupBy: [], filter: {} });
            read += answer.windowsRead;
            sum += answer.data.reduce((total, row) => total + Number(row.value), 0);
          }
          expect(read).toBe(pieces.length);
          expect(sum).toBe(events.filter((e) => e.time >= start && e.time < end).reduce((total, e) => total + e.units, 0));
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);
});

/**
 * The same through the api's query core (planQuery with the policy as queries apply it, then
 * collectParts and mergeParts): every window of an answer equals the raw events' sum in it.
 */
describe('planQuery with retention', () => {
  const meter: Meter = { slug: 'spend', description: undefined, eventTypes: ['api.request'], aggregation: 'SUM', valueProperty: { kind: 'value' }, groupBy: {}, windows: ['MINUTE', 'HOUR', 'DAY', 'MONTH'] };
  const catalog = new MeterCatalog([meter]);
  const SPAN = 75 * DAY;

  it('answers every window exactly from unexpired aggregates, or refuses with resolution-expired', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: SPAN - 1 }), units: fc.integer({ min: 1, max: 1_000 }) }), { minLength: 1, maxLength: 120 }),
        policyArb(),
        fc.integer({ min: 0, max: 3 * DAY }),
        fc.integer({ min: 0, max: 120 * DAY }),
        fc.integer({ min: -QUERY_MARGIN_MS, max: DAY }),
        fc.constantFrom<WindowSize | undefined>(undefined, 'HOUR', 'DAY'),
        fc.tuple(fc.integer({ min: 0, max: SPAN / MINUTE }), fc.integer({ min: 1, max: SPAN / MINUTE })),
        (raw, policy, lateness, pipelineAfter, queryLead, windowSize, [a, length]) => {
          const events = raw.map((e) => ({ time: T0 + e.at, units: e.units }));
          const pipelineNow = T0 + pipelineAfter;
          const source = new MemorySource();
          for (const [key, aggregate] of fold(meter, events)) {
            if (!isExpired(aggregate.windowSize, aggregate.windowEnd, policy, pipelineNow, lateness)) source.apply(key, aggregate);
          }
          const unit = windowSize === undefined ? MINUTE : UNIT[windowSize];
          const from = windowStart(T0 + a * MINUTE, windowSize ?? 'MINUTE');
          const to = Math.min(T0 + SPAN, from + Math.max(1, Math.floor((length * MINUTE) / unit)) * unit);
          if (to <= from) return;
          const q = { meter: 'spend', subjects: undefined, from, to, windowSize, timeZone: 'UTC', groupBy: [], filter: {} };
          const plan = attempt(() => planQuery(catalog, q, { retention: queryRetention(policy, lateness), now: pipelineNow + queryLead }));
          if (plan instanceof Error) {
            // Or, where only finer windows are kept (a finer size kept longer), more of them than a query may read.
            expect(['resolution-expired', 'too-many-windows']).toContain((plan as QueryError).kind);
            return;
          }
          const answer = mergeParts(plan, [collectParts(plan, source)]);
          const got = new Map(answer.data.map((row) => [row.windowStart, Number(row.value)]));
          const want = new Map<string, number>();
          for (const { window } of plan.windows) {
            const sum = events.filter((e) => e.time >= window.start && e.time < window.end).reduce((total, e) => total + e.units, 0);
            if (sum > 0) want.set(new Date(window.start).toISOString(), sum);
          }
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);
});

/** The last version of every aggregate of the events (one subject), folded as the pipeline folds them. */
function fold(meter: Meter, events: readonly { time: number; units: number }[]): Map<string, UsageAggregate> {
  const out = new Map<string, UsageAggregate>();
  for (const [i, e] of events.entries()) {
    for (const size of meter.windows) {
      const start = windowStart(e.time, size);
      const at: AggregateCoordinates = { meter: meter.slug, aggregation: meter.aggregation, subject: 'acme', groupBy: {}, windowSize: size, windowStart: start, windowEnd: windowEnd(start, size) };
      const key = aggregateKey(at);
      out.set(key, addMeasurement(out.get(key), at, { value: Decimal.parse(String(e.units)), newMember: false, eventTime: e.time, orderTime: BigInt(i), orderNode: 'n' }));
    }
  }
  return out;
}
