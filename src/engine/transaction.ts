import type { Message, Producer } from 'kafkajs';
import { OrdoError } from '../errors.js';
import { asOrdoError } from './error-policy.js';
import type { OutputRecord } from '../model/records.js';

export interface TransactionContent {
  outputs: OutputRecord[];
  /** Offsets to commit for the consumer group: the next offset to read, per input partition (none: nothing to commit). */
  offsets: {
    groupId: string;
    positions: { topic: string; partition: number; nextOffset: string }[];
    /** The offset commit's metadata, given where this transaction's records end (see WrittenEnds). */
    metadata?: (written: WrittenEnds) => string;
  };
  /** Partition every record without an explicit partition goes to (co-partitioning). */
  partition: number;
}

/**
 * Writes a batch's outputs, changelog records and input offsets in ONE Kafka transaction.
 * On any failure the transaction is aborted and the error classified: fenced (drop the
 * task) or transient (retry the batch).
 */
export async function commitTransaction(producer: Producer, content: TransactionContent): Promise<WrittenEnds> {
  const transaction = await producer.transaction();
  try {
    const ends: WrittenEnds = new Map();
    for (const request of splitRequests(content)) {
      const written = await transaction.sendBatch({ topicMessages: [...request].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
      for (const m of written) {
        const messages = request.get(m.topicName) ?? [];
        const count = messages.reduce((n, message) => n + (message.partition === m.partition ? 1 : 0), 0);
        ends.set(`${m.topicName}/${m.partition}`, BigInt(m.baseOffset ?? '0') + BigInt(count));
      }
    }
    // kafkajs silently skips a partition the topic does not have: never commit past that.
    for (const target of targetsOf(content)) {
      if (!ends.has(target)) throw new OrdoError(`no acknowledgement for ${target}: does the topic have that partition?`);
    }
    const { groupId, positions } = content.offsets;
    if (positions.length > 0) {
      const metadata = content.offsets.metadata?.(ends) ?? null;
      const byTopic = new Map<string, { partition: number; offset: string; metadata: string | null }[]>();
      for (const p of positions) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), { partition: p.partition, offset: p.nextOffset, metadata }]);
      await transaction.sendOffsets({ consumerGroupId: groupId, topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) });
    }
    await transaction.commit();
    return ends;
  } catch (error) {
    await transaction.abort().catch(() => undefined);
    const topics = [...new Set(content.outputs.map((o) => o.topic))].join(', ');
    throw classifyKafkaError(error, `a transaction writing to ${topics || 'no topic'} and committing offsets of group ${content.offsets.groupId}`);
  }
}

/**
 * Per `topic/partition` written: the offset after the last record this transaction wrote
 * there (its commit marker takes that offset).
 */
export type WrittenEnds = Map<string, bigint>;

/**
 * Bytes of records per produce request. kafkajs puts all of a request's records for one
 * partition into one record batch, and the broker refuses a batch over message.max.bytes
 * (1 MiB by default): a big transaction (aggregates, changelogs) is sent in several requests.
 */
export const MAX_REQUEST_BYTES = 512 * 1024;
/** Per-record overhead in a record batch, roughly (lengths, offsets, timestamps, attributes). */
const RECORD_OVERHEAD = 24;

/** Groups the outputs into requests of at most MAX_REQUEST_BYTES, keeping their order per partition. */
function* splitRequests(content: TransactionContent): Generator<Map<string, Message[]>> {
  let request = new Map<string, Message[]>();
  let bytes = 0;
  for (const record of content.outputs) {
    const size = RECORD_OVERHEAD + sizeOf(record.key) + sizeOf(record.value) + headerBytes(record.headers);
    if (bytes > 0 && bytes + size > MAX_REQUEST_BYTES) {
      yield request;
      request = new Map();
      bytes = 0;
    }
    let messages = request.get(record.topic);
    if (!messages) request.set(record.topic, (messages = []));
    const message: Message = { key: record.key, value: record.value, headers: record.headers, partition: record.partition ?? content.partition };
    if (record.timestamp !== undefined) message.timestamp = String(record.timestamp);
    messages.push(message);
    bytes += size;
  }
  if (bytes > 0) yield request;
}

/** Every `topic/partition` the outputs go to: one key per topic for the task's own partition. */
function targetsOf(content: TransactionContent): Set<string> {
  const targets = new Set<string>();
  const topics = new Set<string>();
  for (const record of content.outputs) {
    if (record.partition !== undefined) targets.add(`${record.topic}/${record.partition}`);
    else if (!topics.has(record.topic)) {
      topics.add(record.topic);
      targets.add(`${record.topic}/${content.partition}`);
    }
  }
  return targets;
}

function sizeOf(value: Buffer | string | null): number {
  if (value === null) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

function headerBytes(headers: Record<string, Buffer | string>): number {
  let bytes = 0;
  for (const name in headers) bytes += name.length + sizeOf(headers[name] ?? null) + 4;
  return bytes;
}

/**
 * An error of the Kafka calls in a transaction as the engine acts on it (engine/error-policy.ts):
 * FencedError (drop the task), TransientError (retry the batch with a fresh producer), or a
 * fatal error as it is (NotAuthorizedError naming what was refused).
 */
export function classifyKafkaError(error: unknown, doing?: string): Error {
  return error instanceof OrdoError ? error : asOrdoError(error, doing);
}
