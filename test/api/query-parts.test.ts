import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../../src/api/memory-source.js';
import { planQuery } from '../../src/api/query-plan.js';
import { type PartsAnswer, collectParts, decodePartsAnswer, encodePartsAnswer, mergeParts } from '../../src/api/query-parts.js';
import { QueryError } from '../../src/errors.js';
import { type UsageAggregate, aggregateKey } from '../../src/usage/aggregation.js';
import { catchError } from '../support/unit/fixtures.js';
import {
  ALL_METERS,
  CATALOG,
  type Placement,
  anyEvents,
  anyPlacement,
  anyQuery,
  deliveries,
  expectMergedEqualsOracle,
  oracleOf,
  partitionOf,
  splits,
  writeAggregates,
} from '../support/unit/usage-parts.js';

function memorySourceOf(versions: Map<string, UsageAggregate[]>, placement: Placement): MemorySource {
  const source = new MemorySource();
  for (const { key, aggregate } of deliveries(versions)) source.apply(key, aggregate, partitionOf(key, placement));
  return source;
}

describe('collectParts + mergeParts against ReadModel.query (the oracle)', () => {
  it('merge the parts of any split of the partitions into the single-holder answer, for every aggregation and query shape', () => {
    fc.assert(
      fc.property(anyEvents, anyPlacement, fc.array(anyQuery, { minLength: 4, maxLength: 4 }), (events, placement, queries) => {
        const versions = writeAggregates(ALL_METERS, events);
        const oracle = oracleOf(versions);
        const source = memorySourceOf(versions, placement);
        expect(source.size).toBe(oracle.size);
        for (const q of queries) expectMergedEqualsOracle(oracle, q, source, splits(placement));
      }),
      { numRuns: Number(process.env.RUNS ?? 60) },
    );
  });

  it('a holder of no partition contributes empty windows, and merging nothing gives the empty answer', () => {
    const source = new MemorySource();
    const plan = planQuery(CATALOG, { meter: 'sum', subjects: undefined, from: 0, to: 2 * 86_400_000, windowSize: 'DAY', timeZone: 'UTC', groupBy: [], filter: {} });
    expect(collectParts(plan, source, new Set())).toEqual({ windows: [[], []] });
    expect(mergeParts(plan, [])).toMatchObject({ data: [], totals: [], windowsRead: 2 });
  });
});

describe('the parts wire form', () => {
  const plan = planQuery(CATALOG, { meter: 'latest', subjects: undefined, from: 0, to: 3_600_000, windowSize: undefined, timeZone: 'UTC', groupBy: ['subject', 'model'], filter: {} });
  const answer: PartsAnswer = {
    windows: [
      [
        {
          subject: 'acme',
          groupBy: { model: null },
          part: { aggregation: 'LATEST', value: '-1.25', sum: null, count: 3, firstEventTime: 5, lastEventTime: 9, lastServiceTime: '00000000000a0001', lastServiceNode: 'n' },
        },
      ],
    ],
  };
  const wire = (): Record<string, unknown> => JSON.parse(JSON.stringify(encodePartsAnswer(answer))) as Record<string, unknown>;

  it('round-trips through JSON', () => {
    expect(decodePartsAnswer(wire())).toEqual(answer);
    expect(mergeParts(plan, [decodePartsAnswer(wire())]).data).toEqual([
      { windowStart: '1970-01-01T00:00:00.000Z', windowEnd: '1970-01-01T01:00:00.000Z', subject: 'acme', groupBy: { model: null }, value: '-1.25', count: 3 },
    ]);
  });

  it('round-trips any parts', () => {
    const anyPart = fc.record({
      aggregation: fc.constantFrom('SUM', 'COUNT', 'MIN', 'MAX', 'AVG', 'LATEST', 'UNIQUE_COUNT' as const),
      value: fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
      sum: fc.option(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => `${n}.5`), { nil: null }),
      count: fc.nat(),
      firstEventTime: fc.maxSafeInteger(),
      lastEventTime: fc.maxSafeInteger(),
      lastServiceTime: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => n.toString(16).padStart(16, '0')),
      lastServiceNode: fc.string(),
    });
    const anyCell = fc.record({ subject: fc.option(fc.string(), { nil: null }), groupBy: fc.dictionary(fc.string(), fc.option(fc.string(), { nil: null })), part: anyPart });
    fc.assert(
      fc.property(fc.array(fc.array(anyCell)), (windows) => {
        expect(decodePartsAnswer(JSON.parse(JSON.stringify(encodePartsAnswer({ windows }))))).toEqual({ windows });
      }),
    );
  });

  const defects: [string, (w: Record<string, unknown>) => unknown, RegExp][] = [
    ['not an object', () => [1], /expected an object/],
    ['another format', (w) => ({ ...w, format: 'ordo-parts/2' }), /format "ordo-parts\/2"/],
    ['no windows', (w) => ({ ...w, windows: undefined }), /windows: expected an array/],
    ['a window that is not a list', (w) => ({ ...w, windows: [{}] }), /windows\[0\]: expected an array/],
    ['a short cell', (w) => ({ ...w, windows: [[['acme', {}]]] }), /windows\[0\]\[0\]: expected an array of 10 fields/],
  ];
  const cellDefects: [string, number, unknown, RegExp][] = [
    ['subject', 0, 5, /windows\[0\]\[0\]\.subject: expected a string or null: got 5/],
    ['groupBy', 1, ['x'], /\.groupBy: expected an object/],
    ['group value', 1, { model: 1 }, /\.groupBy\.model: expected a string or null/],
    ['aggregation', 2, 'MEDIAN', /\.aggregation: expected one of SUM, COUNT/],
    ['value', 3, '1e3', /\.value: expected a decimal string: got "1e3"/],
    ['sum', 4, 12, /\.sum: expected a decimal string or null/],
    ['count', 5, -1, /\.count: expected a whole number >= 0/],
    ['count', 5, 1.5, /\.count/],
    ['firstEventTime', 6, '5', /\.firstEventTime: expected whole milliseconds/],
    ['lastEventTime', 7, 2 ** 60, /\.lastEventTime/],
    ['lastServiceTime', 8, '00000000000A0001', /\.lastServiceTime: expected 16 lowercase hex digits/],
    ['lastServiceNode', 9, null, /\.lastServiceNode: expected a string/],
  ];
  for (const [what, mutate, message] of defects) {
    it(`refuses ${what}, naming it`, () => {
      expect(() => decodePartsAnswer(mutate(wire()))).toThrow(message);
    });
  }
  for (const [field, index, value, message] of cellDefects) {
    it(`refuses a cell with a bad ${field} (${JSON.stringify(value)}), naming it`, () => {
      const w = wire();
      const cell = [...((w.windows as unknown[][])[0]![0] as unknown[])];
      cell[index] = value;
      expect(() => decodePartsAnswer({ ...w, windows: [[cell]] })).toThrow(message);
    });
  }

  it('refuses parts that do not fit the plan (another meter configuration on the peer)', () => {
    const part = answer.windows[0]![0]!;
    expect(() => mergeParts(plan, [{ windows: [] }])).toThrow(/0 windows, the plan 1/);
    expect(() => mergeParts(plan, [{ windows: [[{ ...part, part: { ...part.part, aggregation: 'MAX' } }]] }])).toThrow(/aggregation MAX, but meter latest is LATEST/);
    expect(() => mergeParts(plan, [{ windows: [[{ ...part, subject: null }]] }])).toThrow(/subject missing/);
    expect(() => mergeParts(plan, [{ windows: [[{ ...part, groupBy: { region: 'eu' } }]] }])).toThrow(/group "region" was not asked for/);
  });
});

describe('mergeParts of distinct counts', () => {
  it('refuses as not exact the same UNIQUE_COUNT cell from two holders (one subject in two partitions)', () => {
    const at = { meter: 'unique', subject: 'acme', groupBy: { model: 'x' }, windowSize: 'DAY' as const, windowStart: 0 };
    const aggregate: UsageAggregate = {
      ...at,
      windowEnd: 86_400_000,
      aggregation: 'UNIQUE_COUNT',
      value: '2',
      sum: null,
      count: 3,
      firstEventTime: 1,
      lastEventTime: 2,
      lastServiceTime: '0000000000000001',
      lastServiceNode: 'n',
      version: 3,
      corrections: 0,
    };
    const source = new MemorySource();
    source.apply(aggregateKey(at), aggregate, 0);
    source.apply(aggregateKey(at), aggregate, 1);
    const plan = planQuery(CATALOG, { meter: 'unique', subjects: ['acme'], from: 0, to: 86_400_000, windowSize: undefined, timeZone: 'UTC', groupBy: ['model'], filter: {} });
    const parts = [collectParts(plan, source, new Set([0])), collectParts(plan, source, new Set([1]))];
    const error = catchError(() => mergeParts(plan, parts));
    expect(error).toBeInstanceOf(QueryError);
    expect(error).toMatchObject({ kind: 'not-exact', message: expect.stringMatching(/same cell in two partitions/) as unknown });
  });
});
