import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeServiceTime } from '../../src/clock/service-time.js';
import { numberCodec } from '../../src/model/store.js';
import { AGGREGATES_STORE, AggregateStep, UNIQUE_STORE, aggregateCodec } from '../../src/processors/aggregate.js';
import type { StampedEvent } from '../../src/model/records.js';
import { frame, unframe } from '../../src/schema/wire-format.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { type UsageAggregate, usageAggregateType } from '../../src/usage/aggregation.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { T0, sourceRecord, taskContext, usageEvent } from '../support/unit/fixtures.js';
import { expectedAggregates } from '../support/usage-oracle.js';

const DAY = 86_400_000;
const SCHEMA_ID = 11;
const STORES = [
  { name: AGGREGATES_STORE, codec: aggregateCodec },
  { name: UNIQUE_STORE, codec: numberCodec },
];

function meter(fields: Partial<Meter> & Pick<Meter, 'slug' | 'aggregation'>): Meter {
  return {
    description: undefined,
    eventTypes: ['api.request'],
    valueProperty: fields.aggregation === 'COUNT' ? undefined : { kind: 'value' },
    groupBy: {},
    windows: ['HOUR', 'DAY', 'MONTH'],
    ...fields,
  };
}

const METERS: Meter[] = [
  meter({ slug: 'calls', aggregation: 'COUNT', groupBy: { region: 'region' } }),
  meter({ slug: 'spend', aggregation: 'SUM', windows: ['MINUTE', 'HOUR', 'DAY', 'MONTH'] }),
  meter({ slug: 'tokens', aggregation: 'SUM', valueProperty: { kind: 'dimension', name: 'tokens' }, eventTypes: ['llm.completion'] }),
  meter({ slug: 'low', aggregation: 'MIN' }),
  meter({ slug: 'high', aggregation: 'MAX', groupBy: { region: 'region' } }),
  meter({ slug: 'mean', aggregation: 'AVG' }),
  meter({ slug: 'last', aggregation: 'LATEST', windows: ['DAY'] }),
  meter({ slug: 'users', aggregation: 'UNIQUE_COUNT', valueProperty: { kind: 'dimension', name: 'user' }, windows: ['DAY', 'MONTH'] }),
];

/** An api.request event carrying every dimension the meters above read. */
function ev(overrides: Partial<UsageEvent> = {}): UsageEvent {
  return usageEvent({ dimensions: { region: 'eu', user: 'u0', tokens: '1' }, ...overrides });
}

let counter = 0;
function stamped(event: UsageEvent, seenAt = event.time + 1_000, orderNode = 'ordo-0'): StampedEvent {
  const time = makeServiceTime(seenAt, counter++ % 1000);
  return { source: sourceRecord({ value: null, offset: String(counter) }), event, context: undefined, stamp: { time, node: 'ordo-0' }, orderKey: { time, node: orderNode } };
}

function step(lateness = 35 * DAY) {
  return new AggregateStep({ meters: new MeterCatalog(METERS), aggregatesTopic: 'usage-aggregates', aggregateSchemaId: SCHEMA_ID, allowedLatenessMs: lateness, maxFutureMs: 300_000 });
}

const anyEvent: fc.Arbitrary<UsageEvent> = fc.record({
  id: fc.uuid(),
  source: fc.constantFrom('gw', 'billing'),
  type: fc.constantFrom('api.request', 'llm.completion', 'other'),
  subject: fc.constantFrom('acme', 'globex', 'initech'),
  time: fc.integer({ min: T0, max: T0 + 3 * DAY }),
  value: fc.oneof(fc.constantFrom('0', '1', '-2.5', '0.1', '0.2', '12.50', '99999999999999999999.99999'), fc.integer({ min: -1000, max: 1000 }).map(String)),
  dimensions: fc.record({
    region: fc.constantFrom('eu', 'us'),
    user: fc.constantFrom('u1', 'u2', 'u3', 'u4'),
    tokens: fc.constantFrom('1', '10', '0.001', '7'),
  }, { requiredKeys: ['tokens', 'user'] }),
});

function runBatches(events: StampedEvent[], cuts: number[], lateness?: number) {
  const aggregate = step(lateness);
  const context = taskContext(undefined, STORES);
  const written = new Map<string, UsageAggregate>();
  let start = 0;
  for (const end of [...cuts.filter((c) => c > 0 && c < events.length).sort((a, b) => a - b), events.length]) {
    const batch = events.slice(start, end);
    start = end;
    const measured = aggregate.measure(batch);
    expect(measured.dead).toEqual([]);
    const result = aggregate.apply(measured.items, context.store(AGGREGATES_STORE), context.store(UNIQUE_STORE));
    const keys = result.outputs.map((o) => o.key);
    expect(new Set(keys).size).toBe(keys.length); // each changed aggregate once per batch
    for (const o of result.outputs) {
      const { schemaId, body } = unframe(o.value as Buffer);
      expect(schemaId).toBe(SCHEMA_ID);
      written.set(o.key as string, usageAggregateType.fromBuffer(body) as UsageAggregate);
    }
    context.commit();
  }
  return { written, context };
}

describe('AggregateStep', () => {
  it('writes, for any batching, the aggregates a plain recomputation gives, to the last digit', () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { minLength: 1, maxLength: 60 }), fc.array(fc.nat(60), { maxLength: 6 }), (events, cuts) => {
        const input = events.map((e) => stamped(e));
        const { written, context } = runBatches(input, cuts);
        const expected = expectedAggregates(METERS, input.map((s) => ({ event: s.event, orderTime: s.orderKey.time, orderNode: s.orderKey.node })));
        expect([...written.keys()].sort()).toEqual([...expected.keys()].sort());
        for (const [key, want] of expected) {
          const got = written.get(key) as UsageAggregate;
          expect({ ...got, value: got.value }).toMatchObject({
            meter: want.meter,
            subject: want.subject,
            groupBy: want.groupBy,
            windowSize: want.windowSize,
            windowStart: want.windowStart,
            windowEnd: want.windowEnd,
            value: want.value,
            count: want.count,
            firstEventTime: want.firstEventTime,
            lastEventTime: want.lastEventTime,
            version: want.count,
          });
          expect(context.store(AGGREGATES_STORE).get(key)).toEqual(got);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('keeps sums exact where binary floating point drifts', () => {
    const events = Array.from({ length: 10 }, (_, i) => stamped(ev({ id: `e${i}`, type: 'api.request', time: T0, value: '0.1' })));
    const { written } = runBatches(events, [3, 7]);
    const spend = [...written.values()].filter((a) => a.meter === 'spend');
    expect(spend.map((a) => a.value)).toEqual(['1', '1', '1', '1']);
  });

  it('follows the causally last event for LATEST, whatever the arrival order', () => {
    const late = stamped(ev({ id: 'a', time: T0, value: '5' }));
    const early = stamped(ev({ id: 'b', time: T0, value: '7' }));
    // `late` was stamped first but carries the higher order key (its upstream time was later).
    late.orderKey = { time: early.orderKey.time + 10n, node: 'svc-a' };
    const { written } = runBatches([late, early], []);
    expect([...written.values()].find((a) => a.meter === 'last')?.value).toBe('5');
  });

  it('counts distinct values exactly per window for UNIQUE_COUNT', () => {
    const users = ['u1', 'u2', 'u1', 'u3', 'u2', 'u1'];
    const events = users.map((user, i) => stamped(ev({ id: `e${i}`, time: T0, dimensions: { user, tokens: '1' } })));
    const { written, context } = runBatches(events, [2, 4]);
    const day = [...written.values()].find((a) => a.meter === 'users' && a.windowSize === 'DAY');
    expect(day).toMatchObject({ value: '3', count: 6, version: 6 });
    expect(context.store(UNIQUE_STORE).size).toBe(6); // 3 members x (DAY, MONTH)
  });

  it('sends an event older than the allowed lateness to the late topic and aggregates nothing of it', () => {
    const aggregate = step(2 * DAY);
    const context = taskContext(undefined, STORES);
    const ok = stamped(ev({ id: 'ok', time: T0 }), T0 + DAY);
    const tooLate = stamped(ev({ id: 'old', time: T0 }), T0 + 2 * DAY + 1);
    const { items } = aggregate.measure([ok, tooLate]);
    const result = aggregate.apply(items, context.store(AGGREGATES_STORE), context.store(UNIQUE_STORE));
    expect(result.events.map((e) => e.event.id)).toEqual(['ok']);
    expect(result.late).toEqual([expect.objectContaining({ source: tooLate.source, reason: 'too-late' })]);
    expect(result.late[0]?.detail).toMatch(/more than 172800000 ms before it was seen/);
    const calls = result.outputs.map((o) => usageAggregateType.fromBuffer(unframe(o.value as Buffer).body) as UsageAggregate).filter((a) => a.meter === 'calls');
    expect(calls.map((a) => a.count)).toEqual([1, 1, 1]);
  });

  it('dead-letters a metered event from the future (beyond the allowed 5 minutes) and keeps one just within it', () => {
    const tooEarly = stamped(ev({ id: 'future', time: T0 + 300_001 }), T0);
    const justIn = stamped(ev({ id: 'soon', time: T0 + 300_000 }), T0);
    const unmetered = stamped(ev({ id: 'other', type: 'not.metered', time: T0 + 86_400_000 }), T0);
    const { items, dead } = step().measure([tooEarly, justIn, unmetered]);
    expect(items.map((e) => e.event.id)).toEqual(['soon', 'other']);
    expect(dead).toEqual([expect.objectContaining({ source: tooEarly.source, reason: 'invalid-event' })]);
    expect(dead[0]?.message).toMatch(/more than 300000 ms ahead of Ordo's clock/);
  });

  it('lets an event of another type through untouched and never calls it late', () => {
    const aggregate = step(DAY);
    const context = taskContext(undefined, STORES);
    const other = stamped(ev({ type: 'not.metered', time: T0 }), T0 + 10 * DAY);
    const result = aggregate.apply(aggregate.measure([other]).items, context.store(AGGREGATES_STORE), context.store(UNIQUE_STORE));
    expect(result.events).toHaveLength(1);
    expect(result.late).toEqual([]);
    expect(result.outputs).toEqual([]);
  });

  it.each([
    ['NaN', 'not a plain decimal'],
    ['Infinity', 'not a plain decimal'],
    ['1e3', 'not a plain decimal'],
    ['twelve', 'not a plain decimal'],
    [undefined, 'which the event does not have'],
  ])('dead-letters an event whose metered value is %s, with the reason', (tokens, message) => {
    const event = ev({ type: 'llm.completion', time: T0, dimensions: tokens === undefined ? {} : { tokens } });
    const { items, dead } = step().measure([stamped(event)]);
    expect(items).toEqual([]);
    expect(dead).toEqual([expect.objectContaining({ reason: 'invalid-value', message: expect.stringContaining(message) as string })]);
    expect(dead[0]?.message).toContain('meter tokens reads dimensions.tokens');
  });

  it('forgets windows that can no longer change, keeping the rest', () => {
    const aggregate = step(DAY);
    const context = taskContext(undefined, STORES);
    const first = stamped(ev({ id: 'a', time: T0, dimensions: { user: 'u1' } }), T0 + 1000);
    aggregate.apply(aggregate.measure([first]).items, context.store(AGGREGATES_STORE), context.store(UNIQUE_STORE));
    context.commit();
    const before = context.store(AGGREGATES_STORE).size;
    // Three days later the HOUR and DAY windows of T0 are final; the MONTH window may be too.
    const later = stamped(ev({ id: 'b', time: T0 + 3 * DAY, dimensions: { user: 'u1' } }), T0 + 3 * DAY + 1000);
    const result = aggregate.apply(aggregate.measure([later]).items, context.store(AGGREGATES_STORE), context.store(UNIQUE_STORE));
    context.commit();
    expect(result.expired).toBeGreaterThan(0);
    for (const [, agg] of context.store<UsageAggregate>(AGGREGATES_STORE).entries()) {
      expect(agg.windowEnd).toBeGreaterThan(T0 + 3 * DAY + 1000 - DAY);
    }
    expect(context.store(AGGREGATES_STORE).size).toBeLessThan(before + 20);
  });

  it('round-trips aggregates through the changelog codec', () => {
    const events = [stamped(ev({ id: 'a', time: T0, value: '3.25' }))];
    const { context } = runBatches(events, []);
    for (const [, agg] of context.store<UsageAggregate>(AGGREGATES_STORE).entries()) {
      expect(aggregateCodec.decode(aggregateCodec.encode(agg))).toEqual(agg);
      expect(usageAggregateType.isValid(agg)).toBe(true);
      expect(unframe(frame(SCHEMA_ID, aggregateCodec.encode(agg))).schemaId).toBe(SCHEMA_ID);
    }
  });
});
