import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import { DeletionSet, newDeletion } from '../../src/deletion/deletions.js';
import { RETENTION_HEADER, RetentionSweeper, progressKey, windowEndOf } from '../../src/retention/retention-sweep.js';
import { aggregateKey } from '../../src/usage/aggregation.js';
import { type RetentionPolicy, expiresAt } from '../../src/usage/retention.js';
import { type WindowSize, windowEnd, windowStart } from '../../src/usage/windows.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2026, 2, 1);
const SIZES: WindowSize[] = ['MINUTE', 'HOUR', 'DAY'];
const SUBJECTS = ['acme', 'globex', 'initech'];

interface LogRecord {
  key: string;
  value: 'data' | 'deleted' | 'expired';
  ts: number;
}

/** One partition of the aggregates topic: appended records, read between the offsets of two timestamps as the broker answers them. */
class Partition {
  readonly log: LogRecord[] = [];
  readonly reads: { fromMs: number; toMs: number; records: number }[] = [];

  private offsetAt(ms: number): number {
    const i = this.log.findIndex((r) => r.ts >= ms);
    return i < 0 ? this.log.length : i;
  }

  read = async (_partition: number, range: { fromMs: number; toMs: number }, visit: (key: string, value: Buffer | null, timestamp: number) => void): Promise<void> => {
    const from = range.fromMs <= 0 ? 0 : this.offsetAt(range.fromMs);
    const to = this.offsetAt(range.toMs); // the end as it is now: later records are not read
    await Promise.resolve();
    for (const r of this.log.slice(from, to)) visit(r.key, r.value === 'data' ? Buffer.from('x') : null, r.ts);
    this.reads.push({ ...range, records: Math.max(0, to - from) });
  };
}

type Action = { kind: 'batch'; advance: number; events: { subject: number; offset: number; lag: number }[] } | { kind: 'tick'; advance: number } | { kind: 'crash'; staged: boolean; policy?: RetentionPolicy } | { kind: 'delete'; subject: number };

interface Scenario {
  lateness: number;
  maxFuture: number;
  policy: RetentionPolicy;
  batch: number;
  actions: Action[];
}

const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record(
  {
    MINUTE: fc.oneof(fc.integer({ min: 1, max: 10 * MINUTE }), fc.integer({ min: 1, max: 3 * HOUR }), fc.constant(null)),
    HOUR: fc.oneof(fc.integer({ min: 1, max: 10 * MINUTE }), fc.integer({ min: 1, max: 6 * HOUR }), fc.constant(null)),
    DAY: fc.oneof(fc.integer({ min: 1, max: 6 * HOUR }), fc.constant(null)),
  },
  { requiredKeys: [] },
);

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  lateness: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 * HOUR })),
  maxFuture: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 * MINUTE })),
  policy: policyArb,
  batch: fc.integer({ min: 1, max: 12 }),
  actions: fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('batch' as const),
          advance: fc.oneof(fc.integer({ min: 0, max: 5 * SECOND }), fc.integer({ min: 0, max: 2 * HOUR })),
          events: fc.array(fc.record({ subject: fc.integer({ min: 0, max: 2 }), offset: fc.integer({ min: -4 * HOUR, max: 40 * MINUTE }), lag: fc.integer({ min: 0, max: 30 * SECOND }) }), { minLength: 1, maxLength: 6 }),
        }),
      },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), advance: fc.oneof(fc.integer({ min: 0, max: 5 * SECOND }), fc.integer({ min: 0, max: 6 * HOUR })) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), staged: fc.boolean(), policy: policyArb }, { requiredKeys: ['kind', 'staged'] }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), subject: fc.integer({ min: 0, max: 2 }) }) },
    ),
    { minLength: 1, maxLength: 60 },
  ),
});

/** Lets the background reads finish. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A task's partition under random events, clocks, crashes and deletions: events are accepted as the
 * pipeline accepts them (not more than the lateness after, nor the max future before, their time), a
 * batch writes each touched aggregate with its stamp as the record timestamp, and every step's
 * tombstones and progress commit together (or, in a crash, not at all).
 */
async function run(s: Scenario): Promise<{ partition: Partition; now: number; expiry: (key: string) => number; tombstonedAt: Map<string, number[]>; deletedAt: Map<string, number> }> {
  const partition = new Partition();
  const meta = new InMemoryStore<string>('meta', stringCodec);
  const view = { set: new DeletionSet('/'), version: 0 };
  let policy = s.policy;
  const make = (): RetentionSweeper =>
    new RetentionSweeper({ policy, allowedLatenessMs: s.lateness, maxFutureMs: s.maxFuture, maxSkewMs: 0, sweepBatch: s.batch, aggregatesTopic: 'aggregates', read: partition.read, deletions: view });
  let sweeper = make();
  let now = T0;
  const tombstonedAt = new Map<string, number[]>();
  const deletedAt = new Map<string, number>();
  const expiry = (key: string): number => {
    const [, , , size, start] = JSON.parse(key) as [string, string, unknown, WindowSize, string];
    return expiresAt(size, windowEnd(Date.parse(start), size), policy, s.lateness);
  };
  const step = (horizon: number, commit = true): void => {
    const result = sweeper.step(0, meta, { horizon, now });
    if (!commit) {
      meta.rollback();
      return;
    }
    meta.commit();
    for (const o of result?.outputs ?? []) {
      expect(o.headers[RETENTION_HEADER]).toBe('expired');
      const key = o.key as string;
      expect(now).toBeGreaterThanOrEqual(expiry(key)); // never early (under the policy in force)
      partition.log.push({ key, value: 'expired', ts: now });
      tombstonedAt.set(key, [...(tombstonedAt.get(key) ?? []), now]);
    }
  };
  for (const action of s.actions) {
    const horizon = now;
    if (action.kind === 'batch' || action.kind === 'tick') now += action.advance;
    if (action.kind === 'batch') {
      const touched = new Set<string>();
      for (const e of action.events) {
        // Stamped during the batch (after its horizon, up to 30 s before its record is written with the batch's latest stamp).
        const seenAt = now - Math.min(e.lag, Math.max(0, now - horizon - 1));
        const time = seenAt + e.offset;
        if (time < seenAt - s.lateness || time > seenAt + s.maxFuture) continue; // late, or too far ahead
        const subject = SUBJECTS[e.subject]!;
        if (view.set.match(subject) !== undefined) continue; // dead-lettered (subject-deleted)
        for (const size of SIZES) touched.add(aggregateKey({ meter: 'spend', subject, groupBy: {}, windowSize: size, windowStart: windowStart(time, size) }));
      }
      for (const key of touched) partition.log.push({ key, value: 'data', ts: now });
    }
    if (action.kind === 'crash') {
      if (action.staged) step(now, false); // a step whose transaction never commits
      if (action.policy !== undefined) policy = action.policy; // restarted with another ORDO_WINDOW_RETENTION
      sweeper = make();
      continue;
    }
    if (action.kind === 'delete') {
      // The deletion sweep tombstones the subject's live keys (its own tombstones), after its request.
      const subject = SUBJECTS[action.subject]!;
      if (view.set.match(subject) !== undefined) continue;
      const { key, value } = newDeletion(subject, false, '/', now, 'admin');
      view.set.apply(key, value);
      view.version += 1;
      const live = new Map<string, boolean>();
      for (const r of partition.log) if ((JSON.parse(r.key) as string[])[1] === subject) live.set(r.key, r.value === 'data');
      for (const [k, isLive] of live) {
        if (!isLive) continue;
        partition.log.push({ key: k, value: 'deleted', ts: now });
        deletedAt.set(k, now);
      }
      continue;
    }
    step(horizon);
    await settle();
  }
  // Time goes on past every expiry, with idle ticks just before and at each, until the sweep has nothing left.
  const keys = new Set(partition.log.map((r) => r.key));
  const expiries = [...new Set([...keys].map(expiry))].filter((x) => Number.isFinite(x) && x > now).sort((a, b) => a - b);
  const tickAt = async (at: number): Promise<void> => {
    const horizon = now;
    now = Math.max(now, at);
    step(horizon);
    await settle();
    step(now);
  };
  for (const x of expiries) {
    await tickAt(x - 1);
    await tickAt(x);
  }
  for (let i = 0; i < 100; i++) await tickAt(now + HOUR);
  return { partition, now, expiry, tombstonedAt, deletedAt };
}

describe('RetentionSweeper', () => {
  it('tombstones every expired key exactly once, never before it expires, under any lateness, clocks, batching, crashes, retention changes and deletions', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const { partition, now, expiry, tombstonedAt, deletedAt } = await run(s);
        const dataKeys = new Set(partition.log.filter((r) => r.value === 'data').map((r) => r.key));
        for (const [key, times] of tombstonedAt) {
          expect(times).toHaveLength(1); // exactly once
          expect(dataKeys.has(key)).toBe(true);
          // Nothing counts in the window after its tombstone.
          const at = partition.log.findIndex((r) => r.key === key && r.value === 'expired');
          expect(partition.log.slice(at + 1).filter((r) => r.key === key && r.value === 'data')).toEqual([]);
        }
        for (const key of dataKeys) {
          if (expiry(key) > now) continue; // not expired under the last policy (an earlier one may have expired it)
          const lastData = partition.log.reduce((ts, r) => (r.key === key && r.value === 'data' ? r.ts : ts), Number.NEGATIVE_INFINITY);
          const deleted = deletedAt.get(key);
          // A key deleted after its last record is the deletion sweep's: one tombstone either way.
          if (deleted !== undefined && deleted >= lastData) expect(tombstonedAt.has(key)).toBe(false);
          else expect(tombstonedAt.get(key)).toHaveLength(1);
        }
      }),
      { numRuns: 150 },
    );
  }, 300_000);

  it('keeps its progress in the meta store per size, and writes no more than the batch per transaction', async () => {
    const partition = new Partition();
    const meta = new InMemoryStore<string>('meta', stringCodec);
    const policy: RetentionPolicy = { MINUTE: MINUTE };
    const sweeper = new RetentionSweeper({ policy, allowedLatenessMs: 0, maxFutureMs: 0, maxSkewMs: 0, sweepBatch: 3, aggregatesTopic: 'aggregates', read: partition.read });
    for (let m = 0; m < 10; m++) partition.log.push({ key: aggregateKey({ meter: 'spend', subject: 'acme', groupBy: {}, windowSize: 'MINUTE', windowStart: T0 + m * MINUTE }), value: 'data', ts: T0 + m * MINUTE });
    const now = T0 + 20 * MINUTE;
    expect(sweeper.step(0, meta, { horizon: now, now })).toBeUndefined(); // the read starts
    await settle();
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const result = sweeper.step(0, meta, { horizon: now, now });
      meta.commit();
      sizes.push(result?.outputs.length ?? 0);
    }
    expect(sizes).toEqual([3, 3, 3, 1, 0, 0]);
    expect(JSON.parse(meta.get(progressKey('MINUTE'))!)).toMatchObject({ end: T0 + 10 * MINUTE });
    expect(partition.reads.map((r) => r.records)).toEqual([10]);
    expect(windowEndOf(partition.log[0]!.key, 'MINUTE')).toBe(T0 + MINUTE);
    expect(windowEndOf(partition.log[0]!.key, 'HOUR')).toBeUndefined();
  });

  it('finds a window whose last record came a batch spread after its stamp (the record timestamp is the batch\'s latest stamp)', async () => {
    const partition = new Partition();
    const meta = new InMemoryStore<string>('meta', stringCodec);
    // An hour of retention, no lateness: each round reaches 3 minutes past its horizon (a minute window, two spreads).
    const sweeper = new RetentionSweeper({ policy: { MINUTE: HOUR }, allowedLatenessMs: 0, maxFutureMs: 0, maxSkewMs: 0, sweepBatch: 10, aggregatesTopic: 'aggregates', read: partition.read });
    const key = aggregateKey({ meter: 'spend', subject: 'acme', groupBy: {}, windowSize: 'MINUTE', windowStart: T0 });
    // The event was stamped in the window's last millisecond; its batch wrote the record 30 s later.
    partition.log.push({ key, value: 'data', ts: T0 + MINUTE + 29_999 });
    const tombstones: number[] = [];
    for (let now = T0 + 2 * MINUTE; now <= T0 + 70 * MINUTE; now += 30 * SECOND) {
      for (const _ of [1, 2]) {
        const result = sweeper.step(0, meta, { horizon: now, now });
        meta.commit();
        if ((result?.outputs.length ?? 0) > 0) tombstones.push(now);
        await settle();
      }
    }
    expect(tombstones).toEqual([T0 + MINUTE + HOUR]); // at its expiry (the steps fall on it)
  });
});
