/**
 * A consistency token names one record of the input topic: its topic, partition and offset.
 * The ingest role answers one per accepted event; the client SDK builds the same from a
 * Kafka producer's record metadata. A query given tokens answers only once everything the
 * pipeline committed up to and including those offsets is in the answer (docs/client.md).
 *
 * Opaque to callers and URL-safe: `c1.<base64url(topic)>.<partition>.<offset>`.
 */
export interface InputPosition {
  /** The input topic. */
  topic: string;
  /** Its partition. */
  partition: number;
  /** Kafka offsets are int64: a decimal string. */
  offset: string;
}

const VERSION = 'c1';
/** Kafka's own rule for topic names. */
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
const OFFSET = /^(?:0|[1-9]\d{0,18})$/;
const PARTITION = /^(?:0|[1-9]\d{0,9})$/;
const MAX_OFFSET = (1n << 63n) - 1n;
const MAX_PARTITION = 2 ** 31 - 1;

/** A token that is not one Ordo made: the message says what is wrong with it. */
export class ConsistencyTokenError extends Error {
  /** `ConsistencyTokenError`. */
  override readonly name = 'ConsistencyTokenError';
}

/** The token naming `position`; ConsistencyTokenError when it is not a Kafka position. */
export function encodeConsistencyToken(position: InputPosition): string {
  checkPosition(position);
  return `${VERSION}.${Buffer.from(position.topic, 'utf8').toString('base64url')}.${position.partition}.${position.offset}`;
}

/** The position a token names; ConsistencyTokenError, saying what is wrong, for anything Ordo did not make. */
export function decodeConsistencyToken(token: string): InputPosition {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) throw new ConsistencyTokenError(`${quote(token)} is not a consistency token (c1.<topic>.<partition>.<offset>)`);
  const [, topic64, partition, offset] = parts as [string, string, string, string];
  const topic = /^[A-Za-z0-9_-]+$/.test(topic64) ? Buffer.from(topic64, 'base64url').toString('utf8') : '';
  if (!PARTITION.test(partition)) throw new ConsistencyTokenError(`consistency token ${quote(token)}: partition is not a whole number`);
  if (!OFFSET.test(offset)) throw new ConsistencyTokenError(`consistency token ${quote(token)}: offset is not a whole number`);
  const position = { topic, partition: Number(partition), offset };
  checkPosition(position, token);
  return position;
}

/**
 * The highest offset per topic partition among positions: waiting for those is waiting for
 * all of them (offsets of one partition are committed in order).
 */
export function highestPerPartition(positions: readonly InputPosition[]): InputPosition[] {
  const best = new Map<string, InputPosition>();
  for (const p of positions) {
    const key = `${p.topic}\u0000${p.partition}`;
    const seen = best.get(key);
    if (seen === undefined || BigInt(p.offset) > BigInt(seen.offset)) best.set(key, p);
  }
  return [...best.values()].sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

function checkPosition(p: InputPosition, token?: string): void {
  const where = token === undefined ? 'consistency token' : `consistency token ${quote(token)}`;
  if (!TOPIC.test(p.topic)) throw new ConsistencyTokenError(`${where}: topic ${quote(p.topic)} is not a Kafka topic name`);
  if (!Number.isSafeInteger(p.partition) || p.partition < 0 || p.partition > MAX_PARTITION) throw new ConsistencyTokenError(`${where}: partition ${p.partition} is out of range`);
  if (!OFFSET.test(p.offset) || BigInt(p.offset) > MAX_OFFSET) throw new ConsistencyTokenError(`${where}: offset ${quote(p.offset)} is not an offset (0..2^63-1)`);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
