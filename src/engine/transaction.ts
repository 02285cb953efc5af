import type { Message, Producer } from 'kafkajs';
import { FencedError, OrdoError, TransientError } from '../errors.js';
import type { OutputRecord } from '../processors/records.js';

export interface TransactionContent {
  outputs: OutputRecord[];
  /** Offsets to commit for the consumer group: the next offset to read. */
  offsets: { groupId: string; topic: string; partition: number; nextOffset: string };
  /** Partition every record without an explicit partition goes to (co-partitioning). */
  partition: number;
}

/**
 * Writes a batch's outputs, changelog records and input offsets in ONE Kafka transaction.
 * On any failure the transaction is aborted and the error classified: fenced (drop the
 * task) or transient (retry the batch).
 */
export async function commitTransaction(producer: Producer, content: TransactionContent): Promise<void> {
  const transaction = await producer.transaction();
  try {
    const byTopic = new Map<string, Message[]>();
    const targets = new Set<string>();
    for (const record of content.outputs) {
      let messages = byTopic.get(record.topic);
      if (!messages) byTopic.set(record.topic, (messages = []));
      const partition = record.partition ?? content.partition;
      messages.push({ key: record.key, value: record.value, headers: record.headers, partition });
      if (record.partition !== undefined || messages.length === 1) targets.add(`${record.topic}/${partition}`);
    }
    if (byTopic.size > 0) {
      const written = await transaction.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
      // kafkajs silently skips a partition the topic does not have: never commit past that.
      const acked = new Set(written.map((m) => `${m.topicName}/${m.partition}`));
      for (const target of targets) {
        if (!acked.has(target)) throw new OrdoError(`no acknowledgement for ${target}: does the topic have that partition?`);
      }
    }
    const { groupId, topic, partition, nextOffset } = content.offsets;
    await transaction.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition, offset: nextOffset }] }] });
    await transaction.commit();
  } catch (error) {
    await transaction.abort().catch(() => undefined);
    throw classifyKafkaError(error);
  }
}

const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED']);
const FENCED_CODES = new Set([47, 90]);

export function isFenced(error: unknown): boolean {
  for (let e = error as { type?: string; code?: number; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 8; depth++) {
    if ((e.type && FENCED_TYPES.has(e.type)) || (typeof e.code === 'number' && FENCED_CODES.has(e.code))) return true;
    e = (e.cause ?? e.originalError) as typeof e;
  }
  return false;
}

/** Classifies an error of the Kafka calls in a transaction. Programmer errors surface as they are. */
export function classifyKafkaError(error: unknown): Error {
  if (error instanceof OrdoError) return error;
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError) return error;
  if (isFenced(error)) return new FencedError(`fenced by a newer producer with the same transactional id: ${(error as Error).message}`, { cause: error });
  return new TransientError(`transaction failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}
