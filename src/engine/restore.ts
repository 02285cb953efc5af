import { randomUUID } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { OrdoError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/** A restore source (one partition of a changelog or output topic) and what its records feed. */
export interface RestoreTarget {
  topic: string;
  partition: number;
  /**
   * Read from this offset (a checkpointed position) instead of the partition's start. It
   * must lie within the partition's [start, end]: otherwise RestoreOutOfRangeError, unless
   * `clamp` (a replay that wants whatever is there from that offset on).
   */
  from?: bigint;
  clamp?: boolean;
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

/** A target's `from` is not in its partition any more (retention, a recreated topic): restore it fully. */
export class RestoreOutOfRangeError extends OrdoError {
  static override readonly code = 'ORDO_RESTORE_OUT_OF_RANGE';
}

/**
 * Reads one partition of each changelog topic from its start (or the target's `from`) to
 * its end offset with read_committed, feeding every record to its target. Resolves with
 * the records read and, per target (same order), the end offset it read up to: the
 * position a checkpoint of the restored state records.
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
): Promise<{ records: number; ends: string[] }> {
  // One admin session serves the end offsets and, afterwards, the throwaway group's deletion.
  const admin = kafka.admin();
  await admin.connect();
  try {
    const pending = new Map<string, Pending>();
    const ends: string[] = [];
    for (const target of targets) {
      const { low, high } = await offsetRange(admin, target);
      ends.push(high.toString());
      let from = target.from ?? low;
      if (target.clamp) from = from < low ? low : from > high ? high : from;
      if (from < low || from > high) {
        throw new RestoreOutOfRangeError(`${target.topic} partition ${target.partition} holds offsets ${low} to ${high}; a restore from ${from} would miss records`);
      }
      const end = target.to !== undefined && target.to < high ? target.to : high;
      if (end <= from) continue;
      // Several targets may read one partition (each from its own offset): one read serves them all.
      const key = `${target.partition}:${target.topic}`;
      const entry = pending.get(key) ?? { topic: target.topic, partition: target.partition, from, end, targets: [] };
      entry.targets.push({ target, from, end });
      if (from < entry.from) entry.from = from;
      if (end > entry.end) entry.end = end;
      pending.set(key, entry);
    }
    if (pending.size === 0) return { records: 0, ends };
    const groupId = `${options.groupPrefix}-restore-${randomUUID()}`;
    try {
      const { records } = await readToEnd(kafka, groupId, pending, options);
      return { records, ends };
    } finally {
      await admin.deleteGroups([groupId]).catch((error: unknown) => options.logger.debug('could not delete the restore group (it expires by itself)', { groupId, error }));
    }
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The current end offsets of `sources` (what a clean close checkpoints). */
export async function endOffsets(kafka: Kafka, sources: readonly { topic: string; partition: number }[]): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends: string[] = [];
    for (const source of sources) ends.push((await offsetRange(admin, source)).high.toString());
    return ends;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function offsetRange(admin: Admin, source: { topic: string; partition: number }): Promise<{ low: bigint; high: bigint }> {
  const offsets = await admin.fetchTopicOffsets(source.topic);
  const p = offsets.find((o) => o.partition === source.partition);
  if (!p) throw new Error(`topic ${source.topic} has no partition ${source.partition}`);
  return { low: BigInt(p.low), high: BigInt(p.high) };
}

interface Pending {
  topic: string;
  partition: number;
  /** The lowest `from` of its targets: where the read starts. */
  from: bigint;
  end: bigint;
  targets: { target: RestoreTarget; from: bigint; end: bigint }[];
}

async function readToEnd(
  kafka: Kafka,
  groupId: string,
  pending: Map<string, Pending>,
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
    const key = `${partition}:${topic}`;
    const entry = pending.get(key);
    if (!entry || lastOffset == null) return;
    if (BigInt(lastOffset) + 1n >= entry.end) {
      pending.delete(key);
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
    const entries = [...pending.values()];
    await consumer.subscribe({ topics: [...new Set(entries.map((e) => e.topic))], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, pause }) => {
        const entry = pending.get(`${batch.partition}:${batch.topic}`);
        if (!entry) {
          pause();
          return;
        }
        for (const message of batch.messages) {
          const offset = BigInt(message.offset);
          if (offset >= entry.end) break;
          const key = message.key?.toString('utf8') ?? '';
          const record: RestoredRecord = { key: message.key ?? null, offset: message.offset, timestamp: Number(message.timestamp), headers: message.headers ?? {} };
          for (const { target, from, end } of entry.targets) {
            if (offset < from || offset >= end) continue; // before this target's checkpoint (or fetched before the seek applied)
            target.onRecord(key, message.value, record);
            records += 1;
          }
        }
        await Promise.resolve();
      },
    });
    for (const entry of entries) if (entry.from > 0n) consumer.seek({ topic: entry.topic, partition: entry.partition, offset: entry.from.toString() });
    await done;
  } finally {
    clearTimeout(timer);
    removeListener();
    removeCrash();
    await consumer.disconnect().catch((error: unknown) => options.logger.warn('restore consumer disconnect failed', { error }));
  }
  return { records };
}
