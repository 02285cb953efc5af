import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import { encodeCursor, type Positions } from '../model/stream-cursor.js';
import { QueryError } from '../errors.js';
import { waitForTopic } from '../kafka/topics.js';
import { causes, classify } from './error-policy.js';
import { Liveness } from './liveness.js';
import { retrying } from './retry.js';
import { SourceReader, asError, type ReaderHost, type StreamReader } from './stream-reader.js';
import { StreamTail } from './stream-tail.js';

export type { StreamReader } from './stream-reader.js';

export interface StreamSourceOptions {
  kafka: Kafka;
  topic: string;
  /** Prefix of the consumer groups it joins (each consumer its own group, `<prefix>-<purpose>-<8 hex>`, never committed). */
  groupId: string;
  /** Records kept in memory per partition (the tail); 0: none (every reader is a catch-up reader). */
  tailRecords: number;
  /** Catch-up readers (a Kafka consumer each) open at once; beyond it open() throws QueryError('too-many-readers', ..., 503, {headers: {'retry-after': '1'}}). */
  maxCatchUps: number;
  logger: Logger;
  liveness?: Liveness;
  /** The number of catch-up consumers open, at every change (the role sets metrics.deliverCatchUps). */
  onCatchUps?: (open: number) => void;
  /** The tail cannot go on (e.g. missing ACL): the role fails. */
  onFailure?: (error: unknown) => void;
  /** Unread bytes one catch-up reader buffers before its consumer pauses (default 1 MiB; at most about twice this is held). */
  readerBufferBytes?: number;
}

/** A partition's offsets as the broker has them now. */
export interface PartitionBounds {
  /** The earliest offset still stored (the log start). */
  earliest: bigint;
  /**
   * The end as read_committed readers see it: the last stable offset (the high watermark
   * unless a transaction is open; its records lie at and after this end until it commits).
   */
  end: bigint;
}

/**
 * The one reader of a stream topic (ordered or global) for the deliver role's HTTP clients.
 * A shared tail follower (one consumer) keeps the last `tailRecords` of each partition;
 * readers at the tail read those from memory and cost no Kafka resource. A reader behind
 * the tail gets a catch-up consumer of its own (at most `maxCatchUps` at once) that reads
 * from its positions until the tail covers them, then closes. Every committed record with
 * an offset >= the start is delivered once per reader, per partition in offset order,
 * across the switch (see ReaderState for the merge and why it cannot skip or repeat).
 */
export class StreamSource {
  private admin: Admin | undefined;
  private count: number | undefined;
  private tail: StreamTail | undefined;
  private readonly readers = new Set<SourceReader>();
  private readonly tailWaiters = new Set<() => void>();
  private catchUps = 0;
  private failed: Error | undefined;
  private stopped = false;
  private readonly liveness: Liveness;
  private readonly log: Logger;
  private readerHost: ReaderHost | undefined;
  private readonly forgetting = new Set<Promise<void>>();
  private forgetRefused = false;

  constructor(private readonly options: StreamSourceOptions) {
    if (!Number.isInteger(options.tailRecords) || options.tailRecords < 0) throw new RangeError(`tailRecords ${options.tailRecords} is not a non-negative integer`);
    if (!Number.isInteger(options.maxCatchUps) || options.maxCatchUps < 0) throw new RangeError(`maxCatchUps ${options.maxCatchUps} is not a non-negative integer`);
    this.liveness = options.liveness ?? new Liveness(120_000);
    this.log = options.logger.child({ topic: options.topic });
  }

  /** Waits for the topic (retrying transient errors like TopicReader), learns its partition count, starts the tail follower at the current end. */
  async start(): Promise<void> {
    const o = this.options;
    const admin = (this.admin = o.kafka.admin());
    const ready = await retrying(
      async () => {
        await admin.connect();
        const count = await waitForTopic(admin, o.topic, { stopped: () => this.stopped, logger: this.log });
        if (count === undefined) return undefined;
        this.count = count;
        return this.bounds();
      },
      { what: 'stream source start', meta: { topic: o.topic }, log: this.log, liveness: this.liveness, abandoned: () => this.stopped },
    );
    if (!ready.ok) {
      if (ready.why === 'abandoned') return;
      throw ready.error;
    }
    if (this.stopped || ready.value === undefined) return;
    const tail = new StreamTail({
      kafka: o.kafka,
      topic: o.topic,
      partitions: this.count!,
      group: o.groupId,
      starts: new Map([...ready.value].map(([p, b]) => [p, b.end])),
      capacity: o.tailRecords,
      logger: this.log,
      onAppend: () => {
        for (const wake of [...this.tailWaiters]) wake();
      },
      onFailure: (error) => this.fail(error),
    });
    this.tail = tail;
    const started = await retrying(() => tail.start(), { what: 'stream tail start', meta: { topic: o.topic }, log: this.log, liveness: this.liveness, abandoned: () => this.stopped });
    if (!started.ok && started.why !== 'abandoned') throw started.error;
  }

  partitions(): number {
    if (this.count === undefined) throw new Error(`stream source of ${this.options.topic} is not started`);
    return this.count;
  }

  /** Fresh from the broker: per partition the earliest offset still stored (log start) and the end. */
  async bounds(): Promise<Map<number, PartitionBounds>> {
    if (this.admin === undefined) throw new Error(`stream source of ${this.options.topic} is not started`);
    const offsets = await this.admin.fetchTopicOffsets(this.options.topic);
    return new Map(offsets.map((o) => [o.partition, { earliest: BigInt(o.low), end: BigInt(o.high) }]));
  }

  /**
   * A reader from `from` (partitions absent from `from` are not read). Throws QueryError:
   *  - 'cursor-expired' 410 when a position is below its partition's earliest offset, details {earliest: <vector cursor of the earliest offsets>};
   *  - 'cursor-ahead' 400 when a position is beyond its partition's end (a cursor of another topic or cluster);
   *  - 'too-many-readers' 503 (see maxCatchUps).
   */
  async open(from: Positions): Promise<StreamReader> {
    if (this.failed !== undefined) throw this.failed;
    if (this.stopped) throw new QueryError('stopping', `the reader of ${this.options.topic} is stopping; retry on another replica`, 503, { headers: { 'retry-after': '1' } });
    const partitions = this.partitions();
    if (this.tail === undefined) throw new Error(`stream source of ${this.options.topic} is not started`);
    const bounds = await this.bounds();
    for (const [partition, next] of from) {
      const b = bounds.get(partition);
      if (!Number.isInteger(partition) || partition < 0 || b === undefined) {
        throw new QueryError('cursor-ahead', `the stream has no partition ${partition} (it has ${partitions}): a cursor of another topic or cluster?`, 400);
      }
      if (next < b.earliest) throw this.expiredError(bounds, `partition ${partition}'s records before offset ${b.earliest} are deleted (retention); the cursor asks for ${next}`);
      if (next > b.end) throw new QueryError('cursor-ahead', `partition ${partition} ends at offset ${b.end}; the cursor asks for ${next}: a cursor of another topic or cluster?`, 400);
    }
    const reader = new SourceReader((this.readerHost ??= this.host()), from);
    reader.ensureCatchUp();
    this.readers.add(reader);
    return reader;
  }

  /** Catch-up consumers open now. */
  openCatchUps(): number {
    return this.catchUps;
  }

  /** Readers open now (at the tail or catching up). */
  openReaders(): number {
    return this.readers.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.readers].map((r) => r.close()));
    await this.tail?.stop();
    const tailGroup = this.tail?.groupId;
    if (tailGroup !== undefined) await this.forget(tailGroup);
    await Promise.all(this.forgetting);
    await this.admin?.disconnect().catch(() => undefined);
  }

  /**
   * Every catch-up reader joins a group of its own: delete each once its consumer left, so
   * they do not pile up in the broker until its retention check (10 minutes by default)
   * drops them. Best effort: without the Delete ACL on the groups they are left to that.
   */
  private forget(groupId: string): Promise<void> {
    const admin = this.admin;
    if (admin === undefined || this.forgetRefused) return Promise.resolve();
    const done = admin
      .deleteGroups([groupId])
      .then(
        () => undefined,
        (error: unknown) => {
          // Refused (no Delete ACL): do not ask again. Each refusal would also be a fresh
          // authorization failure for the error policy's witness, which reads a coordinator
          // not found soon after one as a missing ACL.
          if (deleteRefused(error) && !this.forgetRefused) {
            this.forgetRefused = true;
            this.log.info('stream reader groups are not deleted (refused); the broker drops them after its retention check', { group: groupId, error });
          } else this.log.debug('could not delete a stream reader group', { group: groupId, error });
        },
      )
      .finally(() => this.forgetting.delete(done));
    this.forgetting.add(done);
    return done;
  }

  private expiredError(bounds: ReadonlyMap<number, PartitionBounds>, detail: string): QueryError {
    const next = Array.from({ length: this.partitions() }, (_, p) => bounds.get(p)?.earliest ?? 0n);
    const earliest = encodeCursor({ kind: 'vector', next });
    return new QueryError('cursor-expired', `${detail}; start again from the earliest cursor`, 410, { details: { earliest } });
  }

  private fail(error: unknown): void {
    if (this.failed !== undefined || this.stopped) return;
    this.failed = asError(error);
    this.options.onFailure?.(error);
    for (const reader of this.readers) reader.notify();
  }

  private host(): ReaderHost {
    const o = this.options;
    return {
      kafka: o.kafka,
      topic: o.topic,
      partitions: this.partitions(),
      group: o.groupId,
      logger: this.log,
      rings: this.tail!.rings,
      switchable: o.tailRecords > 0,
      bufferBytes: o.readerBufferBytes ?? 1_048_576,
      acquireCatchUp: () => {
        if (this.catchUps >= o.maxCatchUps) return false;
        this.catchUps += 1;
        o.onCatchUps?.(this.catchUps);
        return true;
      },
      releaseCatchUp: () => {
        this.catchUps -= 1;
        o.onCatchUps?.(this.catchUps);
      },
      failure: () => this.failed,
      expired: async (detail) => this.expiredError(await this.bounds(), detail),
      onTail: (wake) => {
        const once = (): void => {
          this.tailWaiters.delete(once);
          wake();
        };
        this.tailWaiters.add(once);
        return () => this.tailWaiters.delete(once);
      },
      closed: (reader) => this.readers.delete(reader as SourceReader),
      forget: (groupId) => this.forget(groupId),
    };
  }
}

/** A DeleteGroups refusal (kafkajs reports each group's error in `groups`, not as a cause). */
export function deleteRefused(error: unknown): boolean {
  const groups = (error as { groups?: { error?: unknown }[] } | null)?.groups ?? [];
  return [error, ...groups.map((g) => g.error).filter((e) => e !== undefined)].some((e) => classify(e) === 'fatal' && causes(e).some((c) => c.type?.endsWith('AUTHORIZATION_FAILED') === true));
}
