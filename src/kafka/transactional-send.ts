import { type Producer, Partitioners, type PartitionMetadata, type Transaction } from 'kafkajs';

/** A record for the input topic, keyed (by subject). */
export interface KeyedMessage {
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/** Where one record was written. Offsets stay strings (Kafka offsets are int64). */
export interface WrittenPosition {
  topic: string;
  partition: number;
  offset: string;
}

/** Records per send within one transaction: no request outgrows the broker's size limits. */
const SEND_CHUNK = 1_000;

const partitioner = Partitioners.DefaultPartitioner();

/**
 * The partition of each message, by the producer's own partitioner (murmur2 of the key, like
 * Java clients): the same place any other producer of the topic puts that key. Computed here
 * so that each record's offset is known from its partition's base offset and its position.
 */
export function assignPartitions<M extends KeyedMessage>(topic: string, partitionMetadata: PartitionMetadata[], messages: readonly M[]): (M & { partition: number })[] {
  return messages.map((message) => ({ ...message, partition: partitioner({ topic, partitionMetadata, message }) }));
}

/**
 * Writes `messages` to `topic` in ONE transaction of `producer` (transactional, connected,
 * no other transaction open): all are written or none. A failed send aborts and rethrows.
 * Returns each message's position, in the order given: within one send a partition's
 * records form one batch, so they take consecutive offsets from its base offset.
 */
export async function sendInOneTransaction(producer: Producer, topic: string, messages: readonly (KeyedMessage & { partition: number })[]): Promise<WrittenPosition[]> {
  const transaction = await producer.transaction();
  const out: WrittenPosition[] = [];
  try {
    for (let from = 0; from < messages.length; from += SEND_CHUNK) out.push(...(await sendPlaced(transaction, topic, messages.slice(from, from + SEND_CHUNK))));
    await transaction.commit();
  } catch (error) {
    await transaction.abort().catch(() => undefined);
    throw error;
  }
  return out;
}

/**
 * One send within an open transaction (at most SEND_CHUNK messages, each with its partition):
 * each message's position, in the order given. Within one send a partition's records form
 * one batch, so they take consecutive offsets from its base offset.
 */
export async function sendPlaced(transaction: Transaction, topic: string, messages: readonly { key: string | Buffer | null; value: Buffer | string; headers: Record<string, string>; partition: number }[]): Promise<WrittenPosition[]> {
  if (messages.length > SEND_CHUNK) throw new RangeError(`${messages.length} messages in one send; at most ${SEND_CHUNK}`);
  const results = await transaction.send({ topic, messages: [...messages] });
  const base = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset ?? '0')]));
  const seen = new Map<number, bigint>();
  return messages.map((m) => {
    const position = seen.get(m.partition) ?? 0n;
    seen.set(m.partition, position + 1n);
    return { topic, partition: m.partition, offset: ((base.get(m.partition) ?? 0n) + position).toString() };
  });
}
