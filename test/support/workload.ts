import type { Kafka, Producer } from 'kafkajs';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { type TestMessage, createTopics, produce, usageEventEncoder } from './cluster.js';
import { sleep } from './process.js';

/** `count` valid events over `subjects` customers, plus one bad record every `badEvery`. */
export function makeWorkload(encode: (e: UsageEvent) => Buffer, count: number, subjects: number, badEvery = 0): { messages: TestMessage[]; validIds: string[]; badKeys: string[] } {
  const messages: TestMessage[] = [];
  const validIds: string[] = [];
  const badKeys: string[] = [];
  for (let i = 0; i < count; i++) {
    const subject = `cust-${i % subjects}`;
    const id = `ev-${i}`;
    validIds.push(id);
    messages.push({ key: subject, value: encode({ id, source: 'load', type: 'api.request', subject, time: Date.now(), value: `${i % 97}.${i % 10}`, dimensions: { region: `r${i % 3}` } }) });
    if (badEvery > 0 && i % badEvery === 0) {
      const key = `bad-${i}`;
      badKeys.push(key);
      messages.push({ key, value: Buffer.from(`garbage ${i}`) });
    }
  }
  return { messages, validIds, badKeys };
}

/** Produces `messages` in chunks, spread over about `durationMs`. */
export async function producePaced(producer: Producer, topic: string, messages: TestMessage[], durationMs: number, chunk = 200): Promise<void> {
  const chunks = Math.ceil(messages.length / chunk);
  const pause = durationMs / Math.max(1, chunks);
  for (let i = 0; i < messages.length; i += chunk) {
    await produce(producer, topic, messages.slice(i, i + chunk));
    await sleep(pause);
  }
}

/** Sum of high watermarks of a topic: a progress indicator (includes uncommitted records). */
export async function highWatermark(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, o) => sum + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Waits until the high watermarks of `topic` sum to at least `atLeast` (records written, committed or not). */
export async function waitForOutput(kafka: Kafka, topic: string, atLeast: number, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await highWatermark(kafka, topic).catch(() => 0)) < atLeast) {
    if (Date.now() > deadline) throw new Error(`${topic} did not reach ${atLeast} records`);
    await sleep(200);
  }
}

/** Creates the input topic with `partitions`, then writes a workload of `count` valid events over `subjects` to it at once. */
export async function seedInput(kafka: Kafka, topic: string, partitions: number, count: number, subjects: number): Promise<ReturnType<typeof makeWorkload>> {
  await createTopics(kafka, [topic], partitions);
  const workload = makeWorkload(await usageEventEncoder(topic), count, subjects);
  const producer = kafka.producer();
  await producer.connect();
  try {
    await produce(producer, topic, workload.messages);
  } finally {
    await producer.disconnect();
  }
  return workload;
}
