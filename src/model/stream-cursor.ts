import { HEADER, type Headers } from './records.js';

/**
 * Cursors of the delivered streams (the `deliver` role, docs/delivery.md#cursors): where a
 * client stands in the ordered or the global stream, as the SSE `id` of every event and the
 * position a receiver session acknowledges. A client hands one back (`Last-Event-ID`,
 * `from=`) to any replica and continues right after it: no gap, no repeat.
 *
 * Three forms, each URL- and header-safe, each naming Kafka positions so a replica resumes
 * with one seek and no index of its own:
 *   `g.<ordo-global-seq>.<offset>`          global stream: after that record (one partition)
 *   `s.<ordo-seq>.<partition>.<offset>`     ordered stream filtered to one subject: after
 *                                           that record, in the subject's one partition
 *   `v.<next0>.<next1>...`                  otherwise: per partition, the next offset to read
 * The sequence numbers come first so a client sees its gapless sequence in the id; the
 * offset after them is what a replica seeks to.
 */

export const STREAMS = ['ordered', 'global'] as const;
export type StreamName = (typeof STREAMS)[number];

export type StreamCursor =
  | { kind: 'global'; seq: bigint; offset: bigint }
  | { kind: 'subject'; seq: bigint; partition: number; offset: bigint }
  | { kind: 'vector'; next: readonly bigint[] };

/** Per partition, the next offset to read. */
export type Positions = ReadonlyMap<number, bigint>;

/** A cursor Ordo did not make, or one that does not fit the stream asked: the message says what is wrong (400 bad-cursor). */
export class CursorError extends Error {
  override readonly name = 'CursorError';
}

const NUMBER = /^(?:0|[1-9]\d{0,18})$/;
const MAX_INT64 = (1n << 63n) - 1n;
const MAX_PARTITION = 2 ** 31 - 1;
/** A vector of more partitions than this is not one of ours (and would cost memory to read). */
const MAX_VECTOR = 10_000;
/** Longer than any cursor of MAX_VECTOR partitions needs. */
const MAX_LENGTH = 20 * MAX_VECTOR + 2;

export function encodeCursor(cursor: StreamCursor): string {
  switch (cursor.kind) {
    case 'global':
      return `g.${cursor.seq}.${cursor.offset}`;
    case 'subject':
      return `s.${cursor.seq}.${cursor.partition}.${cursor.offset}`;
    case 'vector':
      return `v.${cursor.next.join('.')}`;
  }
}

/** The cursor `text` names; CursorError saying what is wrong for anything else. */
export function decodeCursor(text: string): StreamCursor {
  if (text.length > MAX_LENGTH) throw new CursorError(`cursor of ${text.length} characters is not one of Ordo's`);
  const [kind, ...parts] = text.split('.');
  const show = JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
  const int = (part: string | undefined, what: string): bigint => {
    if (part === undefined || !NUMBER.test(part) || BigInt(part) > MAX_INT64) throw new CursorError(`cursor ${show}: ${what} ${JSON.stringify(part ?? '')} is not a non-negative 64-bit integer`);
    return BigInt(part);
  };
  switch (kind) {
    case 'g':
      if (parts.length !== 2) throw new CursorError(`cursor ${show}: a global cursor is g.<ordo-global-seq>.<offset>`);
      return { kind: 'global', seq: int(parts[0], 'ordo-global-seq'), offset: int(parts[1], 'offset') };
    case 's': {
      if (parts.length !== 3) throw new CursorError(`cursor ${show}: a subject cursor is s.<ordo-seq>.<partition>.<offset>`);
      const partition = int(parts[1], 'partition');
      if (partition > BigInt(MAX_PARTITION)) throw new CursorError(`cursor ${show}: partition ${partition} is beyond Kafka's`);
      return { kind: 'subject', seq: int(parts[0], 'ordo-seq'), partition: Number(partition), offset: int(parts[2], 'offset') };
    }
    case 'v':
      if (parts.length === 0 || parts.length > MAX_VECTOR) throw new CursorError(`cursor ${show}: a vector cursor is v.<next offset of partition 0>.<of partition 1>... (1-${MAX_VECTOR} partitions)`);
      return { kind: 'vector', next: parts.map((p, i) => int(p, `partition ${i}'s offset`)) };
    default:
      throw new CursorError(`cursor ${show} is not one of Ordo's: it starts with g. (global), s. (one subject) or v. (offsets per partition)`);
  }
}

/**
 * Where a reader of `stream` (a topic of `partitions` partitions) starts after `cursor`:
 * the partitions to read and the next offset of each. A subject cursor reads only its
 * subject's partition. CursorError when the cursor cannot be one of this stream's.
 */
export function startPositions(cursor: StreamCursor, stream: StreamName, partitions: number): Map<number, bigint> {
  switch (cursor.kind) {
    case 'global':
      if (stream !== 'global') throw new CursorError(`cursor ${encodeCursor(cursor)} is a global-stream cursor; this is the ${stream} stream`);
      return new Map([[0, cursor.offset + 1n]]);
    case 'subject':
      if (stream !== 'ordered') throw new CursorError(`cursor ${encodeCursor(cursor)} is an ordered-stream (one subject) cursor; this is the ${stream} stream`);
      if (cursor.partition >= partitions) throw new CursorError(`cursor ${encodeCursor(cursor)} names partition ${cursor.partition}; the ${stream} stream has ${partitions}`);
      return new Map([[cursor.partition, cursor.offset + 1n]]);
    case 'vector':
      if (cursor.next.length !== partitions) {
        throw new CursorError(`cursor ${encodeCursor(cursor).slice(0, 64)} has offsets of ${cursor.next.length} partitions; the ${stream} stream has ${partitions}`);
      }
      return new Map(cursor.next.map((next, partition) => [partition, next]));
  }
}

/** How the ids of one stream are made (see cursorMode). */
export type CursorMode = 'global' | 'subject' | 'vector';

/** Global stream: its sequence; ordered stream filtered to exactly one subject: that subject's `ordo-seq`; otherwise offsets. */
export function cursorMode(stream: StreamName, subjects: readonly string[] | undefined): CursorMode {
  if (stream === 'global') return 'global';
  return subjects?.length === 1 ? 'subject' : 'vector';
}

/** A record as the cursor of the next one needs it. */
export interface CursorRecord {
  partition: number;
  offset: string;
  headers: Headers;
}

/**
 * Follows one reader in delivery order and gives the cursor after each record it delivers.
 * Every record the reader passes, delivered or filtered out, must go through `pass` in the
 * order read, so a vector cursor never points past a record the client did not get.
 */
export class CursorTracker {
  private readonly next: Map<number, bigint>;

  constructor(
    readonly mode: CursorMode,
    /** The reader's start positions, every partition it reads. */
    start: Positions,
    /** The stream's partition count (the vector's length). */
    private readonly partitions: number,
  ) {
    this.next = new Map(start);
  }

  /** A record read: its partition's position moves past it. */
  pass(record: Pick<CursorRecord, 'partition' | 'offset'>): void {
    const after = BigInt(record.offset) + 1n;
    if (after > (this.next.get(record.partition) ?? 0n)) this.next.set(record.partition, after);
  }

  /**
   * The cursor after `record` (passed already). A global or subject cursor needs the
   * record's sequence header; a record without one (written by something other than Ordo)
   * gets a vector cursor, which resumes as well.
   */
  cursorAfter(record: CursorRecord): StreamCursor {
    const offset = BigInt(record.offset);
    if (this.mode !== 'vector') {
      const seq = sequence(record.headers[this.mode === 'global' ? HEADER.globalSeq : HEADER.seq]);
      if (seq !== undefined) return this.mode === 'global' ? { kind: 'global', seq, offset } : { kind: 'subject', seq, partition: record.partition, offset };
    }
    return { kind: 'vector', next: this.positions() };
  }

  /** The vector cursor of everything passed so far (partitions not read: 0). */
  positions(): bigint[] {
    return Array.from({ length: this.partitions }, (_, p) => this.next.get(p) ?? 0n);
  }
}

function sequence(value: Headers[string]): bigint | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.toString();
  return NUMBER.test(text) ? BigInt(text) : undefined;
}
