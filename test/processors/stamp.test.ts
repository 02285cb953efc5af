import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import type { PhysicalClock } from '../../src/clock/physical-clock.js';
import { makeServiceTime, millisOf } from '../../src/clock/service-time.js';
import type { DecodedEvent, TimeContext } from '../../src/model/records.js';
import { type StampStats, StampStep } from '../../src/processors/stamp.js';
import { FakeClock, T0, sourceRecord, usageEvent } from '../support/unit/fixtures.js';

const MAX_SKEW = 500;

function decoded(context?: TimeContext, id = 'e'): DecodedEvent {
  return { source: sourceRecord({ value: Buffer.from(id) }), event: usageEvent({ id }), context };
}

function setup(ms = T0, physical: PhysicalClock = new FakeClock(ms)) {
  const clock = new HybridClock({ node: 'ordo-0', physical, maxSkewMs: MAX_SKEW });
  return { clock, step: new StampStep(clock) };
}

describe('StampStep', () => {
  it('stamps an event without context from physical time; its order key is the stamp', () => {
    const { step } = setup();
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const input = decoded();
    const { items, dead } = step.run([input, decoded()], stats);
    expect(dead).toEqual([]);
    expect(items[0]!.stamp).toEqual({ time: makeServiceTime(T0, 0), node: 'ordo-0' });
    expect(items[0]!.orderKey).toEqual(items[0]!.stamp);
    expect(items[1]!.stamp).toEqual({ time: makeServiceTime(T0, 1), node: 'ordo-0' });
    expect(items[0]!.event).toBe(input.event);
    expect(items[0]!.source).toBe(input.source);
    expect(items[0]!.context).toBeUndefined();
    // Only received contexts are skew samples.
    expect(stats).toEqual({ skewsMs: [], rejectedForSkew: 0 });
  });

  it('stamps an event with context above the context; its order key is the context', () => {
    const { step } = setup();
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const ahead = makeServiceTime(T0 + 200, 9); // ahead of us, within the bound
    const behind = makeServiceTime(T0 - 60_000, 0);
    const { items, dead } = step.run(
      [decoded({ time: ahead, node: 'upstream-a' }), decoded({ time: behind, node: undefined })],
      stats,
    );
    expect(dead).toEqual([]);
    expect(items[0]!.stamp).toEqual({ time: ahead + 1n, node: 'ordo-0' });
    expect(items[0]!.orderKey).toEqual({ time: ahead, node: 'upstream-a' });
    expect(items[0]!.context).toEqual({ time: ahead, node: 'upstream-a' });
    expect(items[1]!.stamp.time).toBe(ahead + 2n);
    expect(items[1]!.orderKey).toEqual({ time: behind, node: '' });
    expect(stats).toEqual({ skewsMs: [200, 0], rejectedForSkew: 0 });
  });

  it('dead-letters a context too far ahead as clock-skew and leaves the clock unchanged', () => {
    const { clock, step } = setup();
    clock.now();
    const before = clock.last;
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const bad = decoded({ time: makeServiceTime(T0 + MAX_SKEW + 1, 0), node: 'fast-clock' }, 'bad');
    const edge = decoded({ time: makeServiceTime(T0 + MAX_SKEW, 0xffff), node: 'edge' }, 'edge');
    const { items, dead } = step.run([bad], stats);
    expect(items).toEqual([]);
    expect(dead).toEqual([{ source: bad.source, reason: 'clock-skew', message: expect.stringContaining(`${MAX_SKEW + 1} ms`) as unknown }]);
    expect(clock.last).toBe(before);
    expect(stats).toEqual({ skewsMs: [MAX_SKEW + 1], rejectedForSkew: 1 });
    // Exactly at the bound is adopted.
    const next = step.run([edge], stats);
    expect(next.dead).toEqual([]);
    expect(next.items[0]!.stamp.time).toBe(makeServiceTime(T0 + MAX_SKEW + 1, 0));
  });

  it('runs without stats', () => {
    const { step } = setup();
    const { items, dead } = step.run([decoded({ time: makeServiceTime(T0 + 10_000, 0), node: 'x' }), decoded()]);
    expect(dead.map((d) => d.reason)).toEqual(['clock-skew']);
    expect(items).toHaveLength(1);
  });

  it('keeps stamps strictly increasing within a batch while the wall clock jitters (property)', () => {
    const anyContext = fc.option(
      fc.record({
        time: fc.tuple(fc.integer({ min: T0 - 5_000, max: T0 + 5_000 }), fc.integer({ min: 0, max: 0xffff })).map(([ms, c]) => makeServiceTime(ms, c)),
        node: fc.option(fc.constantFrom('a', 'b', 'upstream-9'), { nil: undefined }),
      }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(
        fc.array(anyContext, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: -1_000, max: 1_000 }), { minLength: 1, maxLength: 30 }),
        (contexts, jitter) => {
          let reads = 0;
          const readings: number[] = [];
          const physical: PhysicalClock = {
            now: () => {
              const ms = T0 + jitter[reads++ % jitter.length]!;
              readings.push(ms);
              return ms;
            },
          };
          const { clock, step } = setup(T0, physical);
          const input = contexts.map((context, i) => decoded(context, `e${i}`));
          const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
          const { items, dead } = step.run(input, stats);

          expect(items.length + dead.length).toBe(input.length);
          for (let i = 1; i < items.length; i++) expect(items[i]!.stamp.time > items[i - 1]!.stamp.time).toBe(true);
          if (items.length > 0) expect(clock.last).toBe(items[items.length - 1]!.stamp.time);
          // Items keep input order.
          const order = items.map((item) => input.findIndex((d) => d.source === item.source));
          expect(order).toEqual([...order].sort((a, b) => a - b));
          for (const item of items) {
            expect(item.stamp.node).toBe('ordo-0');
            if (item.context === undefined) {
              expect(item.orderKey).toBe(item.stamp);
            } else {
              expect(item.stamp.time > item.context.time).toBe(true);
              expect(item.orderKey).toEqual({ time: item.context.time, node: item.context.node ?? '' });
            }
          }
          const minPt = Math.min(...readings);
          const maxPt = Math.max(...readings);
          const deadIds = new Set(dead.map((d) => d.source));
          for (const d of input) {
            if (d.context === undefined) continue;
            const ms = millisOf(d.context.time);
            if (ms <= minPt + MAX_SKEW) expect(deadIds.has(d.source)).toBe(false);
            if (ms > maxPt + MAX_SKEW) expect(deadIds.has(d.source)).toBe(true);
          }
          expect(dead.every((d) => d.reason === 'clock-skew')).toBe(true);
          expect(stats.rejectedForSkew).toBe(dead.length);
          expect(stats.skewsMs).toHaveLength(input.filter((d) => d.context !== undefined).length);
          expect(stats.skewsMs.every((s) => s >= 0)).toBe(true);
        },
      ),
    );
  });
});
