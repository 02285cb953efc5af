import { describe, expect, it } from 'vitest';
import { runDeliver } from '../../bench/deliver.js';
import { loadParams } from '../../bench/params.js';
import { BROKERS, REGISTRY_URL, testKafka, uniqueName } from '../support/cluster.js';

/**
 * The deliver bench phase (bench/deliver.ts) with a small N against the real broker and an
 * in-process deliver server: every reader gets every record once and in order (the clients
 * check the cursors), the latency readers miss nothing, the figures are numbers, and the
 * phase leaves no topic or consumer group behind.
 */
describe('the deliver bench phase', () => {
  it('completes with every record once per reader, numbers for every figure, and no topic or group left', async () => {
    const params = loadParams({
      KAFKA_BROKERS: BROKERS.join(','),
      SCHEMA_REGISTRY_URL: REGISTRY_URL,
      BENCH_PARTITIONS: '3',
      BENCH_DELIVER_EVENTS: '2000',
      BENCH_DELIVER_CLIENTS: '10',
      BENCH_LATENCY_RATE: '200',
      BENCH_LATENCY_SECONDS: '1',
      BENCH_LATENCY_WARMUP_SECONDS: '1',
    });
    const runPrefix = uniqueName('bench-deliver');
    const lines: string[] = [];
    const result = await runDeliver(params, runPrefix, (line) => lines.push(line));

    expect(result.error, lines.join('\n')).toBeUndefined();
    expect(result.complete, lines.join('\n')).toBe(true);
    for (const reader of [result.consumer!, result.sse!, result.sseFromTail!]) {
      expect(reader.error).toBeUndefined();
      expect(reader.records).toBe(2000);
      expect(reader.eventsPerSecond).toBeGreaterThan(0);
      expect(reader.startupMs).toBeGreaterThanOrEqual(0);
    }
    expect(result.sseVsConsumer).toBeGreaterThan(0);
    expect(result.filtered).toMatchObject({ clients: 10, records: 2000, failed: 0 });
    expect(result.filtered!.eventsPerSecond).toBeGreaterThan(0);
    expect(result.filtered!.clientDoneMs?.count).toBe(10);
    expect(result.latency).toMatchObject({ sent: 200, sseMissing: 0, consumerMissing: 0, sseDuplicates: 0 });
    expect(result.latency!.sseMs?.count).toBe(200);
    expect(result.latency!.consumerMs?.count).toBe(200);

    const admin = testKafka('ordo-test-bench-deliver').admin();
    await admin.connect();
    try {
      expect((await admin.listTopics()).filter((t) => t.startsWith(runPrefix))).toEqual([]);
      expect((await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(runPrefix))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  });
});
