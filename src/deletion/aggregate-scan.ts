import type { Kafka } from 'kafkajs';
import { restorePartitions } from '../engine/restore.js';
import type { Logger } from '../observability/logger.js';
import type { AggregateScanner } from './sweep.js';

/** Reads the records of `partition` of the aggregates topic with timestamps in [fromMs, toMs): between the offsets of those timestamps (the pipeline's records are in timestamp order, up to a batch's spread). */
export type AggregateRangeReader = (partition: number, range: { fromMs: number; toMs: number }, visit: (key: string, value: Buffer | null, timestamp: number) => void) => Promise<void>;

interface ScanOptions {
  topic: string;
  groupId: string;
  logger: Logger;
}

/**
 * The sweep's read of one partition of the aggregates topic (read_committed, start to the
 * current end): the keys `keep` selects, each live unless its last record is a tombstone.
 * Final windows are only there (not in the task's memory), so a deletion needs one such read
 * per task; it runs in the background, under the pipeline group's restore-group prefix
 * (the same ACL as a state restore).
 */
export function aggregateScanner(kafka: Kafka, options: ScanOptions): AggregateScanner {
  return async (partition, keep) => {
    const keys = new Map<string, boolean>();
    await readAggregates(kafka, options, partition, undefined, (key, value) => void (keep(key) && keys.set(key, value !== null)));
    return keys;
  };
}

/**
 * The retention sweep's read (src/retention/retention-sweep.ts): the records of one partition
 * between the offsets of two record timestamps, the same way.
 */
export function aggregateRangeReader(kafka: Kafka, options: ScanOptions): AggregateRangeReader {
  return (partition, range, visit) => readAggregates(kafka, options, partition, range, visit);
}

async function readAggregates(
  kafka: Kafka,
  options: ScanOptions,
  partition: number,
  range: { fromMs: number; toMs: number } | undefined,
  visit: (key: string, value: Buffer | null, timestamp: number) => void,
): Promise<void> {
  let bounds: { from: bigint | undefined; to: bigint } | undefined;
  if (range !== undefined) {
    const admin = kafka.admin();
    await admin.connect();
    try {
      // The first offset at or after a timestamp (the end when none is): kafkajs maps the broker's -1 to the high watermark.
      const offsetAt = async (ms: number): Promise<bigint> => {
        const found = (await admin.fetchTopicOffsetsByTimestamp(options.topic, ms)).find((o) => o.partition === partition);
        if (found === undefined) throw new Error(`topic ${options.topic} has no partition ${partition}`);
        return BigInt(found.offset);
      };
      // Negative timestamps are the protocol's special values (latest, earliest...): 0 and below is the start.
      bounds = { from: range.fromMs <= 0 ? undefined : await offsetAt(range.fromMs), to: await offsetAt(Math.max(1, range.toMs)) };
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (bounds.from !== undefined && bounds.to <= bounds.from) return;
  }
  await restorePartitions(
    kafka,
    [{ topic: options.topic, partition, from: bounds?.from, clamp: bounds !== undefined, to: bounds?.to, onRecord: (key, value, record) => visit(key, value, record.timestamp) }],
    { groupPrefix: options.groupId, logger: options.logger },
  );
}
