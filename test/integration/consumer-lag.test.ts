import { afterAll, describe, expect, it } from 'vitest';
import type { Kafka, Message } from 'kafkajs';
import type { TaskProcessor, ProcessResult } from '../../src/engine/task-processor.js';
import { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import type { SourceRecord } from '../../src/model/records.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { sleep } from '../support/process.js';
import { testConfig } from '../support/worker.js';

const kafka = testKafka('ordo-lag-test');
const prefixes: string[] = [];
const REFRESH_MS = 1_000;

function newPrefix(): string {
  const prefix = uniqueName('lag');
  prefixes.push(prefix);
  return prefix;
}

/** Holds every batch in `prepare` while closed (so records stay uncommitted); notes who waits. */
class Gate {
  private open = true;
  private waiters: (() => void)[] = [];
  readonly waiting = new Set<number>();

  close(): void {
    this.open = false;
  }

  release(): void {
    this.open = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  async pass(partition: number): Promise<void> {
    if (this.open) return;
    this.waiting.add(partition);
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.waiting.delete(partition);
  }
}

/** Copies each input record to `output`: the smallest exactly-once task there is. */
function relay(output: string, gate: Gate): (topic: string, partition: number) => TaskProcessor {
  return (_topic, partition) => ({
    stores: [],
    onRestored: () => undefined,
    prepare: () => gate.pass(partition),
    process: (records: readonly SourceRecord[]): ProcessResult => ({
      outputs: records.map((r) => ({ topic: output, key: r.key, value: r.value, headers: {} })),
      report: { deadLetters: [] },
    }),
  });
}

function startWorker(prefix: string, gate = new Gate()): { worker: Worker; metrics: OrdoMetrics; gate: Gate } {
  const config = testConfig(prefix, { ORDO_REBALANCE_TIMEOUT_MS: '10000' });
  const metrics = new OrdoMetrics();
  const worker = new Worker({
    ...config,
    kafka,
    inputTopic: `${prefix}-in`,
    outputTopics: [`${prefix}-out`],
    storeNames: [],
    processorFactory: relay(`${prefix}-out`, gate),
    lagRefreshMs: REFRESH_MS,
    logger: noopLogger,
    metrics,
  });
  return { worker, metrics, gate };
}

interface Lag {
  records: number;
  seconds: number;
}

/** One scrape of both gauges (asked together, as Prometheus does), by partition. */
async function scrape(metrics: OrdoMetrics, group: string, topic: string): Promise<Map<number, Lag>> {
  const [records, seconds] = await Promise.all([
    metrics.registry.getSingleMetric('ordo_consumer_lag_records')!.get(),
    metrics.registry.getSingleMetric('ordo_consumer_lag_seconds')!.get(),
  ]);
  const out = new Map<number, Lag>();
  for (const v of records.values) {
    expect(v.labels).toMatchObject({ group, topic });
    out.set(Number(v.labels.partition), { records: v.value, seconds: NaN });
  }
  for (const v of seconds.values) {
    const lag = out.get(Number(v.labels.partition));
    expect(lag).toBeDefined();
    lag!.seconds = v.value;
  }
  expect(seconds.values).toHaveLength(records.values.length);
  return out;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The broker's own numbers: last stable offset and the group's committed offset (-1: none), by partition. */
async function brokerOffsets(topic: string, group: string): Promise<Map<number, { end: number; low: number; committed: number }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [ends, groups] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: group, topics: [topic] })]);
    const committed = new Map((groups[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    return new Map(ends.map((e) => [e.partition, { end: Number(e.high), low: Number(e.low), committed: committed.get(e.partition) ?? -1 }]));
  } finally {
    await admin.disconnect();
  }
}

async function producePlain(topic: string, messages: Message[]): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages, acks: -1 });
  await producer.disconnect();
}

/** One transaction per entry, committed or aborted: every one leaves a marker in the log. */
async function produceTransactions(k: Kafka, topic: string, transactions: { messages: Message[]; commit: boolean }[]): Promise<void> {
  const producer = k.producer({ transactionalId: `${topic}-upstream`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (const { messages, commit } of transactions) {
    const tx = await producer.transaction();
    await tx.send({ topic, messages });
    if (commit) await tx.commit();
    else await tx.abort();
  }
  await producer.disconnect();
}

function records(n: number, partition: number, timestamp: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition, timestamp: String(timestamp + i) }));
}

describe('consumer lag gauges (ordo_consumer_lag_records / _seconds)', () => {
  afterAll(async () => {
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('a caught-up worker on an idle topic reads 0 records and 0 seconds, and stays at 0', async () => {
    const prefix = newPrefix();
    const [input, group] = [`${prefix}-in`, `${prefix}-g`];
    await createTopics(kafka, [input], 2);
    await producePlain(input, records(5, 0, Date.now() - 60_000)); // partition 1 is never written
    const { worker, metrics } = startWorker(prefix);
    try {
      await worker.start();
      await waitFor('partition 0 committed', async () => ((await brokerOffsets(input, group)).get(0)?.committed === 5 ? true : undefined));
      const started = Date.now();
      let scrapes = 0;
      while (Date.now() - started < 6 * REFRESH_MS) {
        const lag = await scrape(metrics, group, input);
        expect(Object.fromEntries(lag)).toEqual({ 0: { records: 0, seconds: 0 }, 1: { records: 0, seconds: 0 } });
        scrapes += 1;
        await sleep(500);
      }
      expect(scrapes).toBeGreaterThanOrEqual(8);
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('reads 0 when caught up on a topic written by a transactional producer (the log ends with a marker)', async () => {
    const prefix = newPrefix();
    const [input, group] = [`${prefix}-in`, `${prefix}-g`];
    await createTopics(kafka, [input], 1);
    const now = Date.now();
    await produceTransactions(kafka, input, [
      { messages: records(5, 0, now), commit: true },
      { messages: records(3, 0, now), commit: false },
      { messages: records(2, 0, now), commit: true },
    ]);
    const { worker, metrics } = startWorker(prefix);
    try {
      await worker.start();
      // 0-4 data, 5 commit marker, 6-8 aborted, 9 abort marker, 10-11 data, 12 commit marker.
      const broker = await waitFor('the 7 committed records processed', async () => {
        const offsets = (await brokerOffsets(input, group)).get(0);
        return offsets?.committed === 12 ? offsets : undefined;
      });
      expect(broker.end - broker.committed).toBe(1); // what end-minus-committed exporters report forever
      const started = Date.now();
      while (Date.now() - started < 4 * REFRESH_MS) {
        expect(Object.fromEntries(await scrape(metrics, group, input))).toEqual({ 0: { records: 0, seconds: 0 } });
        await sleep(500);
      }

      // An aborted transaction alone (13-15 aborted, 16 abort marker): kafkajs never hands
      // such a fetch to eachBatch, and the group offset stays at 12, 5 behind the end.
      await produceTransactions(kafka, input, [{ messages: records(3, 0, Date.now()), commit: false }]);
      await waitFor('the abort marker on the broker', async () => ((await brokerOffsets(input, group)).get(0)?.end === 17 ? true : undefined));
      await sleep(2 * REFRESH_MS);
      expect((await brokerOffsets(input, group)).get(0)).toMatchObject({ end: 17, committed: 12 });
      expect(Object.fromEntries(await scrape(metrics, group, input))).toEqual({ 0: { records: 0, seconds: 0 } });
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('with a backlog: the exact number of unprocessed records (markers excluded) and the age of the oldest', async () => {
    const prefix = newPrefix();
    const [input, group] = [`${prefix}-in`, `${prefix}-g`];
    await createTopics(kafka, [input], 2);
    const oldest = Date.now() - 30_000;
    await producePlain(input, records(30, 0, oldest));
    // Partition 1: three transactions of four records: 12 records in 15 offsets.
    await produceTransactions(kafka, input, [0, 1, 2].map((i) => ({ messages: records(4, 1, oldest + 10_000 + i * 10), commit: true })));

    const gate = new Gate();
    gate.close();
    const { worker, metrics } = startWorker(prefix, gate);
    try {
      await worker.start();
      await waitFor('both partitions holding their first batch', () => Promise.resolve(gate.waiting.size === 2 ? true : undefined));
      const before = Date.now();
      const lag = await scrape(metrics, group, input);
      const after = Date.now();
      const broker = await brokerOffsets(input, group);
      expect(broker.get(0)).toEqual({ end: 30, low: 0, committed: -1 });
      expect(broker.get(1)).toEqual({ end: 15, low: 0, committed: -1 });
      expect(lag.get(0)?.records).toBe(30); // end - (no committed offset: the log start)
      expect(lag.get(1)?.records).toBe(12); // end - log start = 15, minus the 3 commit markers
      for (const [partition, ts] of [[0, oldest], [1, oldest + 10_000]] as const) {
        const seconds = lag.get(partition)!.seconds;
        expect(seconds).toBeGreaterThanOrEqual((before - ts) / 1000);
        expect(seconds).toBeLessThanOrEqual((after - ts) / 1000);
      }

      gate.release();
      await waitFor('caught up', async () => {
        const l = await scrape(metrics, group, input);
        return l.get(0)?.records === 0 && l.get(1)?.records === 0 ? true : undefined;
      });
      expect(Object.fromEntries(await scrape(metrics, group, input))).toEqual({ 0: { records: 0, seconds: 0 }, 1: { records: 0, seconds: 0 } });
      const done = await brokerOffsets(input, group);
      expect(done.get(0)).toMatchObject({ end: 30, committed: 30 });
      expect(done.get(1)).toMatchObject({ end: 15, committed: 14 }); // before the last marker
    } finally {
      gate.release();
      await worker.stop();
    }
  }, 60_000);

  it('each partition is reported by its owner only: series move on a rebalance and disappear on stop', async () => {
    const prefix = newPrefix();
    const [input, group] = [`${prefix}-in`, `${prefix}-g`];
    await createTopics(kafka, [input], 2);
    const a = startWorker(prefix);
    const b = startWorker(prefix);
    try {
      await a.worker.start();
      await waitFor('worker A owning both partitions', async () => ((await scrape(a.metrics, group, input)).size === 2 ? true : undefined));

      await b.worker.start();
      const [ownedByA, ownedByB] = await waitFor('the partitions split between A and B', async () => {
        const [la, lb] = [await scrape(a.metrics, group, input), await scrape(b.metrics, group, input)];
        return la.size === 1 && lb.size === 1 ? [[...la.keys()], [...lb.keys()]] : undefined;
      });
      expect([...ownedByA, ...ownedByB].sort()).toEqual([0, 1]);

      await b.worker.stop();
      expect((await scrape(b.metrics, group, input)).size).toBe(0);
      await waitFor('worker A owning both partitions again', async () => ((await scrape(a.metrics, group, input)).size === 2 ? true : undefined));

      await a.worker.stop();
      expect((await scrape(a.metrics, group, input)).size).toBe(0);
      expect(await a.metrics.registry.metrics()).not.toMatch(/^ordo_consumer_lag_(records|seconds)\{/m);
    } finally {
      await b.worker.stop();
      await a.worker.stop();
    }
  }, 60_000);
});
