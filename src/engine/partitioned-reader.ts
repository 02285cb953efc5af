import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { waitForTopic } from '../kafka/topics.js';
import { classify, fatalMessage } from './error-policy.js';
import { Liveness } from './liveness.js';
import { ReadProgress, type ReaderProgress } from './read-progress.js';
import { RepeatedFailures, retrying } from './retry.js';
import { stickyAssigner } from './sticky-assigner.js';
import { batchRecords } from './topic-reader.js';

/** What the reader needs of the local store: its checkpoints and a way to forget a partition. */
export interface CheckpointedStore {
  /** Next offset to read per partition held, and when it was last applied (ms, wall clock). */
  held(): Map<number, { nextOffset: bigint; appliedAt: number }>;
  drop(partition: number): Promise<void>;
}

/** Where reading a partition starts, and why (logged; tested). */
export type StartDecision = { from: 'checkpoint'; offset: bigint } | { from: 'beginning'; offset: bigint; drop: boolean; why: string };

/**
 * The tombstone-safety rules (pure): a checkpoint is resumed only when the log still holds
 * every record after it. Below the log start (records deleted), above the log end (the topic
 * was recreated), or older than delete.retention.ms (a tombstone written after it may be gone
 * by now, and the deleted key would live on in the store): the partition is dropped and read
 * from the beginning.
 */
export function startOf(
  checkpoint: { nextOffset: bigint; appliedAt: number } | undefined,
  log: { low: bigint; high: bigint },
  deleteRetentionMs: number | undefined,
  now: number,
): StartDecision {
  if (checkpoint === undefined) return { from: 'beginning', offset: log.low, drop: false, why: 'no checkpoint' };
  const { nextOffset, appliedAt } = checkpoint;
  if (nextOffset < log.low) return { from: 'beginning', offset: log.low, drop: true, why: `checkpoint ${nextOffset} is below the log start ${log.low}` };
  if (nextOffset > log.high) return { from: 'beginning', offset: log.low, drop: true, why: `checkpoint ${nextOffset} is above the log end ${log.high} (topic recreated?)` };
  if (deleteRetentionMs !== undefined && now - appliedAt > deleteRetentionMs) {
    return { from: 'beginning', offset: log.low, drop: true, why: `checkpoint is ${now - appliedAt} ms old, older than delete.retention.ms (${deleteRetentionMs} ms): a tombstone may have been missed` };
  }
  return { from: 'checkpoint', offset: nextOffset };
}

/** One assigned or held partition as the node registry and the router see it. */
export interface HeldPartition {
  /** Next offset to read (what the store holds up to). */
  next: bigint;
  /** Log end last seen, undefined if not known. */
  end: bigint | undefined;
  /**
   * Not (yet) a consistent copy: read from a checkpoint this process has not seen caught up,
   * or cut short by a revocation. A compacted log read part way is no state the topic ever
   * had (a key updated later may be missing), so only the owner's own progress tells.
   */
  restoring: boolean;
}

export interface PartitionedReaderOptions {
  kafka: Kafka;
  topic: string;
  /** The group shared by every replica (`<group>-api-reads`). Offsets are never committed: the store's checkpoints say where to start. */
  groupId: string;
  nodeId: string;
  store: CheckpointedStore;
  /** Applies one fetched batch of ONE partition and its next offset (in one store transaction). */
  apply(partition: number, records: SourceRecord[], nextOffset: bigint): Promise<void>;
  logger: Logger;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs?: number;
  /** How often the end offsets are refreshed from the broker. */
  refreshMs?: number;
  liveness?: Liveness;
  /** After start: the reader cannot go on. */
  onFailure?: (error: unknown) => void;
  /** After every assignment once each assigned partition is positioned, and whenever a partition stops restoring. */
  onChange?: () => void;
  now?: () => number;
}

/**
 * Reads this replica's share of a topic: ONE consumer group for every replica, assigned by
 * the sticky assigner from each member's checkpoints, so a partition stays (or moves) where
 * the least is left to read. On every assignment each partition is paused, positioned by the
 * store's checkpoint (startOf), then resumed; a batch is applied with its next offset in one
 * store transaction, so the store and its checkpoint never disagree.
 */
export class PartitionedReader {
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private readonly read = new ReadProgress();
  private readonly liveness: Liveness;
  private readonly refreshFailures: RepeatedFailures;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failure: Error | undefined;
  private generation = 0;
  /** Assigned now. */
  private owned = new Set<number>();
  /** Assigned and positioned: fetching. */
  private readonly positioned = new Set<number>();
  /** Partitions whose store copy was seen caught up (a consistent copy) since it was positioned. */
  private readonly consistent = new Set<number>();
  /** Per assigned partition not yet consistent: the end it must reach. */
  private readonly restoreTargets = new Map<number, bigint>();
  private partitionCount = 0;
  private deleteRetentionMs: number | undefined;
  private markPositioned: () => void = () => undefined;
  /** Resolves once a first assignment is positioned (or the reader stops). */
  private readonly firstPositioned = new Promise<void>((resolve) => (this.markPositioned = resolve));

  constructor(private readonly options: PartitionedReaderOptions) {
    this.liveness = options.liveness ?? new Liveness(120_000);
    this.refreshFailures = new RepeatedFailures({ what: 'end offset refresh', meta: { topic: options.topic }, log: options.logger, liveness: this.liveness });
  }

  /** Resolves once the topic exists and the consumer runs (its first assignment may come later). */
  async start(): Promise<void> {
    const o = this.options;
    const admin = (this.admin = o.kafka.admin());
    const ready = await retrying(
      async () => {
        await admin.connect();
        await waitForTopic(admin, o.topic, { stopped: () => this.stopped, logger: o.logger });
        await this.refreshEnds();
        await this.refreshRetention();
      },
      { what: 'partitioned reader start', meta: { topic: o.topic }, log: o.logger, liveness: this.liveness, abandoned: () => this.stopped },
    );
    if (!ready.ok) {
      if (ready.why === 'abandoned') return;
      throw ready.error;
    }
    if (this.stopped) return;
    const consumer = o.kafka.consumer({
      groupId: o.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      rebalanceTimeout: o.rebalanceTimeoutMs ?? o.sessionTimeoutMs,
      partitionAssigners: [stickyAssigner(() => ({ node: o.nodeId, held: new Map([...o.store.held()].map(([p, c]) => [p, c.nextOffset])) }))],
      retry: { restartOnFailure: (error) => Promise.resolve(classify(error) === 'retry') },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart && !this.stopped) this.fail(event.payload.error);
    });
    // Synchronous up to the pause: kafkajs fetches right after this event, and must not fetch
    // an assigned partition before it is positioned.
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assigned = event.payload.memberAssignment[o.topic] ?? [];
      const generation = ++this.generation;
      const revoked = [...this.owned].filter((p) => !assigned.includes(p));
      this.owned = new Set(assigned);
      this.positioned.clear();
      for (const p of revoked) this.restoreTargets.delete(p);
      if (assigned.length > 0) consumer.pause([{ topic: o.topic, partitions: assigned }]);
      o.logger.info('partitions assigned', { topic: o.topic, group: o.groupId, partitions: assigned, revoked });
      void this.position(consumer, assigned, generation);
      o.onChange?.();
    });
    // kafkajs does not call eachBatch for a batch of only transaction markers (or aborted
    // records), but says where it ended here: the checkpoint moves past them too, or a
    // partition ending with a commit marker would never look caught up.
    consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
      const { partition, lastOffset, highWatermark } = event.payload;
      const next = BigInt(lastOffset) + 1n;
      if (!this.positioned.has(partition) || next <= this.read.appliedOf(partition)) return;
      const generation = this.generation;
      o.apply(partition, [], next).then(
        () => {
          if (generation !== this.generation) return;
          this.read.advance(partition, next, BigInt(highWatermark));
          this.checkRestored(partition);
        },
        (error: unknown) => this.fail(error),
      );
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        // A batch fetched before a revocation or a re-positioning is not applied: the next
        // assignment positions the partition again from the store.
        if (!this.positioned.has(batch.partition)) return;
        const next = BigInt(batch.lastOffset()) + 1n;
        if (next <= this.read.appliedOf(batch.partition)) return;
        await o.apply(batch.partition, batchRecords(batch), next);
        this.read.advance(batch.partition, next, BigInt(batch.highWatermark));
        this.checkRestored(batch.partition);
      },
    });
    this.timer = setInterval(() => {
      this.refreshEnds().then(
        () => this.refreshFailures.succeeded(),
        (error: unknown) => {
          const next = this.refreshFailures.failed(error);
          if (!next.ok && !this.stopped) this.fail(next.error);
        },
      );
    }, o.refreshMs ?? 2_000);
    this.timer.unref();
  }

  /** The partitions of the topic (0 until known). */
  partitions(): number {
    return this.partitionCount;
  }

  /** Assigned to this replica now. */
  ownedPartitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  /** Every partition the store holds (owned or not), with how far and whether it is a consistent copy. */
  heldPartitions(): Map<number, HeldPartition> {
    const out = new Map<number, HeldPartition>();
    for (const [p, checkpoint] of this.options.store.held()) {
      out.set(p, { next: checkpoint.nextOffset, end: this.read.endOf(p), restoring: !this.consistent.has(p) || (this.owned.has(p) && !this.positioned.has(p)) });
    }
    for (const p of this.owned) {
      if (!out.has(p)) out.set(p, { next: this.read.appliedOf(p), end: this.read.endOf(p), restoring: true });
    }
    return out;
  }

  /** Progress of the owned partitions (default) or of the given ones. */
  progress(partitions?: Iterable<number>): ReaderProgress {
    return this.read.progress(partitions ?? this.ownedPartitions());
  }

  /** Per partition: the next offset applied (what read-your-writes compares with). */
  applied(): Map<number, bigint> {
    const out = new Map<number, bigint>();
    for (const p of this.owned) if (this.positioned.has(p)) out.set(p, this.read.appliedOf(p));
    return out;
  }

  /**
   * Resolves once this replica has its first assignment positioned and every owned partition
   * is applied up to the end offsets known then (false: stopped, or `timeoutMs` passed).
   */
  async caughtUp(timeoutMs?: number): Promise<boolean> {
    await this.firstPositioned;
    const refreshed = await retrying(() => this.refreshEnds(), { what: 'end offset refresh', meta: { topic: this.options.topic }, log: this.options.logger, liveness: this.liveness, abandoned: () => this.stopped });
    if (!refreshed.ok) {
      if (refreshed.why === 'abandoned') return false;
      throw refreshed.error;
    }
    return this.waitApplied(this.read.endsNow(this.owned), timeoutMs);
  }

  /** Resolves true once each partition has applied up to its offset (read-your-writes), false after `timeoutMs`. */
  async waitApplied(target: ReadonlyMap<number, bigint>, timeoutMs?: number): Promise<boolean> {
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        this.read.wake();
      }, timeoutMs);
    }
    try {
      await this.read.waitFor(target, {
        stopped: () => this.stopped || timedOut,
        failure: () => this.failure,
        logger: this.options.logger,
        meta: () => ({ topic: this.options.topic, group: this.options.groupId }),
      });
    } finally {
      clearTimeout(timer);
    }
    return this.read.reached(target);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.markPositioned();
    if (this.timer) clearInterval(this.timer);
    this.refreshFailures.close();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.read.wake();
  }

  /** Positions the assigned partitions from the store's checkpoints (startOf), then resumes them; a newer assignment takes over. */
  private async position(consumer: Consumer, assigned: number[], generation: number): Promise<void> {
    const o = this.options;
    const done = await retrying(
      async () => {
        if (generation !== this.generation || this.stopped) return;
        const logs = await this.admin!.fetchTopicOffsets(o.topic);
        await this.refreshRetention();
        const checkpoints = o.store.held();
        const now = (o.now ?? Date.now)();
        for (const p of assigned) {
          if (generation !== this.generation || this.stopped) return;
          const log = logs.find((l) => l.partition === p);
          if (log === undefined) throw new Error(`partition ${p} of ${o.topic} is not in the topic's offsets`);
          const low = BigInt(log.low);
          const high = BigInt(log.high);
          const decision = startOf(checkpoints.get(p), { low, high }, this.deleteRetentionMs, now);
          if (decision.from === 'beginning' && decision.drop) {
            o.logger.warn('read store partition dropped: read again from the beginning', { topic: o.topic, partition: p, why: decision.why });
            await o.store.drop(p);
            this.consistent.delete(p);
          }
          if (decision.from === 'beginning') this.consistent.delete(p);
          this.read.reset(p, decision.offset);
          this.read.advance(p, undefined, high);
          if (!this.consistent.has(p)) this.restoreTargets.set(p, high);
          consumer.seek({ topic: o.topic, partition: p, offset: decision.offset.toString() });
        }
        if (generation !== this.generation || this.stopped) return;
        for (const p of assigned) this.positioned.add(p);
        if (assigned.length > 0) consumer.resume([{ topic: o.topic, partitions: assigned }]);
        for (const p of assigned) this.checkRestored(p);
        this.markPositioned();
      },
      { what: 'positioning assigned partitions', meta: { topic: o.topic }, log: o.logger, liveness: this.liveness, abandoned: () => this.stopped || generation !== this.generation },
    );
    if (!done.ok) {
      if (done.why !== 'abandoned') this.fail(done.error);
      return;
    }
    o.onChange?.();
  }

  /** An owned partition that reached its restore target is a consistent copy from now on. */
  private checkRestored(p: number): void {
    const target = this.restoreTargets.get(p);
    if (target === undefined || !this.positioned.has(p) || this.read.appliedOf(p) < target) return;
    this.restoreTargets.delete(p);
    this.consistent.add(p);
    this.options.logger.info('partition restored', { topic: this.options.topic, partition: p, offset: this.read.appliedOf(p).toString() });
    this.options.onChange?.();
  }

  private async refreshEnds(): Promise<void> {
    if (!this.admin) return;
    const offsets = await this.admin.fetchTopicOffsets(this.options.topic);
    this.partitionCount = offsets.length;
    // Only the ends: what was applied is the store's, never moved past the log start by a
    // refresh (the store must read the records themselves, tombstones included).
    for (const { partition, high } of offsets) this.read.advance(partition, undefined, BigInt(high));
    for (const p of this.owned) this.checkRestored(p);
  }

  /** The topic's delete.retention.ms (how long a tombstone stays after compaction): the age past which a checkpoint is not trusted. */
  private async refreshRetention(): Promise<void> {
    if (!this.admin) return;
    const described = await this.admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2 /* TOPIC */, name: this.options.topic, configNames: ['delete.retention.ms'] }] });
    const value = described.resources[0]?.configEntries.find((e) => e.configName === 'delete.retention.ms')?.configValue;
    const ms = value === undefined ? NaN : Number(value);
    this.deleteRetentionMs = Number.isFinite(ms) ? ms : undefined;
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    const o = this.options;
    o.logger.error(`reader stopped: ${fatalMessage(error, `reading ${o.topic} as group ${o.groupId}`)}`, { topic: o.topic, error });
    o.onFailure?.(error);
    this.read.wake();
  }
}
