import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../../src/clock/service-time.js';
import type { OrdoConfig } from '../../src/config/config.js';
import type { MergeWorker } from '../../src/engine/merge-worker.js';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { createMergeWorker } from '../../src/roles/merge.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import {
  createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder,
  type ReadRecord, type TestMessage,
} from '../support/cluster.js';
import { expectExactlyOnce, expectGlobalOrder } from '../support/exactly-once.js';
import { sleep } from '../support/process.js';
import { startPipeline, testConfig } from '../support/worker.js';

const prefix = uniqueName('it-merge');
const kafka = testKafka();

function expectTotalOrder(records: ReadRecord[]): void {
  const list = expectGlobalOrder(records);
  expect(list.filter((r) => header(r, 'ordo-late') !== undefined)).toEqual([]);
}

describe('role merge through the real broker', () => {
  let config: OrdoConfig;
  let producer: Producer;
  let encode: (e: UsageEvent) => Buffer;
  let pipeline: Worker;
  const merges: MergeWorker[] = [];
  const mergeMetrics: OrdoMetrics[] = [];
  const sent: string[] = [];
  const upstream = [new HybridClock({ node: 'svc-a' }), new HybridClock({ node: 'svc-b' })];

  /** Events to partitions 0 and 1 only: partition 2 stays quiet, its progress comes from the watermarks topic. */
  function wave(name: string, n: number): TestMessage[] {
    return Array.from({ length: n }, (_, i) => {
      const id = `${name}-${i}`;
      sent.push(id);
      const withContext = i % 2 === 0;
      const clock = upstream[i % 2]!;
      const event: UsageEvent = { id, source: 'svc', type: 'api.request', subject: `cust-${i % 7}`, time: Date.now(), value: '1', dimensions: {} };
      return {
        key: event.subject,
        value: encode(event),
        partition: i % 2,
        headers: withContext ? { 'service-time': formatServiceTime(clock.now()), 'service-node': clock.node } : {},
      };
    });
  }

  function startMerge(): MergeWorker {
    const metrics = new OrdoMetrics();
    mergeMetrics.push(metrics);
    const merge = createMergeWorker(config, { logger: noopLogger, metrics });
    merges.push(merge);
    return merge;
  }

  beforeAll(async () => {
    config = testConfig(prefix, { ORDO_REORDER_WINDOW_MS: '300', ORDO_WATERMARK_INTERVAL_MS: '300' });
    await createTopics(kafka, [config.topics.input], 3);
    encode = await usageEventEncoder(config.topics.input);
    producer = kafka.producer();
    await producer.connect();
    pipeline = (await startPipeline(config)).worker;
  });

  afterAll(async () => {
    await Promise.all(merges.map((m) => m.stop()));
    await pipeline?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('writes every event once to the one-partition global topic in total order, though one partition is quiet', async () => {
    await startMerge().start();
    for (let i = 0; i < 4; i++) {
      await produce(producer, config.topics.input, wave(`a${i}`, 150));
      await sleep(100);
    }
    const records = await readAll(kafka, config.topics.global, sent.length, { timeoutMs: 60_000 });
    expect(new Set(records.map((r) => r.partition))).toEqual(new Set([0]));
    expectExactlyOnce(records, sent);
    expectTotalOrder(records);
    // Caught up on the (transactional) ordered topic: lag 0 on every partition, markers not counted.
    const deadline = Date.now() + 20_000;
    let lag: { partition?: string | number; value: number }[] = [];
    while (Date.now() < deadline) {
      lag = (await mergeMetrics[0]!.registry.getSingleMetric('ordo_consumer_lag_records')!.get()).values.map((v) => ({ partition: v.labels.partition, value: v.value }));
      if (lag.length === 3 && lag.every((v) => v.value === 0)) break;
      await sleep(500);
    }
    expect(lag.map((v) => v.value)).toEqual([0, 0, 0]);
  });

  it('continues exactly once after the merge restarts mid-stream', async () => {
    const first = merges[0]!;
    await produce(producer, config.topics.input, wave('b', 300));
    await sleep(300);
    await first.stop();
    await produce(producer, config.topics.input, wave('c', 300));
    await startMerge().start();
    await produce(producer, config.topics.input, wave('d', 300));
    const records = await readAll(kafka, config.topics.global, sent.length, { timeoutMs: 90_000 });
    expectExactlyOnce(records, sent);
    expectTotalOrder(records);
    expect(decodeEvent(records[0]!.value).id).toBeDefined();
  });
});
