import { afterAll, describe, expect, it } from 'vitest';
import { countWrites } from '../../bench/writes.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';

/**
 * bench/writes.ts counts records, not offsets: over the real broker, topics holding
 * committed and aborted transactions (so markers and aborted records take offsets) and
 * plain records give exactly the committed records, classified outputs vs `*-changelog`.
 */
const kafka = testKafka('ordo-test-bench-writes');
const prefix = uniqueName('bench-writes');

afterAll(async () => {
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('countWrites', () => {
  it('counts committed records per topic, not markers or aborted records, and splits outputs from state', async () => {
    const topic = (name: string): string => `${prefix}-${name}`;
    await createTopics(kafka, [topic('in'), topic('ordered'), topic('g-dedupe-changelog'), topic('late')], 3);
    const records = (n: number, tag: string): { key: string; value: string; partition: number }[] =>
      Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: `${tag}-${i}`, partition: i % 3 }));

    const tx = kafka.producer({ transactionalId: `${prefix}-tx`, idempotent: true, maxInFlightRequests: 1 });
    const plain = kafka.producer();
    await Promise.all([tx.connect(), plain.connect()]);
    try {
      await plain.send({ topic: topic('in'), messages: records(10, 'in') });
      for (const [n, commit] of [[7, true], [4, false], [5, true]] as const) {
        const t = await tx.transaction();
        await t.send({ topic: topic('ordered'), messages: records(n, `o${n}`) });
        if (n === 5) await t.send({ topic: topic('g-dedupe-changelog'), messages: records(3, 'd') });
        await (commit ? t.commit() : t.abort());
      }
      await plain.send({ topic: topic('g-dedupe-changelog'), messages: records(2, 'p') });
    } finally {
      await Promise.all([tx.disconnect(), plain.disconnect()]);
    }

    const admin = kafka.admin();
    await admin.connect();
    const orderedOffsets = (await admin.fetchTopicOffsets(topic('ordered'))).reduce((a, o) => a + Number(o.high), 0);
    await admin.disconnect();
    // The log holds the aborted records and a marker per transaction and partition: offsets are no count.
    expect(orderedOffsets).toBeGreaterThan(7 + 4 + 5);

    const writes = await countWrites(kafka, prefix, [topic('in')], 10, 60_000);
    expect(writes).toMatchObject({ events: 10, complete: true, outputs: 12, state: 5, outputsPerEvent: 1.2, statePerEvent: 0.5 });
    expect(writes.topics).toEqual([
      { name: 'g-dedupe-changelog', class: 'state', records: 5, perEvent: 0.5 },
      { name: 'late', class: 'outputs', records: 0, perEvent: 0 },
      { name: 'ordered', class: 'outputs', records: 12, perEvent: 1.2 },
    ]);
  });
});
