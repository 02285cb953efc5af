import { Partitioners, type PartitionMetadata } from 'kafkajs';

const partitioner = Partitioners.DefaultPartitioner();
const metadataCache = new Map<number, PartitionMetadata[]>();

/**
 * The partition a producer with the default partitioner (murmur2 of the key, like Java
 * clients) puts `key` in, for a topic of `partitions` partitions with every leader up. The
 * input topic is keyed by subject and the pipeline writes a subject's aggregates to the same
 * partition index, so this is where a subject's aggregates live.
 */
export function partitionOf(key: string, partitions: number): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a whole number ≥ 1, got ${partitions}`);
  let partitionMetadata = metadataCache.get(partitions);
  if (partitionMetadata === undefined) {
    partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
    metadataCache.set(partitions, partitionMetadata);
  }
  return partitioner({ topic: '', partitionMetadata, message: { key, value: null } });
}
