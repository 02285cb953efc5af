/**
 * What a pipeline task commits with its input position, in the offset commit's `metadata`
 * string (TxnOffsetCommit carries one per partition; no extra record is written): where the
 * task's outputs on its own partition of some topics ended when that position committed.
 *
 * Why: the transaction's commit markers reach the partitions it wrote (and the group's
 * offsets) asynchronously and in no set order, so seeing a committed position does not
 * mean a read_committed reader of an output topic can already read what that transaction
 * wrote there. These end offsets say how far the reader must have read (docs/aggregation.md#read-your-writes).
 *
 * Format, versioned: `ordo1 ends=<topic>:<offset>,<topic>:<offset>` (topic names never hold
 * `:` or `,`). More ` <name>=<value>` fields may follow in later writers (e.g. the lowest
 * input offset still held in the reorder buffer, for receipts); readers skip fields they do
 * not know. Anything else is not ours: decode answers undefined.
 */
export interface PositionMetadata {
  /** Output topic -> the offset after the task's last record there (its partition = the input partition). */
  ends: ReadonlyMap<string, bigint>;
}

const VERSION = 'ordo1';
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const OFFSET = /^(?:0|[1-9]\d{0,18})$/;
const FIELD = /^([a-z][a-z0-9-]*)=(\S*)$/;

export function encodePositionMetadata(metadata: PositionMetadata): string {
  const parts: string[] = [];
  for (const [topic, end] of metadata.ends) {
    if (!TOPIC.test(topic)) throw new RangeError(`position metadata: ${JSON.stringify(topic)} is not a Kafka topic name`);
    if (end < 0n) throw new RangeError(`position metadata: offset ${end} of ${topic} is negative`);
    parts.push(`${topic}:${end}`);
  }
  return `${VERSION} ends=${parts.join(',')}`;
}

/** The metadata of a committed offset, or undefined when it is not one this codec wrote (none, another tool's, another version). */
export function decodePositionMetadata(text: string | null | undefined): PositionMetadata | undefined {
  if (typeof text !== 'string') return undefined;
  const [version, ...fields] = text.split(' ');
  if (version !== VERSION) return undefined;
  let ends: Map<string, bigint> | undefined;
  for (const field of fields) {
    const m = FIELD.exec(field);
    if (m === null) return undefined;
    if (m[1] !== 'ends') continue; // a field of a later writer
    if (ends !== undefined) return undefined;
    ends = new Map();
    if (m[2] === '') continue;
    for (const part of m[2]!.split(',')) {
      const colon = part.lastIndexOf(':');
      const topic = part.slice(0, colon);
      const offset = part.slice(colon + 1);
      if (colon < 0 || !TOPIC.test(topic) || !OFFSET.test(offset) || ends.has(topic)) return undefined;
      ends.set(topic, BigInt(offset));
    }
  }
  return ends === undefined ? undefined : { ends };
}
