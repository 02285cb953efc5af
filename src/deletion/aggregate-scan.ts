import type { Kafka } from 'kafkajs';
import { restorePartitions } from '../engine/restore.js';
import type { Logger } from '../observability/logger.js';
import type { AggregateScanner } from './sweep.js';

/**
 * The sweep's read of one partition of the aggregates topic (read_committed, start to the
 * current end): the keys `keep` selects, each live unless its last record is a tombstone.
 * Final windows are only there (not in the task's memory), so a deletion needs one such read
 * per task; it runs in the background, under the pipeline group's restore-group prefix
 * (the same ACL as a state restore).
 */
export function aggregateScanner(kafka: Kafka, options: { topic: string; groupId: string; logger: Logger }): AggregateScanner {
  return async (partition, keep) => {
    const keys = new Map<string, boolean>();
    await restorePartitions(
      kafka,
      [{ topic: options.topic, partition, onRecord: (key, value) => void (keep(key) && keys.set(key, value !== null)) }],
      { groupPrefix: options.groupId, logger: options.logger },
    );
    return keys;
  };
}
