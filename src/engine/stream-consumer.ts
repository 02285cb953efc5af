import { randomBytes } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import { toSourceRecord } from './batch.js';
import { classify, fatalMessage } from './error-policy.js';

/** How often a held batch heartbeats (well within the 30 s session timeout). */
const HELD_HEARTBEAT_MS = 3_000;

export interface PartitionFollowerOptions {
  kafka: Kafka;
  topic: string;
  /** The topic's partition count (those without a position are paused). */
  partitions: number;
  /** The full group id prefix and purpose: the consumer joins `<group>-<8 random hex>`, a group of its own. */
  group: string;
  logger: Logger;
  /** Where to read each partition from, asked at every group join (a rejoin forgets uncommitted positions). Partitions absent are paused. */
  positions(): ReadonlyMap<number, bigint>;
  /**
   * The caller's buffer is full: the batch just handed over is held (and with it the
   * fetching, since kafkajs fetches again only once its batches are processed) until
   * `release()`. A held batch costs no sleep on release, unlike pause/resume (kafkajs sleeps
   * a whole fetch wait while every partition is paused).
   */
  full?(): boolean;
  /**
   * A fetched batch, in offset order per partition: `first`/`last` are its first and last
   * offsets counting markers and aborted records (a batch of only those comes with no records).
   */
  onBatch(partition: number, first: bigint, last: bigint, records: SourceRecord[]): void;
  /** The consumer crashed for good (a restartable crash is restarted by kafkajs, then re-seeked). */
  onFailure(error: unknown): void;
  /** The fetch wait when nothing is there (lower: fresher end, more idle fetches). */
  maxWaitMs?: number;
  maxBytes?: number;
}

/**
 * A consumer that reads given partitions of a topic from given offsets (read_committed) and
 * hands over each fetched batch with its first and last offset, markers included, so the
 * caller can tell a contiguous batch (first <= its position) from a gap. kafkajs has no
 * assign(): the consumer joins a group of its own (so it gets every partition), subscribes
 * from the beginning (a reset before a seek applies can then only go back, never skip
 * ahead), and seeks to the caller's positions at every join. Nothing is ever committed.
 */
export class PartitionFollower {
  private readonly consumer: Consumer;
  private stopped = false;
  private failed = false;
  private stopping: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private held: (() => void) | undefined;
  readonly groupId: string;

  constructor(private readonly options: PartitionFollowerOptions) {
    const o = options;
    this.groupId = `${o.group}-${randomBytes(4).toString('hex')}`.slice(0, 255);
    const maxBytes = o.maxBytes ?? 1_048_576;
    this.consumer = o.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: o.maxWaitMs ?? 500,
      maxBytes,
      maxBytesPerPartition: maxBytes,
      // kafkajs restarts a crashed consumer whatever the error: only the shared policy's
      // `retry` kind is restarted; anything else (a missing ACL) ends the follower.
      retry: { restartOnFailure: (error) => Promise.resolve(classify(error) === 'retry') },
    });
    const c = this.consumer;
    c.on(c.events.CRASH, (event) => {
      if (event.payload.restart || this.stopped || this.failed) return;
      this.failed = true;
      o.logger.error(`stream reader stopped: ${fatalMessage(event.payload.error, `reading ${o.topic} as group ${this.groupId}`)}`, { topic: o.topic, error: event.payload.error });
      o.onFailure(event.payload.error);
    });
    c.on(c.events.GROUP_JOIN, () => {
      // A (re)join starts every partition at the reset offset: put each back where the caller is.
      if (this.stopped) return;
      const positions = o.positions();
      for (const [partition, offset] of positions) c.seek({ topic: o.topic, partition, offset: offset.toString() });
      this.pauseUnread();
    });
    // A fetch of only transaction markers or aborted records never reaches eachBatch.
    c.on(c.events.END_BATCH_PROCESS, (event) => {
      const { partition, batchSize, firstOffset, lastOffset } = event.payload;
      if (batchSize === 0 && firstOffset !== null && !this.stopped) o.onBatch(partition, BigInt(firstOffset), BigInt(lastOffset), []);
    });
  }

  /** Joins and starts fetching; resolves once the group is joined and the positions are set (at once if stopped meanwhile). */
  start(): Promise<void> {
    this.starting ??= this.run();
    return this.starting;
  }

  private async run(): Promise<void> {
    const o = this.options;
    const c = this.consumer;
    // A stop while starting waits for this to settle before it disconnects: a run() after
    // the disconnect would join the group again and leak a consumer.
    await c.connect();
    if (this.stopped) return;
    await c.subscribe({ topics: [o.topic], fromBeginning: true });
    if (this.stopped) return;
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, heartbeat }) => {
        if (this.stopped || batch.messages.length === 0) return;
        const records = batch.messages.map((m) => toSourceRecord(batch.topic, batch.partition, m));
        o.onBatch(batch.partition, BigInt(batch.firstOffset() ?? batch.messages[0]!.offset), BigInt(batch.lastOffset()), records);
        while (!this.stopped && o.full?.() === true) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, HELD_HEARTBEAT_MS);
            this.held = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.held = undefined;
          // A held batch must not cost the group membership.
          if (!this.stopped) await heartbeat();
        }
      },
    });
  }

  /** The caller's buffer has room again: a held batch goes on. */
  release(): void {
    this.held?.();
  }

  /** Pauses the partitions the caller does not read (no position). */
  private pauseUnread(): void {
    const o = this.options;
    const positions = o.positions();
    const unread: number[] = [];
    for (let p = 0; p < o.partitions; p++) if (!positions.has(p)) unread.push(p);
    if (unread.length > 0) this.consumer.pause([{ topic: o.topic, partitions: unread }]);
  }

  /** Leaves the group and disconnects (the same promise for every call). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      // kafkajs' disconnect waits for the batch in hand: let a held one go.
      this.release();
      await this.starting?.catch(() => undefined);
      await this.consumer.disconnect().catch((error: unknown) => this.options.logger.warn('stream reader disconnect failed', { topic: this.options.topic, group: this.groupId, error }));
    })();
    return this.stopping;
  }
}
