import type { Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import type { Positions } from '../model/stream-cursor.js';
import { QueryError } from '../errors.js';
import { PartitionFollower } from './stream-consumer.js';
import type { PartitionRing } from './stream-ring.js';
import { ReaderState } from './stream-reader-state.js';

/** What a reader needs from its stream source. */
export interface ReaderHost {
  kafka: Kafka;
  topic: string;
  partitions: number;
  /** Consumer group prefix: a catch-up consumer joins `<group>-catch-up-<8 hex>`. */
  group: string;
  logger: Logger;
  rings: ReadonlyMap<number, PartitionRing>;
  /** False when the tail keeps no records: readers never switch to it. */
  switchable: boolean;
  /** Unread bytes a catch-up reader buffers before its consumer holds (fetches no more). */
  bufferBytes: number;
  /** Takes a catch-up slot (false: all taken). */
  acquireCatchUp(): boolean;
  releaseCatchUp(): void;
  /** The source's failure (the tail cannot go on), if any. */
  failure(): Error | undefined;
  /** The 410 for a reader whose next records were deleted (with the earliest cursor). */
  expired(detail: string): Promise<QueryError>;
  /** Calls `wake` at the tail's next append (once); returns the unsubscribe. */
  onTail(wake: () => void): () => void;
  closed(reader: StreamReader): void;
  /** Deletes a consumer group left for good (best effort: the broker would drop it within its retention check anyway). */
  forget(groupId: string): Promise<void>;
}

export interface StreamReader {
  /**
   * The next committed records (read_committed) in delivery order: per partition in offset
   * order, every record with offset >= from[p] exactly once, across calls. At most `max`;
   * waits up to `waitMs` for the first one; resolves [] when none came (or when `signal`
   * aborts). Rejects if the source failed.
   */
  next(max: number, waitMs: number, signal?: AbortSignal): Promise<SourceRecord[]>;
  close(): Promise<void>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

export function tooManyReaders(): QueryError {
  return new QueryError('too-many-readers', 'too many readers of older records at once on this replica; retry in a moment', 503, { headers: { 'retry-after': '1' } });
}

/**
 * A reader of a stream source: at the tail it reads the source's rings (no Kafka resource
 * of its own); behind it, a catch-up consumer of its own (a slot of maxCatchUps) fills its
 * buffer from its positions until the rings cover them, then closes. The pure merge is
 * ReaderState; this class owns the consumer, the slot and the waiting.
 */
export class SourceReader implements StreamReader {
  private readonly state: ReaderState;
  private follower: PartitionFollower | undefined;
  private isClosed = false;
  /** The catch-up consumer failed for good. */
  private error: Error | undefined;
  /** The next records of a partition were deleted before they were read. */
  private gap: string | undefined;
  private wake: (() => void) | undefined;
  private busy = false;

  constructor(
    private readonly host: ReaderHost,
    from: Positions,
  ) {
    this.state = new ReaderState(from, host.rings, host.switchable);
  }

  get mode(): 'tail' | 'catch-up' {
    return this.state.mode;
  }

  /** Bytes fetched by its catch-up consumer and not read yet (bounded by the source's readerBufferBytes plus one fetch). */
  get bufferedBytes(): number {
    return this.state.bufferedBytes;
  }

  /** Whether a catch-up consumer is open for this reader. */
  get catchingUp(): boolean {
    return this.follower !== undefined;
  }

  /** Opens the catch-up consumer if the reader is behind the tail; QueryError too-many-readers if no slot is free. */
  ensureCatchUp(): void {
    if (this.isClosed || this.state.mode === 'tail' || this.follower !== undefined || this.gap !== undefined || this.error !== undefined) return;
    if (!this.host.acquireCatchUp()) throw tooManyReaders();
    const h = this.host;
    const follower: PartitionFollower = new PartitionFollower({
      kafka: h.kafka,
      topic: h.topic,
      partitions: h.partitions,
      group: `${h.group}-catch-up`,
      logger: h.logger,
      positions: () => this.state.positions(),
      full: () => this.state.bufferedBytes >= this.host.bufferBytes,
      onBatch: (partition, first, last, records) => this.onBatch(follower, partition, first, last, records),
      onFailure: (error) => {
        if (this.follower !== follower) return;
        this.error = asError(error);
        this.endCatchUp();
      },
    });
    this.follower = follower;
    follower.start().catch((error: unknown) => {
      if (this.follower !== follower) return;
      h.logger.error('stream catch-up consumer did not start', { topic: h.topic, group: follower.groupId, error });
      this.error = asError(error);
      this.endCatchUp();
    });
  }

  private onBatch(from: PartitionFollower, partition: number, first: bigint, last: bigint, records: SourceRecord[]): void {
    // A consumer being closed may still hand over a batch: only the current one counts.
    if (this.follower !== from || this.isClosed) return;
    if (this.state.accept(partition, first, last, records) === 'gap') {
      this.gap = `partition ${partition} has no records from ${this.state.positions().get(partition)} to ${first} any more (deleted by retention)`;
      this.endCatchUp();
      return;
    }
    if (this.state.tryTail()) this.endCatchUp();
    this.notify();
  }

  /** Closes the catch-up consumer (caught up, failed, or the reader closed) and frees its slot. */
  private endCatchUp(): void {
    const follower = this.follower;
    if (follower === undefined) return;
    this.follower = undefined;
    this.host.releaseCatchUp();
    void follower.stop().then(() => this.host.forget(follower.groupId));
    this.notify();
  }

  async next(max: number, waitMs: number, signal?: AbortSignal): Promise<SourceRecord[]> {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max ${max} is not a positive integer`);
    if (!(waitMs >= 0)) throw new RangeError(`waitMs ${waitMs} is not a non-negative number`);
    // One wait at a time: a second caller would steal the first one's wake-up.
    if (this.busy) throw new Error('StreamReader.next() called while another call is pending');
    this.busy = true;
    try {
      return await this.read(max, Date.now() + waitMs, signal);
    } finally {
      this.busy = false;
    }
  }

  private async read(max: number, deadline: number, signal: AbortSignal | undefined): Promise<SourceRecord[]> {
    for (;;) {
      if (this.isClosed) return [];
      const failure = this.host.failure();
      if (failure !== undefined) throw failure;
      const taken = this.state.take(max);
      if (this.state.bufferedBytes < this.host.bufferBytes) this.follower?.release();
      if (taken.fellBehind) this.host.logger.debug('a stream reader fell behind the tail; catching up', { topic: this.host.topic });
      if (taken.records.length > 0) return taken.records;
      if (this.error !== undefined) throw this.error;
      if (this.gap !== undefined) throw await this.host.expired(this.gap);
      // Behind the tail (from the start or fallen off it): a consumer of its own; throws when no slot is free.
      this.ensureCatchUp();
      if (signal?.aborted || Date.now() >= deadline) return [];
      await this.waitForMore(deadline - Date.now(), signal);
    }
  }

  private async waitForMore(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.state.ready()) return;
    let unsubscribe: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        // setTimeout fires at once for more than 2^31-1 ms: a longer wait is woken by that bound and goes on waiting.
        timer = setTimeout(resolve, Math.min(ms, MAX_TIMER_MS));
        if (signal) {
          onAbort = resolve;
          signal.addEventListener('abort', onAbort, { once: true });
        }
        if (this.state.mode === 'tail') unsubscribe = this.host.onTail(resolve);
      });
    } finally {
      this.wake = undefined;
      clearTimeout(timer);
      unsubscribe?.();
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Wakes a pending next() (a batch came, the source failed, the reader closed). */
  notify(): void {
    this.wake?.();
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const follower = this.follower;
    this.endCatchUp();
    this.host.closed(this);
    this.notify();
    await follower?.stop();
  }
}
