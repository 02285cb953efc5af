import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs';
import type { KafkaSecurity } from '../../src/config/security.js';
import { kafkaSecurityOptions } from '../../src/kafka/client.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventSchema, usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';

/** The real local broker and registry that scripts/test.sh (or .ci/run) started. */
export const BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
export const REGISTRY_URL = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A quiet client of the local broker; PLAINTEXT (the super user) unless `security` says otherwise. */
export function testKafka(clientId = 'ordo-test', options: { brokers?: string[]; security?: KafkaSecurity } = {}): Kafka {
  return new Kafka({ brokers: options.brokers ?? BROKERS, clientId, logLevel: logLevel.NOTHING, retry: { retries: 8 }, ...kafkaSecurityOptions(options.security) });
}

/**
 * Creates the topics and waits until every partition has a leader. kafkajs' own
 * `waitForLeaders` gives up when a fresh broker briefly answers UNKNOWN_TOPIC_OR_PARTITION
 * for a topic it has just created, so the wait is done here, with retries.
 */
export async function createTopics(kafka: Kafka, topics: string[], partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })), waitForLeaders: false });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await admin.fetchTopicMetadata({ topics }).then(
        (m) => m.topics.every((t) => t.partitions.length >= partitions && t.partitions.every((p) => p.leader >= 0)),
        () => false,
      );
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leaders after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Deletes every topic whose name starts with `prefix` (tests name all theirs after one prefix). */
export async function deleteTopicsWithPrefix(kafka: Kafka, prefix: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
  } finally {
    await admin.disconnect();
  }
}

/** Registers UsageEvent for `topic` and returns a function that frames events with its id. */
export async function usageEventEncoder(topic: string): Promise<(event: UsageEvent) => Buffer> {
  const id = await new SchemaCatalog(REGISTRY_URL).register(`${topic}-value`, usageEventSchema);
  return (event) => frame(id, usageEventType.toBuffer(event));
}

export interface TestMessage {
  key: string | null;
  value: Buffer | string | null;
  headers?: IHeaders;
  partition?: number;
}

export async function produce(producer: Producer, topic: string, messages: TestMessage[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 500) {
    await producer.send({ topic, messages: messages.slice(i, i + 500), acks: -1 });
  }
}

export type ReadRecord = KafkaMessage & { topic: string; partition: number };

/**
 * Reads `topic` with read_committed from the beginning until `expected` records arrived
 * and then `settleMs` passed with nothing new (so extra, unwanted records are seen too),
 * or `timeoutMs` elapsed.
 */
export async function readAll(kafka: Kafka, topic: string, expected: number, options: { timeoutMs?: number; settleMs?: number } = {}): Promise<ReadRecord[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), readUncommitted: false, maxWaitTimeInMs: 100 });
  const out: ReadRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let lastChange = Date.now();
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) out.push({ ...m, topic: batch.topic, partition: batch.partition });
      if (batch.messages.length > 0) lastChange = Date.now();
      await Promise.resolve();
    },
  });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const settle = options.settleMs ?? 1_500;
  while (Date.now() < deadline) {
    if (out.length >= expected && Date.now() - lastChange >= settle) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  return out;
}

export function header(m: KafkaMessage, name: string): string | undefined {
  const v = m.headers?.[name];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? v[v.length - 1] : v;
  return one === undefined ? undefined : one.toString();
}

export function decodeEvent(value: Buffer | null): UsageEvent {
  if (!value) throw new Error('no value');
  return usageEventType.fromBuffer(value.subarray(5)) as UsageEvent;
}
