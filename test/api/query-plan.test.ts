import { describe, expect, it } from 'vitest';
import { planQuery } from '../../src/api/query-plan.js';
import { QueryError } from '../../src/errors.js';
import { MeterCatalog } from '../../src/usage/meters.js';
import { catchError } from '../support/unit/fixtures.js';
import { ALL_METERS } from '../support/unit/usage-parts.js';

const catalog = new MeterCatalog(ALL_METERS);
const DAY = 86_400_000;
const START = Date.UTC(2026, 9, 30);

describe('planQuery', () => {
  it('tiles each output window with stored windows and counts the reads', () => {
    const plan = planQuery(catalog, { meter: 'sum', subjects: undefined, from: START, to: START + 2 * DAY + 3_600_000, windowSize: undefined, timeZone: 'utc', groupBy: ['region', 'subject', 'region'], filter: { model: ['x'] } });
    expect(plan.timeZone).toBe('UTC');
    expect(plan.groupBy).toEqual(['region', 'subject']);
    expect(plan).toMatchObject({ groupNames: ['region'], bySubject: true, unique: false, subjects: undefined });
    expect(plan.filter).toEqual([['model', new Set(['x'])]]);
    // Two whole days, then the first hour of the next.
    expect(plan.windows.map((w) => w.pieces.map((p) => p.size))).toEqual([['DAY', 'DAY', 'HOUR']]);
    expect(plan.windowsRead).toBe(3);
  });

  it('narrows the listed subjects to the caller scope, once each', () => {
    const plan = planQuery(catalog, {
      meter: 'count',
      subjects: ['acme', 'globex', 'acme'],
      from: START,
      to: START + DAY,
      windowSize: undefined,
      timeZone: 'UTC',
      groupBy: [],
      filter: {},
      allowsSubject: (s) => s === 'acme',
    });
    expect(plan.subjects).toEqual(['acme']);
  });

  it('refuses with the same QueryErrors the read model answers', () => {
    const refusal = (q: Partial<Parameters<typeof planQuery>[1]>, options = {}): unknown =>
      catchError(() => planQuery(catalog, { meter: 'sum', subjects: undefined, from: START, to: START + DAY, windowSize: undefined, timeZone: 'UTC', groupBy: [], filter: {}, ...q }, options));
    expect(refusal({ meter: 'nope' })).toMatchObject({ kind: 'unknown-meter', status: 404 });
    expect(refusal({ to: START })).toMatchObject({ kind: 'bad-parameter' });
    expect(refusal({ groupBy: ['colour'] })).toMatchObject({ kind: 'bad-parameter' });
    expect(refusal({ meter: 'unique', groupBy: ['subject'] })).toMatchObject({ kind: 'not-exact' });
    expect(refusal({ to: START + 40 * DAY, windowSize: 'HOUR' }, { maxWindowsRead: 100 })).toMatchObject({ kind: 'too-many-windows' });
    expect(refusal({ from: START + 1_800_000 })).toBeInstanceOf(QueryError);
  });
});
