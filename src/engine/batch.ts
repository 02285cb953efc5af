import type { KafkaMessage } from 'kafkajs';
import type { SourceRecord } from '../model/records.js';

/** A fetched kafkajs message as the processors see it. */
export function toSourceRecord(topic: string, partition: number, m: KafkaMessage): SourceRecord {
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers ?? {}, timestamp: Number(m.timestamp) };
}

/**
 * Lines a fetched batch up with the position committed in the task's own store (exact:
 * written in the same transaction as the offsets). The group offset kafkajs started from
 * can lag it, since markers materialise asynchronously. So the first batch that starts
 * elsewhere asks the caller to seek there once (and drop the batch); after that, records
 * before the position are skipped.
 */
export function alignToPosition<T extends { offset: string }>(records: readonly T[], position: string | undefined, seeked: boolean): { seek: boolean; records: readonly T[] } {
  if (position === undefined) return { seek: false, records };
  const pos = BigInt(position);
  const first = records[0];
  if (!seeked && first !== undefined && BigInt(first.offset) !== pos) return { seek: true, records: [] };
  return { seek: false, records: records.filter((r) => BigInt(r.offset) >= pos) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
