import fc from 'fast-check';
import type { Batch, Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ConsumerLag, type FetchedRange, PartitionLag } from '../../src/engine/consumer-lag.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';

const T0 = 1_700_000_000_000;

/** A fetch of [from, to) whose data records are `data` (offset -> timestamp); the rest are markers/aborted. */
function fetched(from: number, to: number, data: Record<number, number>): FetchedRange {
  const records = Object.entries(data)
    .map(([o, ts]) => ({ offset: BigInt(o), timestamp: ts }))
    .filter((r) => r.offset >= BigInt(from) && r.offset < BigInt(to))
    .sort((a, b) => (a.offset < b.offset ? -1 : 1));
  return { from: BigInt(from), to: BigInt(to), records };
}

function broker(end: number, committed?: number, start = 0) {
  return { end: BigInt(end), start: BigInt(start), committed: committed === undefined ? undefined : BigInt(committed) };
}

describe('PartitionLag', () => {
  it('is unknown until the broker was asked', () => {
    const lag = new PartitionLag();
    lag.observeFetch(fetched(0, 2, { 0: T0, 1: T0 }), T0);
    expect(lag.sample(T0)).toBeUndefined();
    lag.observeBroker(broker(2), T0);
    expect(lag.sample(T0)).toEqual({ records: 2, seconds: 0, exact: true });
  });

  it('a partition never written, and an idle caught-up one, read 0 and 0 however long they stay idle', () => {
    const empty = new PartitionLag();
    empty.observeBroker(broker(0), T0);
    expect(empty.sample(T0 + 3_600_000)).toEqual({ records: 0, seconds: 0, exact: true });

    const idle = new PartitionLag();
    idle.observeBroker(broker(3, 0), T0);
    idle.observeFetch(fetched(0, 3, { 0: T0 - 10_000, 1: T0 - 9_000, 2: T0 - 8_000 }), T0);
    idle.commit(3n);
    for (let minute = 1; minute <= 60; minute++) {
      idle.observeBroker(broker(3, minute > 1 ? 3 : 0), T0 + minute * 60_000);
      expect(idle.sample(T0 + minute * 60_000 + 30_000)).toEqual({ records: 0, seconds: 0, exact: true });
    }
  });

  it('caught up on a transactional topic reads 0 although the log ends with a commit marker (end - committed = 1)', () => {
    // Offsets 0-2 data, 3 commit marker; 4 data, 5 abort marker (aborted); 6-7 data, 8 commit marker.
    const data = { 0: T0, 1: T0, 2: T0, 6: T0 + 10, 7: T0 + 10 };
    const lag = new PartitionLag();
    lag.observeBroker(broker(9), T0 + 20);
    lag.observeFetch(fetched(0, 9, data), T0 + 20);
    expect(lag.sample(T0 + 30)).toEqual({ records: 5, seconds: 0.03, exact: true });
    lag.commit(3n);
    expect(lag.sample(T0 + 30)).toEqual({ records: 2, seconds: 0.02, exact: true });
    lag.commit(8n); // the group offset: after the last data record, before the marker
    lag.observeBroker(broker(9, 8), T0 + 40);
    expect(lag.sample(T0 + 50)).toEqual({ records: 0, seconds: 0, exact: true });
  });

  it('an unfetched trailing marker counts until the consumer fetches it (kafkajs: a marker-only fetch)', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(2), T0);
    lag.observeFetch(fetched(0, 2, { 0: T0, 1: T0 }), T0);
    lag.commit(2n);
    lag.observeBroker(broker(3, 2), T0 + 100); // the marker landed after the fetch
    expect(lag.sample(T0 + 200)?.records).toBe(1);
    lag.observeFetch(fetched(2, 3, {}), T0 + 150);
    expect(lag.sample(T0 + 200)).toEqual({ records: 0, seconds: 0, exact: true });
  });

  it('counts a backlog exactly and takes the age from the record at the committed offset', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(10, 4), T0 + 5_000);
    lag.observeFetch(fetched(4, 10, { 4: T0, 5: T0 + 100, 6: T0 + 200, 7: T0 + 300, 8: T0 + 400, 9: T0 + 500 }), T0 + 5_000);
    expect(lag.sample(T0 + 6_000)).toEqual({ records: 6, seconds: 6, exact: true });
    lag.commit(7n);
    expect(lag.sample(T0 + 6_000)).toEqual({ records: 3, seconds: 5.7, exact: true });
  });

  it('between two batches of a backlog the age continues from the last committed record (no dip)', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(100, 0), T0 + 60_000); // a minute of backlog when the worker starts
    lag.observeFetch(fetched(0, 50, Object.fromEntries(Array.from({ length: 50 }, (_, i) => [i, T0 + i * 1_000]))), T0 + 60_001);
    expect(lag.sample(T0 + 60_010)).toMatchObject({ records: 100, seconds: 60.01, exact: true });
    lag.commit(50n); // the whole batch; the next one is not fetched yet
    const gap = lag.sample(T0 + 60_020)!;
    expect(gap).toMatchObject({ records: 50, exact: false });
    // The true age is 60.02 - 50 = 10.02 s; the estimate uses record 49 (T0 + 49 s).
    expect(gap.seconds).toBeCloseTo(11.02, 6);
    lag.observeFetch(fetched(50, 100, Object.fromEntries(Array.from({ length: 50 }, (_, i) => [50 + i, T0 + (50 + i) * 1_000]))), T0 + 60_030);
    expect(lag.sample(T0 + 60_030)).toMatchObject({ records: 50, exact: true });
    expect(lag.sample(T0 + 60_030)!.seconds).toBeCloseTo(10.03, 6);
  });

  it('after an idle period, a record seen by the broker but not fetched yet is at most one refresh older than reported', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(1, 0), T0);
    lag.observeFetch(fetched(0, 1, { 0: T0 - 3_600_000 }), T0);
    lag.commit(1n);
    lag.observeBroker(broker(1, 1), T0 + 5_000); // still caught up
    // A record appended at T0 + 7 s, first seen by the refresh at T0 + 10 s.
    lag.observeBroker(broker(2, 1), T0 + 10_000);
    const s = lag.sample(T0 + 11_000)!;
    expect(s).toMatchObject({ records: 1, exact: false });
    expect(s.seconds).toBe(6); // since the last time the log was seen to end before it (true age: 4 s)
  });

  it('right after an assignment, before the first fetch, the age is a lower bound that grows from the first sighting', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(10, 4), T0);
    expect(lag.sample(T0 + 1_500)).toEqual({ records: 6, seconds: 1.5, exact: false });
  });

  it('skips records below the log start (deleted by retention) and ignores commits behind what it knows', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(15, 3, 10), T0);
    expect(lag.sample(T0)?.records).toBe(5);
    lag.commit(12n);
    lag.commit(11n);
    lag.observeBroker(broker(15, 11, 10), T0 + 1);
    expect(lag.sample(T0 + 1)?.records).toBe(3);
  });

  it('merges a re-fetch that overlaps what is known and a fetch that starts earlier', () => {
    const lag = new PartitionLag();
    lag.observeBroker(broker(20, 0), T0);
    lag.observeFetch(fetched(0, 10, { 0: T0, 5: T0 + 5, 9: T0 + 9 }), T0);
    lag.observeFetch(fetched(5, 20, { 5: T0 + 5, 9: T0 + 9, 15: T0 + 15 }), T0);
    expect(lag.sample(T0 + 100)).toEqual({ records: 4, seconds: 0.1, exact: true });
    lag.commit(6n);
    lag.observeFetch(fetched(6, 12, { 9: T0 + 9 }), T0); // kafkajs fetched again from the committed offset
    expect(lag.sample(T0 + 100)).toEqual({ records: 2, seconds: 0.091, exact: true });
  });
});

type Kind = 'data' | 'marker' | 'aborted';
type Step =
  | { op: 'append'; n: number; dt: number }
  | { op: 'fetch'; n: number; dt: number }
  | { op: 'commit'; k: number; dt: number }
  | { op: 'broker'; dt: number }
  | { op: 'wait'; dt: number };

const dt = fc.integer({ min: 0, max: 5_000 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('append' as const), n: fc.integer({ min: 1, max: 6 }), dt }),
  fc.record({ op: fc.constant('fetch' as const), n: fc.integer({ min: 1, max: 8 }), dt }),
  fc.record({ op: fc.constant('commit' as const), k: fc.integer({ min: 1, max: 5 }), dt }),
  fc.record({ op: fc.constant('broker' as const), dt }),
  fc.record({ op: fc.constant('wait' as const), dt }),
);
const scenario = fc.record({
  log: fc.array(fc.constantFrom<Kind>('data', 'data', 'data', 'marker', 'aborted'), { minLength: 1, maxLength: 60 }),
  visible: fc.integer({ min: 0, max: 60 }),
  startAt: fc.nat(),
  hasCommitted: fc.boolean(),
  steps: fc.array(stepArb, { maxLength: 40 }),
});

describe('PartitionLag invariants (a simulated consumer over a random log of data, markers and aborted records)', () => {
  it('never negative; never counts a fetched marker; exact and 0 when caught up; the age only grows with the clock between events', () => {
    fc.assert(
      fc.property(scenario, ({ log, visible, startAt, hasCommitted, steps }) => {
        const n = log.length;
        let t = T0;
        let end = Math.min(visible, n); // the broker's last stable offset
        const ts: number[] = log.slice(0, end).map(() => t - 60_000);
        let c = hasCommitted ? startAt % (end + 1) : 0; // the committed offset
        let brokerCommitted: number | undefined = hasCommitted ? c : undefined;
        let position = c; // the consumer's fetch position
        let knownEnd = end;
        let sawDataBelowC = false;
        let sawEndAtOrBelowC = end <= c;
        const lag = new PartitionLag();
        lag.observeBroker(broker(end, brokerCommitted), t);

        const check = (): void => {
          const s = lag.sample(t);
          expect(s).toBeDefined();
          const { records, seconds, exact } = s!;
          expect(records).toBeGreaterThanOrEqual(0);
          expect(seconds).toBeGreaterThanOrEqual(0);
          expect(Number.isFinite(seconds)).toBe(true);
          let trueData = 0;
          let head: number | undefined;
          for (let o = c; o < knownEnd; o++) {
            if (log[o] !== 'data') continue;
            trueData += 1;
            head ??= o;
          }
          expect(records).toBeGreaterThanOrEqual(trueData); // unfetched offsets count as records...
          expect(records).toBeLessThanOrEqual(Math.max(0, knownEnd - c));
          if (position >= knownEnd) expect(records).toBe(trueData); // ...fetched markers never
          if (records === 0) expect(seconds).toBe(0);
          if (head !== undefined && head < position) expect(exact).toBe(true); // the record is in hand
          if (exact && records > 0) expect(seconds).toBeCloseTo((t - ts[head!]!) / 1000, 9);
          if (!exact && head !== undefined && (sawDataBelowC || sawEndAtOrBelowC)) {
            expect(seconds).toBeGreaterThanOrEqual((t - ts[head]!) / 1000); // the largest age consistent with what is known
          }
          // No sawtooth: with nothing new, the age grows exactly with the clock.
          const later = lag.sample(t + 2_500)!;
          expect(later.records).toBe(records);
          expect(later.seconds).toBeCloseTo(records === 0 ? 0 : seconds + 2.5, 9);
        };

        check();
        for (const step of steps) {
          t += step.dt;
          switch (step.op) {
            case 'append':
              for (let i = 0; i < step.n && end < n; i++, end++) ts.push(t);
              break;
            case 'fetch': {
              if (position >= end) break;
              const to = Math.min(position + step.n, end);
              const data: Record<number, number> = {};
              for (let o = position; o < to; o++) if (log[o] === 'data') data[o] = ts[o]!;
              lag.observeFetch(fetched(position, to, data), t);
              position = to;
              knownEnd = Math.max(knownEnd, to);
              break;
            }
            case 'commit': {
              const pending: number[] = [];
              for (let o = c; o < position; o++) if (log[o] === 'data') pending.push(o);
              const last = pending[Math.min(step.k, pending.length) - 1];
              if (last === undefined) break;
              brokerCommitted = c; // the broker's view lags one commit behind
              c = last + 1;
              sawDataBelowC = true;
              lag.commit(BigInt(c));
              break;
            }
            case 'broker':
              lag.observeBroker(broker(end, brokerCommitted), t);
              knownEnd = Math.max(knownEnd, end);
              if (end <= c) sawEndAtOrBelowC = true;
              break;
            case 'wait':
              break;
          }
          check();
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** A Kafka stub whose admin answers from `state` (ListOffsets read_committed + OffsetFetch). */
function stubKafka(state: { ends: Map<number, number>; committed: Map<number, number> }, calls: { refreshes: number }): Kafka {
  const admin = {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    fetchTopicOffsets: () => {
      calls.refreshes += 1;
      return Promise.resolve([...state.ends].map(([partition, end]) => ({ partition, offset: String(end), high: String(end), low: '0' })));
    },
    fetchOffsets: ({ topics }: { topics: string[] }) =>
      Promise.resolve(topics.map((topic) => ({ topic, partitions: [...state.ends.keys()].map((p) => ({ partition: p, offset: String(state.committed.get(p) ?? -1), metadata: null })) }))),
  };
  return { admin: () => admin } as unknown as Kafka;
}

function batchOf(partition: number, fetchedOffset: number, records: { offset: number; timestamp: number }[], lastOffset: number): Batch {
  return {
    topic: 'in',
    partition,
    fetchedOffset: String(fetchedOffset),
    highWatermark: String(lastOffset + 1),
    messages: records.map((r) => ({ offset: String(r.offset), timestamp: String(r.timestamp), key: null, value: null, attributes: 0, headers: {} })),
    isEmpty: () => records.length === 0,
    firstOffset: () => String(fetchedOffset),
    lastOffset: () => String(lastOffset),
    offsetLag: () => '0',
    offsetLagLow: () => '0',
  } as unknown as Batch;
}

describe('ConsumerLag (gauges at scrape time)', () => {
  it('reports owned partitions only, from one refresh shared by both gauges, and nothing once stopped', async () => {
    const state = { ends: new Map([[0, 4], [1, 0], [2, 7]]), committed: new Map([[0, 1]]) };
    const calls = { refreshes: 0 };
    const metrics = new OrdoMetrics();
    let now = T0;
    const lag = new ConsumerLag({ kafka: stubKafka(state, calls), groupId: 'g', topic: 'in', metrics, logger: noopLogger, refreshMs: 60_000, now: () => now });
    lag.assign([0, 1]);
    lag.fetched(batchOf(0, 1, [{ offset: 1, timestamp: T0 - 2_000 }, { offset: 2, timestamp: T0 - 1_000 }], 3)); // offset 3: a marker
    const series = async (name: string): Promise<Record<string, number>> => {
      const metric = await metrics.registry.getSingleMetric(name)!.get();
      return Object.fromEntries(metric.values.map((v) => [`${v.labels.group}/${v.labels.topic}/${v.labels.partition}`, v.value]));
    };
    expect(await series('ordo_consumer_lag_records')).toEqual({ 'g/in/0': 2, 'g/in/1': 0 });
    expect(await series('ordo_consumer_lag_seconds')).toEqual({ 'g/in/0': 2, 'g/in/1': 0 });
    lag.committed(0, '3');
    now += 500;
    expect(await series('ordo_consumer_lag_records')).toEqual({ 'g/in/0': 0, 'g/in/1': 0 });
    expect(await series('ordo_consumer_lag_seconds')).toEqual({ 'g/in/0': 0, 'g/in/1': 0 });
    expect(calls.refreshes).toBe(1); // scrapes read the cache; the refresh runs on its interval

    lag.assign([1, 2]); // a rebalance: 0 is someone else's now
    const text = await metrics.registry.metrics();
    expect(text).toContain('ordo_consumer_lag_records{group="g",topic="in",partition="2"} 7');
    expect(text).not.toContain('partition="0"');

    await lag.stop();
    expect(await series('ordo_consumer_lag_records')).toEqual({});
    expect(await series('ordo_consumer_lag_seconds')).toEqual({});
  });
});
