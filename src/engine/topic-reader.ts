import { randomBytes } from 'node:crypto';
import type { Admin, Batch, Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import { waitForTopic } from '../kafka/topics.js';
import { classify, fatalMessage } from './error-policy.js';
import { Liveness } from './liveness.js';
import { ReadProgress, type ReaderProgress } from './read-progress.js';
import { RepeatedFailures, retrying } from './retry.js';

export type { PartitionProgress, ReaderProgress } from './read-progress.js';

/** A fetched batch's records as the processors see them. */
export function batchRecords(batch: Batch): SourceRecord[] {
  return batch.messages.map((m) => ({
    topic: batch.topic,
    partition: batch.partition,
    offset: m.offset,
    key: m.key,
    value: m.value,
    headers: m.headers ?? {},
    timestamp: Number(m.timestamp),
  }));
}

export interface TopicReaderOptions {
  kafka: Kafka;
  topic: string;
  /**
   * The prefix of its consumer group: the reader joins `<groupId>-<8 random hex>`, a group of
   * its own per START, so every replica reads every partition and a restarted instance never
   * waits for its predecessor's member to expire (same node id, killed a moment ago). Offsets
   * are never committed; an empty group without offsets is removed by the broker.
   */
  groupId: string;
  /** Applies one fetched batch, in offset order. May be async (e.g. fetch schemas). */
  apply(records: SourceRecord[]): Promise<void> | void;
  logger: Logger;
  /** How often the end offsets are refreshed from the broker. */
  refreshMs?: number;
  /** Bounds the retries of transient failures (and reports them to /healthz); default: 2 minutes. */
  liveness?: Liveness;
  /** After start: the reader cannot go on (its consumer crashed for good, or end offsets failed past the bound). */
  onFailure?: (error: unknown) => void;
}

/**
 * Reads a whole topic (read_committed) from the beginning into a caller's table and keeps
 * following it, tracking per partition how far it has applied against the log end, so a
 * reader can tell fresh answers from stale ones. A batch of only transaction markers still
 * moves the applied offset, so a caught-up reader reports no lag.
 */
export class TopicReader {
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private readonly read = new ReadProgress();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly liveness: Liveness;
  private readonly refreshFailures: RepeatedFailures;
  private failure: Error | undefined;
  /** The consumer's group join completed at least once (a caught-up empty topic does not need it; a new record does). */
  private joined = false;

  /** The consumer group actually joined (see TopicReaderOptions.groupId). */
  readonly groupId: string;

  constructor(private readonly options: TopicReaderOptions) {
    this.groupId = `${options.groupId}-${randomBytes(4).toString('hex')}`.slice(0, 255);
    this.liveness = options.liveness ?? new Liveness(120_000);
    this.refreshFailures = new RepeatedFailures({ what: 'end offset refresh', meta: { topic: options.topic }, log: options.logger, liveness: this.liveness });
  }

  /**
   * Starts consuming; resolves once the topic exists, serves, and its end offsets are known
   * (or without starting, if stopped meanwhile). Transient broker errors (a topic just
   * created by another role, a leader moving) are retried; the rest rejects.
   */
  async start(): Promise<void> {
    const o = this.options;
    const admin = (this.admin = o.kafka.admin());
    const ready = await retrying(
      async () => {
        await admin.connect();
        await waitForTopic(admin, o.topic, { stopped: () => this.stopped, logger: o.logger });
        await this.refreshEnds();
      },
      { what: 'topic reader start', meta: { topic: o.topic }, log: o.logger, liveness: this.liveness, abandoned: () => this.stopped },
    );
    if (!ready.ok) {
      if (ready.why === 'abandoned') return;
      throw ready.error;
    }
    if (this.stopped) return;
    // kafkajs restarts a crashed consumer by default, whatever the error: only the shared
    // policy's `retry` kind is restarted; anything else (a missing ACL) stops the reader.
    const consumer = o.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      retry: { restartOnFailure: (error) => Promise.resolve(classify(error) === 'retry') },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart && !this.stopped) this.fail(event.payload.error);
    });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      this.joined = true;
    });
    consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
      const { partition, lastOffset, highWatermark } = event.payload;
      this.read.advance(partition, BigInt(lastOffset) + 1n, BigInt(highWatermark));
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        const records = batchRecords(batch);
        if (records.length > 0) await o.apply(records);
      },
    });
    this.timer = setInterval(() => {
      this.refreshEnds().then(
        () => this.refreshFailures.succeeded(),
        // Only a gauge goes stale meanwhile: keep following; /healthz fails if it lasts.
        (error: unknown) => {
          const next = this.refreshFailures.failed(error);
          if (!next.ok && !this.stopped) this.fail(next.error);
        },
      );
    }, o.refreshMs ?? 2_000);
    this.timer.unref();
  }

  /** Resolves once every partition is applied up to the end offsets known at the time of the call. */
  async caughtUp(): Promise<void> {
    const refreshed = await retrying(() => this.refreshEnds(), { what: 'end offset refresh', meta: { topic: this.options.topic }, log: this.options.logger, liveness: this.liveness, abandoned: () => this.stopped });
    if (!refreshed.ok) {
      if (refreshed.why === 'abandoned') return;
      throw refreshed.error;
    }
    await this.read.waitFor(this.read.endsNow(), {
      stopped: () => this.stopped,
      failure: () => this.failure,
      logger: this.options.logger,
      meta: () => ({ topic: this.options.topic, group: this.groupId, joined: this.joined }),
    });
  }

  progress(): ReaderProgress {
    return this.read.progress();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.refreshFailures.close();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.read.wake();
  }

  private async refreshEnds(): Promise<void> {
    if (!this.admin) return;
    const offsets = await this.admin.fetchTopicOffsets(this.options.topic);
    // An empty (or fully compacted-away) prefix: nothing to apply below the log start.
    for (const { partition, high, low } of offsets) this.read.observeLog(partition, BigInt(low), BigInt(high));
  }

  /** The reader stops for good: said once, with what to fix, to the log and to `onFailure`. */
  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    const o = this.options;
    o.logger.error(`reader stopped: ${fatalMessage(error, `reading ${o.topic} as group ${this.groupId}`)}`, { topic: o.topic, error });
    o.onFailure?.(error);
    this.read.wake();
  }
}
