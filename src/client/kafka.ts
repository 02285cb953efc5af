/**
 * For services that write usage events to Kafka themselves: the time context on a record,
 * and consistency tokens from what the producer answered. kafkajs is only a type here: the
 * SDK works with the caller's own kafkajs (or any client with the same shapes).
 */
import type { IHeaders, Message, ProducerRecord, RecordMetadata } from 'kafkajs';
import type { HybridClock } from '../clock/hybrid-clock.js';
import { type InputPosition, encodeConsistencyToken } from '../model/consistency-token.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, type TimeContextHeaders, sendTimeContext } from './time-headers.js';

/**
 * A copy of a kafkajs `Message` with `service-time` / `service-node` set to a send stamp of
 * the clock (replacing any such headers it had; other headers kept). Ordo's pipeline then
 * orders the event after everything the clock had seen: its origin service time is this
 * stamp. Stamp each message once, right before sending it.
 */
export function stampRecord<M extends Message>(clock: HybridClock, message: M): M & { headers: IHeaders & TimeContextHeaders } {
  const context = sendTimeContext(clock);
  return { ...message, headers: { ...message.headers, [SERVICE_TIME_HEADER]: context[SERVICE_TIME_HEADER], [SERVICE_NODE_HEADER]: context[SERVICE_NODE_HEADER] } };
}

/** The one method of a kafkajs `Producer` (or `Transaction`) the token helpers use. */
export interface ProducerLike {
  /** kafkajs `producer.send` / `transaction.send`. */
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
}

/** A consistency token with the input record it names. */
export interface WrittenToken {
  /** `c1.<base64url(topic)>.<partition>.<offset>`: pass it as `consistentWith` to the api. */
  token: string;
  /** The input record it names: the last one the send wrote to that partition. */
  position: InputPosition;
}

/**
 * Where the LAST message of each partition of a send went. The subtlety: kafkajs answers
 * one `RecordMetadata` per partition, and its `baseOffset` is the offset of the FIRST
 * message sent to that partition; the messages of one partition get consecutive offsets,
 * so the last one is `baseOffset + count - 1`. A token built from `baseOffset` alone would
 * name only the first message, and a read "consistent with" it could miss the others.
 * `count(topic, partition)` must give how many messages of the send went to that partition.
 */
export function lastPositions(metadata: readonly RecordMetadata[], count: (topic: string, partition: number) => number): InputPosition[] {
  return metadata.map((m) => {
    if (m.errorCode !== 0) throw new RangeError(`partition ${m.topicName}/${m.partition} answered error code ${m.errorCode}: nothing to name`);
    const base = m.baseOffset ?? m.offset;
    // acks: 0 gets no offsets back (kafkajs answers nothing, or -1): no token can be built.
    if (base === undefined || !/^\d+$/.test(base)) throw new RangeError(`partition ${m.topicName}/${m.partition} answered no base offset (was the send acks: 0?)`);
    const n = count(m.topicName, m.partition);
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${n} messages counted for ${m.topicName}/${m.partition}, which answered an offset: the count must be at least 1`);
    return { topic: m.topicName, partition: m.partition, offset: (BigInt(base) + BigInt(n) - 1n).toString() };
  });
}

/**
 * Consistency tokens for a send whose messages name their `partition` explicitly (then
 * the count per partition is known; with a partitioner choosing, it is not, and this
 * throws rather than guess: use {@link sendWithConsistencyToken} per message instead).
 * One token per partition written, naming its last message.
 */
export function consistencyTokens(record: Pick<ProducerRecord, 'topic' | 'messages'>, metadata: readonly RecordMetadata[]): WrittenToken[] {
  const counts = new Map<number, number>();
  record.messages.forEach((message, index) => {
    if (message.partition === undefined) {
      throw new RangeError(`message ${index} of the send has no explicit partition: how many messages each partition got is unknown, so no token can name the last one`);
    }
    counts.set(message.partition, (counts.get(message.partition) ?? 0) + 1);
  });
  const answered = metadata.filter((m) => m.topicName === record.topic);
  const missing = [...counts.keys()].filter((p) => !answered.some((m) => m.partition === p));
  if (missing.length > 0) throw new RangeError(`the producer answered no metadata for partition(s) ${missing.join(', ')} of ${record.topic}`);
  return lastPositions(answered, (_topic, partition) => counts.get(partition) ?? 0).map((position) => ({ token: encodeConsistencyToken(position), position }));
}

/**
 * Sends one message and returns the consistency token naming it (one message: its offset is
 * the `baseOffset` the broker answered). `acks` must not be 0 (the default, -1, is right).
 * With a transactional producer, pass the transaction: the token becomes readable once it
 * commits.
 *
 * @example
 * const { token } = await sendWithConsistencyToken(producer, 'usage-events', stampRecord(clock, message));
 * await fetch(`${api}/v1/meters/tokens/usage?subject=acme&consistentWith=${token}`);
 */
export async function sendWithConsistencyToken(
  producer: ProducerLike,
  topic: string,
  message: Message,
  options: Omit<ProducerRecord, 'topic' | 'messages'> = {},
): Promise<WrittenToken & { metadata: RecordMetadata[] }> {
  const metadata = await producer.send({ ...options, topic, messages: [message] });
  const written = metadata.filter((m) => m.topicName === topic);
  if (written.length !== 1) throw new RangeError(`the producer answered ${written.length} partitions for one message to ${topic}`);
  const [position] = lastPositions(written, () => 1) as [InputPosition];
  return { token: encodeConsistencyToken(position), position, metadata };
}
