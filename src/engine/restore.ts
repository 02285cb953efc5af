import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';

export interface RestoreTarget {
  topic: string;
  partition: number;
  /** First offset to read (default: the partition's start). */
  from?: bigint;
  /** Read up to this offset, exclusive (default: the partition's end as measured at the start). */
  to?: bigint;
  onRecord(key: string, value: Buffer | null, record: RestoredRecord): void;
}

/** What else a restore target may need of a record (a replay of an output or input topic). */
export interface RestoredRecord {
  key: Buffer | null;
  offset: string;
  timestamp: number;
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

/**
 * Reads one partition of each changelog topic from the start to its end offset with
 * read_committed, feeding every record to its target.
 *
 * Must run after the task's transactional producer is initialised: that fences any
 * zombie and completes its open transaction, so the end offset is stable (nobody else
 * writes these partitions) and nothing aborted is replayed. kafkajs has no manual
 * partition assignment, so a throwaway consumer group (never committed, deleted after)
 * does the reading.
 */
export async function restorePartitions(
  kafka: Kafka,
  targets: RestoreTarget[],
  options: { groupPrefix: string; logger: Logger; timeoutMs?: number },
): Promise<{ records: number }> {
  // One admin session serves the end offsets and, afterwards, the throwaway group's deletion.
  const admin = kafka.admin();
  await admin.connect();
  try {
    const pending = new Map<string, { target: RestoreTarget; end: bigint }>();
    const starts: { topic: string; partition: number; offset: string }[] = [];
    for (const target of targets) {
      if (pending.has(target.topic)) throw new Error(`one restore target per topic: ${target.topic} twice`);
      const offsets = await admin.fetchTopicOffsets(target.topic);
      const p = offsets.find((o) => o.partition === target.partition);
      if (!p) throw new Error(`changelog ${target.topic} has no partition ${target.partition}`);
      const low = BigInt(p.low);
      const from = target.from !== undefined && target.from > low ? target.from : low;
      const end = target.to !== undefined && target.to < BigInt(p.high) ? target.to : BigInt(p.high);
      if (end > from) {
        pending.set(target.topic, { target, end });
        if (from > low) starts.push({ topic: target.topic, partition: target.partition, offset: from.toString() });
      }
    }
    if (pending.size === 0) return { records: 0 };
    const groupId = `${options.groupPrefix}-restore-${randomUUID()}`;
    try {
      // A fresh group: offsets set now are where its consumer starts (the rest: the beginning).
      for (const start of starts) await admin.setOffsets({ groupId, topic: start.topic, partitions: [{ partition: start.partition, offset: start.offset }] });
      return await readToEnd(kafka, groupId, pending, options);
    } finally {
      await admin.deleteGroups([groupId]).catch((error: unknown) => options.logger.debug('could not delete the restore group (it expires by itself)', { groupId, error }));
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function readToEnd(
  kafka: Kafka,
  groupId: string,
  pending: Map<string, { target: RestoreTarget; end: bigint }>,
  options: { logger: Logger; timeoutMs?: number },
): Promise<{ records: number }> {
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxBytesPerPartition: 8 * 1024 * 1024, maxWaitTimeInMs: 100, sessionTimeout: 30_000 });
  let records = 0;
  let finish!: () => void;
  let fail!: (error: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const reached = (topic: string, partition: number, lastOffset: string | null | undefined): void => {
    const entry = pending.get(topic);
    if (!entry || partition !== entry.target.partition || lastOffset == null) return;
    if (BigInt(lastOffset) + 1n >= entry.end) {
      pending.delete(topic);
      if (pending.size === 0) finish();
    }
  };
  // Also fires for fetches that held only transaction markers or aborted records.
  const removeListener = consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
    reached(event.payload.topic, event.payload.partition, event.payload.lastOffset);
  });
  const removeCrash = consumer.on(consumer.events.CRASH, (event) => fail(event.payload.error));
  const timeoutMs = options.timeoutMs ?? 300_000;
  const timer = setTimeout(() => fail(new Error(`restore did not reach the changelog end within ${timeoutMs} ms`)), timeoutMs);
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [...pending.keys()], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, pause }) => {
        const entry = pending.get(batch.topic);
        if (!entry || batch.partition !== entry.target.partition) {
          pause();
          return;
        }
        for (const message of batch.messages) {
          if (BigInt(message.offset) >= entry.end) break;
          entry.target.onRecord(message.key?.toString('utf8') ?? '', message.value, { key: message.key ?? null, offset: message.offset, timestamp: Number(message.timestamp), headers: message.headers ?? {} });
          records += 1;
        }
        await Promise.resolve();
      },
    });
    await done;
  } finally {
    clearTimeout(timer);
    removeListener();
    removeCrash();
    await consumer.disconnect().catch((error: unknown) => options.logger.warn('restore consumer disconnect failed', { error }));
  }
  return { records };
}
