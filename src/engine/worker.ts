import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { FencedError, OrdoError } from '../errors.js';
import type { OrdoConfig } from '../config/config.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { ensureTopics, partitionCount, type TopicSpec } from '../kafka/topics.js';
import { alignToPosition, sleep, toSourceRecord } from './batch.js';
import { ConsumerLag } from './consumer-lag.js';
import { classify, fatalMessage } from './error-policy.js';
import { Lifecycle, type LifecycleState, drainWithin, exportLifecycle } from './lifecycle.js';
import { META_STORE, Task, changelogTopic } from './task.js';
import type { TaskProcessorFactory } from './task-processor.js';

/** The engine settings of the one typed config (documented in src/config/config.ts). */
export type EngineSettings = Pick<
  OrdoConfig,
  | 'groupId'
  | 'topicPartitions'
  | 'replicationFactor'
  | 'createTopics'
  | 'maxBatchRecords'
  | 'maxBytesPerPartition'
  | 'sessionTimeoutMs'
  | 'heartbeatIntervalMs'
  | 'rebalanceTimeoutMs'
  | 'transactionTimeoutMs'
  | 'shutdownGraceMs'
>;

export interface WorkerOptions extends EngineSettings {
  kafka: Kafka;
  inputTopic: string;
  /** Output topics the processors write (created if missing, co-partitioned with the input). */
  outputTopics: string[];
  /** Outputs among outputTopics created with cleanup.policy=compact (latest value per key). */
  compactedTopics?: string[];
  /** Stores the processors declare (changelogs are created for them and for `meta`). */
  storeNames: string[];
  processorFactory: TaskProcessorFactory;
  /**
   * How often idle tasks (no commit for this long) get their processor's clock tick
   * (TaskProcessor.punctuate). Undefined: never.
   */
  punctuateIntervalMs?: number;
  /** How often the consumer lag gauges' broker offsets are refreshed (default 5 s). */
  lagRefreshMs?: number;
  logger: Logger;
  metrics: OrdoMetrics;
}

/**
 * Every topic a Worker needs, given the input's partition count: what it creates at start
 * and what `ordo topics` lists.
 */
export function workerTopicSpecs(
  o: Pick<WorkerOptions, 'groupId' | 'inputTopic' | 'outputTopics' | 'compactedTopics' | 'storeNames'>,
  partitions: number,
): TopicSpec[] {
  return [
    { topic: o.inputTopic, partitions },
    // Outputs go to the input record's partition number: fewer partitions would lose records.
    ...o.outputTopics.map((topic) => ({ topic, partitions, minPartitions: partitions, compacted: o.compactedTopics?.includes(topic) ?? false })),
    ...[META_STORE, ...o.storeNames].map((store) => ({ topic: changelogTopic(o.groupId, store), partitions, mustMatchPartitions: true, compacted: true })),
  ];
}

/** Partitions whose batches run at the same time (each has its own task and producer). */
const PARTITIONS_CONCURRENTLY = 4;
/** Attempts for a batch that fails with a transient error before the worker gives up. */
const MAX_BATCH_ATTEMPTS = 10;

/**
 * The pipeline's consume loop: a consumer group on the input topic, one Task per assigned
 * partition, exactly-once batches, revocation, fencing and drain. (The `merge` role, one
 * task over all partitions, has its own smaller loop: merge-worker.ts.)
 */
export class Worker {
  readonly lifecycle = new Lifecycle();
  private consumer: Consumer | undefined;
  private readonly tasks = new Map<number, Task>();
  /** Tasks being started (restoring); the worker is `restoring` while any is. */
  private readonly pendingTasks = new Map<number, Promise<Task>>();
  /** Partitions whose task was fenced: idle until the rebalance that normally follows. */
  private readonly fenced = new Set<number>();
  private assigned = new Set<number>();
  private readonly log: Logger;
  private stopping: Promise<void> | undefined;
  private consuming = false;
  private startPromise: Promise<void> | undefined;
  private readonly finished: Promise<LifecycleState>;
  private failure: Error | undefined;
  private punctuateTimer: NodeJS.Timeout | undefined;
  private readonly punctuating = new Set<number>();
  /** Partitions whose task is being started eagerly (startOwnedTask), retries included. */
  private readonly startingTasks = new Set<number>();
  /** ordo_consumer_lag_* of the owned partitions (fed by the hooks marked "lag:"). */
  private readonly consumerLag: ConsumerLag;

  constructor(private readonly options: WorkerOptions) {
    this.log = options.logger.child({ group: options.groupId });
    this.consumerLag = new ConsumerLag({
      kafka: options.kafka,
      groupId: options.groupId,
      topic: options.inputTopic,
      metrics: options.metrics,
      logger: this.log,
      refreshMs: options.lagRefreshMs,
    });
    this.finished = this.lifecycle.whenDone();
    exportLifecycle(this.lifecycle, options.metrics.lifecycleState, this.log);
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Ensures topics, joins the group and starts consuming; resolves once the consumer runs. */
  start(): Promise<void> {
    this.startPromise ??= this.startNow();
    return this.startPromise;
  }

  /** Resolves with the final state (stopped or failed). */
  get done(): Promise<LifecycleState> {
    return this.finished;
  }

  private async startNow(): Promise<void> {
    const o = this.options;
    try {
      await this.ensureTopics();
      const consumer = o.kafka.consumer({
        groupId: o.groupId,
        sessionTimeout: o.sessionTimeoutMs,
        heartbeatInterval: o.heartbeatIntervalMs,
        rebalanceTimeout: o.rebalanceTimeoutMs,
        maxBytesPerPartition: o.maxBytesPerPartition,
        readUncommitted: false,
        allowAutoTopicCreation: false,
        retry: { retries: 10 },
      });
      this.consumer = consumer;
      consumer.on(consumer.events.GROUP_JOIN, (event) => this.onAssignment(event.payload.memberAssignment[o.inputTopic] ?? []));
      // lag: fetches of only transaction markers / aborted records never reach eachBatch.
      consumer.on(consumer.events.END_BATCH_PROCESS, (event) => this.consumerLag.scanned(event.payload));
      consumer.on(consumer.events.CRASH, (event) => {
        if (!event.payload.restart) void this.fail(event.payload.error);
      });
      await consumer.connect();
      if (this.stopping) return; // stopped while connecting: drain disconnects it
      await consumer.subscribe({ topics: [o.inputTopic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: PARTITIONS_CONCURRENTLY,
        eachBatch: (payload) => this.onBatch(payload),
      });
      this.consuming = true;
      this.refreshState();
      const interval = o.punctuateIntervalMs;
      if (interval !== undefined && !this.stopping && !this.lifecycle.done) {
        this.punctuateTimer = setInterval(() => this.punctuateIdleTasks(interval), interval);
        this.punctuateTimer.unref();
      }
    } catch (error) {
      await this.fail(error as Error);
      throw error;
    }
  }

  private async ensureTopics(): Promise<void> {
    const o = this.options;
    const admin = o.kafka.admin();
    await admin.connect();
    try {
      const partitions = (await partitionCount(admin, o.inputTopic)) ?? o.topicPartitions;
      await ensureTopics(admin, workerTopicSpecs(o, partitions), { create: o.createTopics, replicationFactor: o.replicationFactor });
    } finally {
      await admin.disconnect();
    }
  }

  private onAssignment(partitions: number[]): void {
    const next = new Set(partitions);
    this.options.metrics.rebalances.inc({ kind: 'assignment' });
    this.options.metrics.assignedPartitions.set(next.size);
    this.log.info('partitions assigned', { partitions: [...next].sort((a, b) => a - b) });
    for (const partition of this.assigned) {
      if (!next.has(partition)) void this.dropTask(partition, 'revoked');
    }
    // A new generation: a fenced partition assigned again may be retried.
    this.fenced.clear();
    this.assigned = next;
    this.consumerLag.assign(next); // lag: series of revoked partitions disappear
    // Restore eagerly, so a partition is ready before its first batch arrives.
    for (const partition of next) {
      if (!this.tasks.has(partition) && !this.pendingTasks.has(partition)) {
        void this.startOwnedTask(partition);
      }
    }
  }

  private async dropTask(partition: number, why: string): Promise<void> {
    const task = this.tasks.get(partition);
    this.tasks.delete(partition);
    if (task) {
      this.log.info('closing task', { partition, why });
      await task.close();
    }
  }

  private async taskFor(partition: number, heartbeat?: () => Promise<void>): Promise<Task> {
    const existing = this.tasks.get(partition);
    if (existing) return existing;
    let pending = this.pendingTasks.get(partition);
    if (!pending) {
      pending = this.startTask(partition).finally(() => {
        this.pendingTasks.delete(partition);
        this.refreshState();
      });
      this.pendingTasks.set(partition, pending);
      this.refreshState();
    }
    if (!heartbeat) return pending;
    // Keep the group membership alive while the restore runs.
    const beat = setInterval(() => void heartbeat().catch(() => undefined), Math.max(100, this.options.heartbeatIntervalMs));
    try {
      return await pending;
    } finally {
      clearInterval(beat);
    }
  }

  private async startTask(partition: number): Promise<Task> {
    const o = this.options;
    const task = new Task({
      kafka: o.kafka,
      groupId: o.groupId,
      topic: o.inputTopic,
      partition,
      processor: o.processorFactory(o.inputTopic, partition),
      transactionTimeoutMs: o.transactionTimeoutMs,
      logger: this.log,
      metrics: o.metrics,
    });
    try {
      await task.start();
    } catch (error) {
      await task.close();
      throw error;
    }
    if (!this.assigned.has(partition) || this.lifecycle.state === 'draining' || this.lifecycle.done) {
      // Revoked (or shutting down) while restoring.
      await task.close();
      throw new RevokedError(`partition ${partition} is no longer assigned`);
    }
    this.tasks.set(partition, task);
    if (task.position !== undefined) this.consumerLag.committed(partition, task.position); // lag: exact restored position
    return task;
  }

  /**
   * Starts the task of an owned partition without waiting for its first batch (an idle
   * partition may never send one), retrying transient failures (e.g. a just-created topic
   * whose leader is not known yet) with backoff while the partition stays ours. The worker
   * stays `restoring` (not ready) meanwhile.
   */
  private async startOwnedTask(partition: number): Promise<void> {
    if (this.startingTasks.has(partition)) return;
    this.startingTasks.add(partition);
    try {
      for (let attempt = 1; ; attempt++) {
        const owned = this.assigned.has(partition) && !this.fenced.has(partition) && !this.lifecycle.done && this.lifecycle.state !== 'draining';
        if (!owned || this.tasks.has(partition)) return;
        try {
          await this.taskFor(partition);
          return;
        } catch (error) {
          const retriable = classify(error) === 'retry';
          if (error instanceof RevokedError || !retriable || attempt >= MAX_BATCH_ATTEMPTS) {
            this.log.warn('task start failed; retried on the next batch', { partition, attempt, error });
            return;
          }
          const delayMs = Math.min(5_000, 100 * 2 ** (attempt - 1));
          this.log.warn('task start failed; retrying', { partition, attempt, delayMs, error });
          await sleep(delayMs);
        }
      }
    } finally {
      this.startingTasks.delete(partition);
      this.refreshState();
    }
  }

  /** restoring while any task restores (or waits to retry its start), running once consuming with every task ready. */
  private refreshState(): void {
    const state = this.lifecycle.state;
    if (state === 'draining' || this.lifecycle.done) return;
    if (this.pendingTasks.size > 0 || this.startingTasks.size > 0) this.lifecycle.transition('restoring');
    else if (this.consuming) this.lifecycle.transition('running');
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
    const partition = batch.partition;
    this.consumerLag.fetched(batch); // lag: the records in hand (the oldest uncommitted one among them)
    if (this.fenced.has(partition)) {
      // Usually a rebalance follows (the heartbeat throws and kafkajs rejoins). If none came,
      // the fence had another cause (e.g. a transaction timeout): start a fresh task.
      await this.awaitRebalance(heartbeat);
      this.fenced.delete(partition);
      return;
    }
    if (!this.assigned.has(partition)) return; // a stale batch from before the last rebalance
    const task = await this.withRetries(() => this.taskFor(partition, heartbeat), heartbeat, partition);
    if (!task) return;

    const position = task.position;
    const aligned = alignToPosition(batch.messages, position, task.seeked);
    if (position !== undefined) task.seeked = true;
    if (aligned.seek) {
      this.log.info('seeking to the committed task position', { partition, from: batch.messages[0]!.offset, to: position });
      this.consumer?.seek({ topic: batch.topic, partition, offset: position! });
      return;
    }
    const messages = aligned.records;

    const size = this.options.maxBatchRecords;
    const owned = (): boolean => this.assigned.has(partition) && !this.fenced.has(partition);
    for (let i = 0; i < messages.length; i += size) {
      if (!isRunning() || isStale() || !owned()) return;
      const chunk = messages.slice(i, i + size).map((m) => toSourceRecord(batch.topic, partition, m));
      const done = await this.withRetries(
        async () => {
          // After a failed commit the task is replaced; the fresh one's restored position
          // says whether that commit happened, so nothing is processed twice.
          const current = await this.taskFor(partition, heartbeat);
          const from = current.position === undefined ? undefined : BigInt(current.position);
          const todo = from === undefined ? chunk : chunk.filter((r) => BigInt(r.offset) >= from);
          if (todo.length > 0) await current.process(todo);
          return true;
        },
        heartbeat,
        partition,
        owned,
      );
      if (!done) return;
      this.consumerLag.committed(partition, (BigInt(chunk[chunk.length - 1]!.offset) + 1n).toString()); // lag
      resolveOffset(chunk[chunk.length - 1]!.offset);
      await heartbeat();
    }
    // Everything fetched is committed: also move past trailing markers and aborted records.
    if (this.tasks.has(partition) && !isStale()) resolveOffset(batch.lastOffset());
  }

  /**
   * Clock ticks for idle tasks, on a timer beside the consume loop; each runs serialised
   * with the task's batches. A tick whose commit fails ends the task like a failed batch:
   * fenced -> wait for the rebalance; otherwise a fresh task restores and takes over.
   */
  private punctuateIdleTasks(intervalMs: number): void {
    const now = Date.now();
    for (const [partition, task] of this.tasks) {
      if (task.state !== 'running' || this.punctuating.has(partition) || now - task.lastActivityMs < intervalMs) continue;
      this.punctuating.add(partition);
      task
        .punctuate()
        .catch(async (error: unknown) => {
          if (task.state === 'running' || this.tasks.get(partition) !== task) return;
          if (error instanceof FencedError) return this.onFenced(partition, error);
          this.log.warn('clock tick failed; replacing the task', { partition, error });
          await this.dropTask(partition, 'tick failed');
          await this.startOwnedTask(partition);
        })
        .finally(() => this.punctuating.delete(partition));
    }
  }

  /** Another worker's producer took over this partition: drop the task and wait for the rebalance. */
  private async onFenced(partition: number, error: FencedError): Promise<void> {
    this.options.metrics.tasksFenced.inc();
    this.log.warn('task fenced: another worker owns this partition now', { partition, error });
    this.fenced.add(partition);
    await this.dropTask(partition, 'fenced');
  }

  /** Runs `action`, retrying transient failures with backoff; fenced -> drop the task; exhausted -> fail the worker. */
  private async withRetries<T>(action: () => Promise<T>, heartbeat: () => Promise<void>, partition: number, stillOwned: () => boolean = () => true): Promise<T | undefined> {
    const attempts = MAX_BATCH_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await action();
      } catch (error) {
        // Revoked (or shut down) meanwhile: the batch is someone else's now, not a failure.
        if (error instanceof RevokedError || !stillOwned()) return undefined;
        if (error instanceof FencedError) {
          await this.onFenced(partition, error);
          return undefined;
        }
        const retriable = classify(error) === 'retry';
        if (!retriable || attempt >= attempts || !this.consumer || this.lifecycle.done) {
          this.log.error(retriable ? 'batch failed; giving up' : `batch failed: ${fatalMessage(error)}`, { partition, attempt, error });
          await this.dropTask(partition, 'failed');
          void this.fail(error as Error);
          return undefined;
        }
        if (this.tasks.get(partition)?.state === 'broken') await this.dropTask(partition, 'transaction failed');
        const delay = Math.min(5_000, 100 * 2 ** (attempt - 1));
        this.log.warn('batch failed; retrying', { partition, attempt, delayMs: delay, error });
        await sleep(delay);
        await heartbeat();
      }
    }
  }

  /** Heartbeats until the group coordinator reports the rebalance (the heartbeat throws and kafkajs rejoins). */
  private async awaitRebalance(heartbeat: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + this.options.sessionTimeoutMs;
    while (Date.now() < deadline && !this.lifecycle.done && this.lifecycle.state !== 'draining') {
      await heartbeat();
      await sleep(Math.min(500, this.options.heartbeatIntervalMs));
    }
  }

  /** Drains in-flight batches, leaves the group, closes tasks; bounded by the grace timeout. */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.lifecycle.transition('draining');
    clearInterval(this.punctuateTimer);
    const lagStopped = this.consumerLag.stop(); // lag: a draining worker owns no partition any more
    const drain = async (): Promise<void> => {
      // A stop during start waits for the start to finish, then undoes it.
      await this.startPromise?.catch(() => undefined);
      await this.consumer?.stop();
      await this.consumer?.disconnect();
      await Promise.all([...this.tasks.keys()].map((p) => this.dropTask(p, 'shutdown')));
      await lagStopped;
    };
    this.stopping = (async () => {
      const error = await drainWithin(this.options.shutdownGraceMs, drain);
      if (error) this.log.error('drain failed', { error });
      if (!error && !this.failure) this.lifecycle.transition('stopped');
      else {
        this.failure ??= error;
        this.lifecycle.transition('failed');
      }
    })();
    return this.stopping;
  }

  private async fail(error: Error): Promise<void> {
    if (this.lifecycle.done || this.failure) return;
    this.failure = error;
    this.log.error('worker failed', { error });
    this.lifecycle.transition('draining');
    clearInterval(this.punctuateTimer);
    const lagStopped = this.consumerLag.stop(); // lag
    try {
      await this.consumer?.disconnect();
    } catch {
      /* leaving the group is best effort once failed */
    }
    await Promise.all([...this.tasks.keys()].map((p) => this.dropTask(p, 'failed')));
    await lagStopped;
    this.lifecycle.transition('failed');
  }
}

/** The partition was revoked while its task was starting: not an error of the batch. */
class RevokedError extends OrdoError {
  static override readonly code = 'ORDO_REVOKED';
}

