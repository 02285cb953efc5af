import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import type { Worker } from '../../src/engine/worker.js';
import type { OrdoMetrics } from '../../src/metrics/metrics.js';
import { RETENTION_HEADER } from '../../src/retention/retention-sweep.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { expiresAt, parseRetention } from '../../src/usage/retention.js';
import { type WindowSize, windowEnd, windowStart } from '../../src/usage/windows.js';
import { type ReadRecord, createTopics, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { sleep } from '../support/process.js';

const kafka = testKafka();
const prefix = uniqueName('retention');
// Short enough to keep the test quick, long enough that events sent 1-6 s into a minute for the minute before are never late under load.
const LATENESS_MS = 20_000;
const RETENTION = 'MINUTE=1s';
const policy = parseRetention(RETENTION);
let producer: Producer;
let worker: Worker | undefined;

interface Key {
  size: WindowSize;
  start: number;
}
const keyOf = (key: string): Key => {
  const parts = JSON.parse(key) as [string, string, unknown, WindowSize, string];
  return { size: parts[3], start: Date.parse(parts[4]) };
};
const expiry = (key: string): number => {
  const { size, start } = keyOf(key);
  return expiresAt(size, windowEnd(start, size), policy, LATENESS_MS);
};
const isRetentionTombstone = (r: ReadRecord): boolean => r.value === null && header(r, RETENTION_HEADER) === 'expired';

/** Waits until the wall clock is a few seconds into a minute: events of the minute before are then well within the lateness. */
async function earlyInAMinute(): Promise<number> {
  for (;;) {
    const now = Date.now();
    const into = now - windowStart(now, 'MINUTE');
    if (into >= 1_000 && into <= 6_000) return windowStart(now, 'MINUTE');
    await sleep(into < 1_000 ? 1_000 - into : 61_000 - into);
  }
}

/** Every record of the aggregates topic, once at least `tombstones` retention tombstones are on it (or the time is up). */
async function aggregatesWith(topic: string, tombstones: number): Promise<ReadRecord[]> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const records = await readAll(kafka, topic, 1, { timeoutMs: 30_000, settleMs: 1_000 });
    if (records.filter(isRetentionTombstone).length >= tombstones || Date.now() > deadline) return records;
    await sleep(1_000);
  }
}

describe('retention of old windows through the real pipeline', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 2);
  });

  afterAll(async () => {
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('tombstones each expired MINUTE aggregate exactly once, after it is final, in batches, across a restart; HOUR and DAY ones stay', async () => {
    const config = testConfig(prefix, {
      ORDO_METERS_FILE: writeTestMeters(),
      ORDO_WINDOW_RETENTION: RETENTION,
      ORDO_ALLOWED_LATENESS_MS: String(LATENESS_MS),
      ORDO_RETENTION_SWEEP_BATCH: '2',
      ORDO_REORDER_WINDOW_MS: '200',
    });
    const topic = config.topics.aggregates;
    const encode = await usageEventEncoder(config.topics.input);
    let n = 0;
    const subjects = Array.from({ length: 10 }, (_, i) => `customer-${i}`);
    /** Events of every subject in the minute before `minute` (api-spend keeps MINUTE windows). */
    const eventsBefore = (minute: number): { key: string; value: Buffer }[] =>
      subjects.flatMap((subject) =>
        [1, 2].map(() => {
          const e: UsageEvent = { id: `e-${++n}`, source: 'test', type: 'api.request', subject, time: minute - 500 - n, value: String(n), dimensions: { region: 'eu', user: `u${n % 3}` } };
          return { key: subject, value: encode(e) };
        }),
      );

    /** Until the worker has its partitions and processes: an unmetered event through to the ordered topic. */
    let warm = 0;
    const warmUp = async (): Promise<void> => {
      const e: UsageEvent = { id: `warm-${++warm}`, source: 'test', type: 'other.event', subject: 'warm-up', time: Date.now(), value: '1', dimensions: {} };
      await produce(producer, config.topics.input, [{ key: e.subject, value: encode(e) }]);
      await readAll(kafka, config.topics.ordered, warm, { timeoutMs: 120_000, settleMs: 0 });
    };

    // First worker: one minute of events; its MINUTE windows expire 21 s after the minute ends.
    let metrics: OrdoMetrics;
    ({ worker, metrics } = await startPipeline(config));
    await warmUp();
    const first = await earlyInAMinute();
    await produce(producer, config.topics.input, eventsBefore(first));
    let records = await aggregatesWith(topic, subjects.length);
    const firstKeys = new Set(records.filter((r) => r.value !== null && keyOf(r.key!.toString()).size === 'MINUTE').map((r) => r.key!.toString()));
    expect(firstKeys.size).toBe(subjects.length);
    expect((await metrics.retentionTombstones.get()).values.find((v) => v.labels.size === 'MINUTE')?.value).toBe(subjects.length);

    // A restart: the new worker's sweep goes on from the progress its predecessor committed.
    await worker.stop();
    ({ worker, metrics } = await startPipeline(config));
    await warmUp();
    const second = await earlyInAMinute();
    await produce(producer, config.topics.input, eventsBefore(second));
    records = await aggregatesWith(topic, 2 * subjects.length);
    expect((await metrics.retentionTombstones.get()).values.find((v) => v.labels.size === 'MINUTE')?.value).toBe(subjects.length);

    // Exactly once per expired key, never before its expiry, and nothing written to it afterwards.
    const tombstones = new Map<string, ReadRecord[]>();
    for (const r of records.filter(isRetentionTombstone)) tombstones.set(r.key!.toString(), [...(tombstones.get(r.key!.toString()) ?? []), r]);
    const dataKeys = new Set(records.filter((r) => r.value !== null).map((r) => r.key!.toString()));
    const minuteKeys = [...dataKeys].filter((k) => keyOf(k).size === 'MINUTE');
    expect(minuteKeys).toHaveLength(2 * subjects.length);
    for (const key of minuteKeys) {
      const mine = tombstones.get(key) ?? [];
      expect([key, mine.length]).toEqual([key, 1]);
      expect(Number(mine[0]!.timestamp)).toBeGreaterThanOrEqual(expiry(key));
      const after = records.filter((r) => r.partition === mine[0]!.partition && BigInt(r.offset) > BigInt(mine[0]!.offset) && r.key!.toString() === key);
      expect(after).toEqual([]);
    }
    // HOUR, DAY and MONTH windows are kept for ever (not in the policy).
    expect([...tombstones.keys()].filter((k) => keyOf(k).size !== 'MINUTE')).toEqual([]);
    // At most ORDO_RETENTION_SWEEP_BATCH tombstones per transaction: no two batches of three in a row.
    for (const partition of [0, 1]) {
      const ordered = records.filter((r) => r.partition === partition).sort((a, b) => (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
      let run = 0;
      let longest = 0;
      let previous: bigint | undefined;
      for (const r of ordered) {
        // Consecutive offsets within one transaction (its marker takes an offset between transactions).
        run = isRetentionTombstone(r) && previous !== undefined && BigInt(r.offset) === previous + 1n ? run + 1 : isRetentionTombstone(r) ? 1 : 0;
        longest = Math.max(longest, run);
        previous = BigInt(r.offset);
      }
      expect(longest).toBeLessThanOrEqual(2);
    }
  }, 300_000);
});
