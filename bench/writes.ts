import type { Kafka } from 'kafkajs';
import { nowMs, waitUntil, withTimeout } from './kafka.js';

/** Where a written topic's records count: outputs (ordered/out, aggregates, DLQ, late, watermarks...) or state (`*-changelog`). */
export type WriteClass = 'outputs' | 'state';

export interface TopicWrites {
  /** The topic name without the phase prefix (`ordered`, `g-dedupe-changelog`...). */
  name: string;
  class: WriteClass;
  records: number;
  perEvent: number | null;
}

/** Records (not offsets) the system under test wrote during one throughput phase. */
export interface WritesResult {
  /** Input events of the phase (the denominator). */
  events: number;
  complete: boolean;
  error?: string;
  outputs: number;
  state: number;
  outputsPerEvent: number | null;
  statePerEvent: number | null;
  topics: TopicWrites[];
  /** How long counting took (not part of any figure). */
  countMs: number;
}

export function classify(name: string): WriteClass {
  return name.endsWith('-changelog') ? 'state' : 'outputs';
}

/**
 * Counts the committed records of every topic whose name starts with `prefix` (all the
 * phase's topics are fresh, so everything in them was written during the phase), except
 * `exclude` (the input). Counting by reading, read_committed, from the beginning up to the
 * end offsets taken when the system has stopped: transaction markers take offsets but are
 * no records, and records of aborted transactions are not written outputs, so neither is
 * counted. A partition is done when the consumer's position (kafkajs' batch `lastOffset`,
 * which covers filtered markers and aborted records too) reaches its end offset.
 */
export async function countWrites(kafka: Kafka, prefix: string, exclude: string[], events: number, timeoutMs = 60_000): Promise<WritesResult> {
  const started = nowMs();
  const admin = kafka.admin();
  const ends = new Map<string, Map<number, bigint>>();
  try {
    await withTimeout(admin.connect(), 15_000, 'admin connect');
    const topics = (await withTimeout(admin.listTopics(), 15_000, 'list topics')).filter((t) => t.startsWith(prefix) && !exclude.includes(t)).sort();
    for (const topic of topics) {
      const offsets = await withTimeout(admin.fetchTopicOffsets(topic), 15_000, `end offsets of ${topic}`);
      ends.set(topic, new Map(offsets.map((o) => [o.partition, BigInt(o.high)])));
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }

  const counts = new Map<string, number>([...ends.keys()].map((t) => [t, 0]));
  const position = new Map<string, bigint>();
  const pending = (): number => {
    let left = 0;
    for (const [topic, parts] of ends) {
      for (const [partition, end] of parts) if ((position.get(`${topic}:${partition}`) ?? 0n) < end) left++;
    }
    return left;
  };
  const nonEmpty = [...ends].filter(([, parts]) => [...parts.values()].some((end) => end > 0n)).map(([topic]) => topic);
  let error: string | undefined;
  if (nonEmpty.length > 0) {
    const groupId = `${prefix}-writes`;
    const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 << 20, allowAutoTopicCreation: false });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.lastOffset !== null && payload.lastOffset !== undefined) {
        const key = `${payload.topic}:${payload.partition}`;
        const next = BigInt(payload.lastOffset) + 1n;
        if (next > (position.get(key) ?? 0n)) position.set(key, next);
      }
    });
    try {
      await withTimeout(consumer.connect(), 15_000, 'writes counter connect');
      await consumer.subscribe({ topics: nonEmpty, fromBeginning: true });
      await consumer.run({
        partitionsConsumedConcurrently: 1,
        eachBatch: ({ batch }) => {
          counts.set(batch.topic, counts.get(batch.topic)! + batch.messages.length);
          return Promise.resolve();
        },
      });
      const done = await waitUntil(() => pending() === 0, timeoutMs, { everyMs: 20 });
      if (!done) error = `counting writes: ${pending()} partition(s) not read to their end offset within ${timeoutMs} ms`;
    } catch (e) {
      error = `counting writes: ${(e as Error).message}`;
    } finally {
      await withTimeout(consumer.disconnect(), 20_000, 'writes counter disconnect').catch(() => undefined);
      const cleanup = kafka.admin();
      await cleanup.connect().then(() => cleanup.deleteGroups([groupId])).catch(() => undefined);
      await cleanup.disconnect().catch(() => undefined);
    }
  }

  const perEvent = (n: number): number | null => (events > 0 ? Math.round((n / events) * 1000) / 1000 : null);
  const topics: TopicWrites[] = [...counts].map(([topic, records]) => {
    const name = topic.slice(prefix.length).replace(/^-/, '');
    return { name, class: classify(name), records, perEvent: perEvent(records) };
  });
  const sum = (c: WriteClass): number => topics.filter((t) => t.class === c).reduce((a, t) => a + t.records, 0);
  const outputs = sum('outputs');
  const state = sum('state');
  return {
    events,
    complete: error === undefined,
    ...(error ? { error } : {}),
    outputs,
    state,
    outputsPerEvent: perEvent(outputs),
    statePerEvent: perEvent(state),
    topics,
    countMs: Math.round(nowMs() - started),
  };
}
