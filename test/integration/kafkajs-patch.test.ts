// The patched kafkajs (patches/, docs/kafkajs-patch.md) through the real broker, driven by
// the engine's own transaction code: what a read_committed reader gets is every record, intact
// (key, value, headers), in order per partition, for a transaction over several topics and
// partitions that is sent in several requests, and for many small transactions back to back.
// The back-to-back transactions start while the coordinator is still completing the previous
// one (CONCURRENT_TRANSACTIONS): the patch retries that request alone, upstream logged it at
// ERROR (warn in Ordo's log) and went through a metadata refresh and a 100 ms+ backoff.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { commitTransaction, MAX_REQUEST_BYTES } from '../../src/engine/transaction.js';
import { createKafka } from '../../src/kafka/client.js';
import type { OutputRecord } from '../../src/model/records.js';
import { BROKERS, createTopics, deleteTopicsWithPrefix, header, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { recordingLogger, type RecordedLine } from '../support/logs.js';

const prefix = uniqueName('it-kpatch');
const topics = ['a', 'b', 'c'].map((t) => `${prefix}-${t}`);
const PARTITIONS = 3;
const admin = testKafka();

const logged: RecordedLine[] = [];

let producer: Producer;

beforeAll(async () => {
  await createTopics(admin, topics, PARTITIONS);
  const kafka = createKafka({ brokers: BROKERS, clientId: `${prefix}-producer`, logger: recordingLogger(logged) });
  // As the engine's task producer (src/engine/task.ts).
  producer = kafka.producer({ transactionalId: `${prefix}-tx`, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 30_000 });
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await deleteTopicsWithPrefix(admin, prefix);
});

/** Record `n` of the run: to topic n mod 3, partition (n / 3) mod 3, with its number in a header. */
function record(n: number, valueBytes: number): OutputRecord {
  const value = Buffer.alloc(valueBytes, n % 251);
  value.writeUInt32BE(n, 0);
  return {
    topic: topics[n % topics.length]!,
    partition: Math.floor(n / topics.length) % PARTITIONS,
    key: n % 7 === 0 ? null : `key-${n % 1000}`,
    value,
    headers: { n: String(n), 'service-time': (0x1900000000000n + BigInt(n)).toString(16).padStart(16, '0'), bin: Buffer.from([n & 0xff, 0, 0xff]) },
  };
}

describe('the patched kafkajs producer', () => {
  it('delivers every record intact and in order per partition, in one big transaction and many small ones', async () => {
    const offsets = { groupId: `${prefix}-g`, positions: [] };
    // One transaction bigger than a request (the engine splits it into several sendBatch calls).
    const big = Array.from({ length: 6_000 }, (_, n) => record(n, 300));
    expect(big.reduce((bytes, r) => bytes + (r.value as Buffer).length, 0)).toBeGreaterThan(2 * MAX_REQUEST_BYTES);
    await commitTransaction(producer, { outputs: big, offsets, partition: 0 });
    // Then small transactions back to back, as the pipeline writes at a low input rate.
    let n = big.length;
    const small = 60;
    for (let t = 0; t < small; t++) {
      const outputs = Array.from({ length: 9 }, () => record(n++, 40));
      await commitTransaction(producer, { outputs, offsets, partition: 0 });
    }
    const total = n;

    const received = (await Promise.all(topics.map((topic) => readAll(admin, topic, Math.ceil(total / topics.length))))).flat();
    expect(received).toHaveLength(total);
    const seen = new Set<number>();
    const lastPerPartition = new Map<string, number>();
    for (const m of received) {
      const number = Number(header(m, 'n'));
      const expected = record(number, number < big.length ? 300 : 40);
      expect(m.topic).toBe(expected.topic);
      expect(m.partition).toBe(expected.partition);
      expect(m.key === null ? null : m.key.toString()).toBe(expected.key);
      expect(m.value?.equals(expected.value as Buffer)).toBe(true);
      expect(header(m, 'service-time')).toBe(expected.headers['service-time']);
      expect(m.headers?.bin).toEqual(expected.headers.bin);
      const where = `${m.topic}/${m.partition}`;
      expect(number, `order in ${where}`).toBeGreaterThan(lastPerPartition.get(where) ?? -1);
      lastPerPartition.set(where, number);
      seen.add(number);
    }
    expect(seen.size).toBe(total);
    expect(lastPerPartition.size).toBe(topics.length * PARTITIONS);

    // No refused AddPartitionsToTxn reached sendMessages' retrier (kafkajs' ERROR "Failed to
    // send messages: ... concurrent operation ...", a warning in Ordo's log).
    const concurrent = logged.filter((l) => /concurrent operation/i.test(l.msg));
    expect(concurrent.map((l) => `${l.level}: ${l.msg}`)).toEqual([]);
  });
});
