import type { SourceRecord } from '../model/records.js';

/**
 * The last records of one partition, as the stream source's tail follower read them
 * (read_committed), and the range of offsets they cover. The invariant readers rely on:
 * every committed record with an offset in [coveredFrom, next) is held, in offset order.
 * Transaction markers and aborted records occupy offsets but are never held, so `next`
 * moves past them (to the fetched batch's last offset + 1), not only past held records.
 * When a record is evicted (the ring is full), `coveredFrom` moves past it: a reader still
 * before that offset has fallen off the tail and must catch up from Kafka.
 *
 * Records are addressed by an absolute index (the count of records ever appended) so a
 * reader keeps its place in O(1) and sees at once that its next record was evicted
 * (index < firstIndex).
 */
export class PartitionRing {
  private readonly records: SourceRecord[] = [];
  private readonly seqs: number[] = [];
  /** Slot of the oldest record in `records` once it is full (circular). */
  private head = 0;
  private size = 0;
  /** Absolute index of the oldest record held. */
  private first = 0;
  private covered: bigint;
  private nextOffset: bigint;

  constructor(
    /** Records held at most; 0 holds none (every record is evicted as it comes). */
    readonly capacity: number,
    /** Where the tail starts reading: covered from there, nothing read yet. */
    start: bigint,
  ) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`ring capacity ${capacity} is not a non-negative integer`);
    this.covered = start;
    this.nextOffset = start;
  }

  /** The lowest offset from which every committed record is held. */
  get coveredFrom(): bigint {
    return this.covered;
  }

  /** The offset after everything read (records, markers and aborted records alike). */
  get next(): bigint {
    return this.nextOffset;
  }

  get firstIndex(): number {
    return this.first;
  }

  /** One past the absolute index of the newest record held. */
  get endIndex(): number {
    return this.first + this.size;
  }

  /**
   * A fetched batch of this partition: `first` and `last` are its first and last offsets
   * including markers and aborted records, `records` its committed records in offset order.
   * Records before `next` were read already (a batch fetched again) and are skipped. A batch
   * that starts after `next` leaves a gap (the log start moved past the tail's position):
   * the ring then starts over at `first`, and `false` says so.
   */
  append(first: bigint, last: bigint, records: readonly SourceRecord[], seq: () => number): boolean {
    let contiguous = true;
    if (first > this.nextOffset) {
      contiguous = false;
      this.first += this.size;
      this.size = 0;
      this.head = 0;
      this.records.length = 0;
      this.seqs.length = 0;
      this.covered = first;
      this.nextOffset = first;
    }
    for (const record of records) {
      const offset = BigInt(record.offset);
      if (offset < this.nextOffset || offset > last) continue;
      this.push(record, seq());
      this.nextOffset = offset + 1n;
    }
    if (last + 1n > this.nextOffset) this.nextOffset = last + 1n;
    return contiguous;
  }

  /** The record at absolute `index`, or undefined if evicted or not read yet. */
  at(index: number): SourceRecord | undefined {
    const slot = this.slot(index);
    return slot === undefined ? undefined : this.records[slot];
  }

  /** The arrival number of the record at `index` (the tail's order across partitions), or undefined. */
  seqAt(index: number): number | undefined {
    const slot = this.slot(index);
    return slot === undefined ? undefined : this.seqs[slot];
  }

  /** The absolute index of the first record held with an offset >= `offset` (endIndex if none). */
  indexOf(offset: bigint): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (BigInt(this.records[(this.head + mid) % this.records.length]!.offset) < offset) lo = mid + 1;
      else hi = mid;
    }
    return this.first + lo;
  }

  private slot(index: number): number | undefined {
    if (index < this.first || index >= this.first + this.size) return undefined;
    return (this.head + index - this.first) % this.records.length;
  }

  private push(record: SourceRecord, seq: number): void {
    if (this.capacity === 0) {
      this.first += 1;
      this.covered = BigInt(record.offset) + 1n;
      return;
    }
    if (this.size < this.capacity) {
      this.records.push(record);
      this.seqs.push(seq);
      this.size += 1;
      return;
    }
    // Full: the oldest record leaves; a reader that had not read it is no longer covered.
    const evicted = this.records[this.head]!;
    this.covered = BigInt(evicted.offset) + 1n;
    this.records[this.head] = record;
    this.seqs[this.head] = seq;
    this.head = (this.head + 1) % this.capacity;
    this.first += 1;
  }
}
