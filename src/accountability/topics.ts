import type { OrdoConfig } from '../config/config.js';
import type { TopicSpec } from '../kafka/topics.js';

/**
 * The topics of accountability (receipts, replays, deletions). Each is small: receipts are an
 * index over what the pipeline already writes (ordered, DLQ, late), not a copy of it.
 */

/** Subject deletions: compacted, one partition, so one read to the end sees every deletion before it. */
export function deletionsTopicSpec(config: Pick<OrdoConfig, 'topics'>): TopicSpec {
  return { topic: config.topics.deletions, partitions: 1, compacted: true };
}

/** Dead letters replayed to the input, keyed by `<dlq partition>/<offset>`: compacted, one partition. */
export function replaysTopicSpec(config: Pick<OrdoConfig, 'topics'>): TopicSpec {
  return { topic: config.topics.replays, partitions: 1, compacted: true };
}

/**
 * Re-sends the pipeline dropped as duplicates, at most one record per transaction, written by
 * input partition number (like the ordered topic). Kept as long as the receipts they feed.
 */
export function duplicatesTopicSpec(config: Pick<OrdoConfig, 'topics' | 'receipts'>, partitions: number): TopicSpec {
  return { topic: config.topics.duplicates, partitions, minPartitions: partitions, configs: { 'retention.ms': String(config.receipts.retentionMs) } };
}
