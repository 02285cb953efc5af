import type { Positions } from '../model/stream-cursor.js';
import type { SourceRecord } from '../model/records.js';
import type { PartitionRing } from './stream-ring.js';

/** Bytes a buffered record costs, roughly: its key, value and headers, plus the object around them. */
export function recordBytes(record: SourceRecord): number {
  let bytes = 200 + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  for (const [name, value] of Object.entries(record.headers)) {
    bytes += name.length;
    for (const v of Array.isArray(value) ? value : [value]) bytes += v === undefined ? 0 : v.length;
  }
  return bytes;
}

interface PartitionState {
  /**
   * Every committed record of the partition from the reader's start up to (not including)
   * `have` was delivered or is in the buffer: where a catch-up consumer (re)starts.
   */
  have: bigint;
  /** Records of this partition in the buffer. */
  buffered: number;
  /** In tail mode: absolute index of the next ring record to look at. */
  index: number;
}

/** What `take` found besides records: the reader fell off the tail (needs a catch-up consumer from `positions()`). */
export interface Taken {
  records: SourceRecord[];
  fellBehind: boolean;
}

/**
 * One reader's place in each partition and the merge of its two sources, pure (no Kafka):
 * records a catch-up consumer fetched (the buffer, in arrival order) and, once the tail
 * covers every position, the tail follower's rings. The invariant: per partition, every
 * committed record with an offset >= the start is returned once, in offset order.
 *
 *   catch-up  batches come in through `accept` (a batch must start at or before `have`:
 *             a later start is a gap, the records between were deleted); `tryTail` moves
 *             to the tail once each ring covers `have`.
 *   tail      the buffer drains first, then ring records with offsets >= `have` in the
 *             tail's arrival order across partitions. A ring that evicted a record the
 *             reader had not taken makes `take` report `fellBehind`: the reader is back in
 *             catch-up mode from `have`, its buffer kept.
 */
export class ReaderState {
  private readonly parts = new Map<number, PartitionState>();
  private readonly buffer: SourceRecord[] = [];
  /** recordBytes of each buffered record (computed once). */
  private readonly sizes: number[] = [];
  private bufferHead = 0;
  private bytes = 0;
  private tail = false;

  constructor(
    from: Positions,
    /** The tail's ring of each partition. */
    private readonly rings: ReadonlyMap<number, PartitionRing>,
    /** False when the tail keeps no records (tailRecords 0): the reader stays a catch-up reader. */
    private readonly switchable: boolean,
  ) {
    for (const [partition, next] of from) this.parts.set(partition, { have: next, buffered: 0, index: 0 });
    // A reader of no partition has nothing to catch up with.
    if (this.parts.size === 0) this.tail = true;
    else this.tryTail();
  }

  get mode(): 'tail' | 'catch-up' {
    return this.tail ? 'tail' : 'catch-up';
  }

  /** Per partition, where a catch-up consumer must read from (what the reader has not got yet). */
  positions(): Map<number, bigint> {
    return new Map([...this.parts].map(([p, s]) => [p, s.have]));
  }

  partitions(): number[] {
    return [...this.parts.keys()];
  }

  /** Bytes of records fetched and not taken yet (recordBytes). */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /**
   * A catch-up batch of `partition` (first/last offsets including markers and aborted
   * records; its committed records in offset order). Records the reader has already are
   * skipped (a batch fetched before a seek applied). 'gap' when the batch starts after
   * `have`: the records in between are gone (deleted by retention), nothing is taken.
   */
  accept(partition: number, first: bigint, last: bigint, records: readonly SourceRecord[]): 'ok' | 'gap' | 'ignored' {
    const state = this.parts.get(partition);
    if (state === undefined || this.tail) return 'ignored';
    if (first > state.have) return 'gap';
    for (const record of records) {
      const offset = BigInt(record.offset);
      if (offset < state.have || offset > last) continue;
      const size = recordBytes(record);
      this.buffer.push(record);
      this.sizes.push(size);
      this.bytes += size;
      state.buffered += 1;
      state.have = offset + 1n;
    }
    if (last + 1n > state.have) state.have = last + 1n;
    return 'ok';
  }

  /** In catch-up mode: switches to the tail if every ring covers the reader's positions (the caller then closes the consumer). */
  tryTail(): boolean {
    if (this.tail || !this.switchable) return false;
    for (const [partition, state] of this.parts) {
      const ring = this.rings.get(partition);
      if (ring === undefined || ring.coveredFrom > state.have) return false;
    }
    for (const [partition, state] of this.parts) state.index = this.rings.get(partition)!.indexOf(state.have);
    this.tail = true;
    return true;
  }

  /** Up to `max` records in delivery order. */
  take(max: number): Taken {
    const records: SourceRecord[] = [];
    while (records.length < max && this.bufferHead < this.buffer.length) {
      const record = this.buffer[this.bufferHead]!;
      this.buffer[this.bufferHead] = undefined as unknown as SourceRecord;
      this.bytes -= this.sizes[this.bufferHead]!;
      this.bufferHead += 1;
      this.parts.get(record.partition)!.buffered -= 1;
      records.push(record);
    }
    if (this.bufferHead === this.buffer.length) {
      this.buffer.length = 0;
      this.sizes.length = 0;
      this.bufferHead = 0;
    } else if (this.bufferHead > 1024 && this.bufferHead * 2 > this.buffer.length) {
      this.buffer.splice(0, this.bufferHead);
      this.sizes.splice(0, this.bufferHead);
      this.bufferHead = 0;
    }
    if (!this.tail) return { records, fellBehind: false };
    const fellBehind = this.takeFromRings(records, max);
    if (fellBehind) this.tail = false;
    return { records, fellBehind };
  }

  /** Ring records after the buffer (a partition's ring only once its buffered records are taken). */
  private takeFromRings(records: SourceRecord[], max: number): boolean {
    for (;;) {
      let best: { state: PartitionState; ring: PartitionRing; seq: number } | undefined;
      for (const [partition, state] of this.parts) {
        if (state.buffered > 0) continue;
        const ring = this.rings.get(partition)!;
        if (!this.place(state, ring)) return true;
        if (state.index >= ring.endIndex) {
          // Read all the ring holds: markers after the last record are passed too.
          if (ring.next > state.have) state.have = ring.next;
          continue;
        }
        const seq = ring.seqAt(state.index)!;
        if (best === undefined || seq < best.seq) best = { state, ring, seq };
      }
      if (best === undefined || records.length >= max) return false;
      const record = best.ring.at(best.state.index)!;
      best.state.have = best.ring.offsetAt(best.state.index)! + 1n;
      best.state.index += 1;
      records.push(record);
    }
  }

  /** Whether `take` may return something now (or report falling behind). */
  ready(): boolean {
    if (this.bufferHead < this.buffer.length) return true;
    if (!this.tail) return false;
    for (const [partition, state] of this.parts) {
      const ring = this.rings.get(partition)!;
      if (!this.place(state, ring) || state.index < ring.endIndex) return true;
    }
    return false;
  }

  /**
   * Moves the partition's ring index to its first record at or after `have`; false if the
   * ring no longer covers `have` (a record the reader has not taken was evicted).
   */
  private place(state: PartitionState, ring: PartitionRing): boolean {
    if (state.index < ring.firstIndex) {
      if (ring.coveredFrom > state.have) return false;
      state.index = ring.indexOf(state.have);
    }
    // Records before `have` came through the catch-up consumer already.
    while (state.index < ring.endIndex && ring.offsetAt(state.index)! < state.have) state.index += 1;
    return true;
  }
}
