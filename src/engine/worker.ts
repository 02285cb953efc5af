import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { OrdoError } from '../errors.js';
import type { OrdoConfig } from '../config/config.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { ensureTopics, partitionCount, type TopicSpec, waitUntilServed } from '../kafka/topics.js';
import { alignToPosition, sleep, toSourceRecord } from './batch.js';
import { ConsumerLag } from './consumer-lag.js';
import { fatalMessage } from './error-policy.js';
import { EngineShell } from './engine-shell.js';
import { RepeatedFailures, type Stop, retrying } from './retry.js';
import { type StateBackend, stateBackend } from './state-dir.js';
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
  | 'stuckAfterMs'
  | 'stateDir'
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

/**
 * The pipeline's consume loop: a consumer group on the input topic, one Task (a
 * TransactionalUnit and its processor) per assigned partition, exactly-once batches,
 * revocation, fencing and drain, in the EngineShell. (The `merge` role is one
 * TransactionalUnit over all partitions in the same shell: merge-worker.ts.)
 */
export class Worker extends EngineShell {
  private consumer: Consumer | undefined;
  private readonly tasks = new Map<number, Task>();
  /** Tasks being started (restoring); the worker is `restoring` while any is. */
  private readonly pendingTasks = new Map<number, Promise<Task>>();
  /** Partitions whose task was fenced: idle until the rebalance that normally follows. */
  private readonly fenced = new Set<number>();
  private assigned = new Set<number>();
  private consuming = false;
  private startPromise: Promise<void> | undefined;
  private punctuateTimer: NodeJS.Timeout | undefined;
  private readonly punctuating = new Set<number>();
  /** Per partition: idle ticks failing in a row (logged once, counted, bounded like a batch's retries). */
  private readonly tickFailures = new Map<number, RepeatedFailures>();
  /** After a failed idle tick: no tick of that partition before this (the streak's backoff). */
  private readonly tickNotBefore = new Map<number, number>();
  /** Partitions whose task is being started eagerly (startOwnedTask), retries included. */
  private readonly startingTasks = new Set<number>();
  /** ordo_consumer_lag_* of the owned partitions (fed by the hooks marked "lag:"). */
  private readonly consumerLag: ConsumerLag;
  /** state: where the tasks keep their stores (ORDO_STATE_DIR). */
  private readonly stateBackend: StateBackend;

  constructor(private readonly options: WorkerOptions) {
    const log = options.logger.child({ group: options.groupId });
    super(log, options);
    this.stateBackend = stateBackend(options.stateDir, log);
    this.consumerLag = new ConsumerLag({
      kafka: options.kafka,
      groupId: options.groupId,
      topic: options.inputTopic,
      metrics: options.metrics,
      logger: log,
      refreshMs: options.lagRefreshMs,
    });
  }

  /** Ensures topics, joins the group and starts consuming; resolves once the consumer runs. */
  start(): Promise<void> {
    this.startPromise ??= this.startNow();
    return this.startPromise;
  }

  private async startNow(): Promise<void> {
    const o = this.options;
    try {
      // Topics just created (here or by another role starting at the same moment) may not
      // have a leader yet: wait until they serve, so the consumer never starts on them early.
      const topics = await retrying(() => this.ensureTopics(), { what: 'topic setup', log: this.log, liveness: this.liveness, abandoned: () => this.stopping !== undefined });
      if (!topics.ok) {
        if (topics.why === 'abandoned') return;
        throw topics.error;
      }
      const consumer = this.groupConsumer(o.kafka, o.groupId, o);
      this.consumer = consumer;
      consumer.on(consumer.events.GROUP_JOIN, (event) => this.onAssignment(event.payload.memberAssignment[o.inputTopic] ?? []));
      // lag: fetches of only transaction markers / aborted records never reach eachBatch.
      consumer.on(consumer.events.END_BATCH_PROCESS, (event) => this.consumerLag.scanned(event.payload));
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
      const specs = workerTopicSpecs(o, partitions);
      await ensureTopics(admin, specs, { create: o.createTopics, replicationFactor: o.replicationFactor });
      await waitUntilServed(admin, specs.map((s) => s.topic));
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
      if (next.has(partition)) continue;
      this.endTickFailures(partition);
      void this.dropTask(partition, 'revoked');
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
      state: this.stateBackend,
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
   * whose leader is not known yet) while the partition stays ours. The worker stays
   * `restoring` (not ready) meanwhile.
   */
  private async startOwnedTask(partition: number): Promise<void> {
    if (this.startingTasks.has(partition)) return;
    this.startingTasks.add(partition);
    try {
      const owned = (): boolean => this.assigned.has(partition) && !this.fenced.has(partition) && !this.lifecycle.done && this.lifecycle.state !== 'draining';
      const started = await retrying(() => (owned() ? this.taskFor(partition) : Promise.reject(new RevokedError(`partition ${partition} is no longer assigned`))), {
        what: 'task start',
        meta: { partition },
        log: this.log,
        liveness: this.liveness,
        abandoned: (error) => error instanceof RevokedError || !owned(),
      });
      if (!started.ok) await this.gaveUp(partition, 'task start', started);
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
      this.tickFailures.get(partition)?.close(); // a committed batch: the partition's task works again
      resolveOffset(chunk[chunk.length - 1]!.offset);
      await heartbeat();
    }
    // Everything fetched is committed: also move past trailing markers and aborted records.
    if (this.tasks.has(partition) && !isStale()) resolveOffset(batch.lastOffset());
  }

  /**
   * Clock ticks for idle tasks, on a timer beside the consume loop; each runs serialised
   * with the task's batches. A failing tick is treated like a failed batch: logged (once
   * per streak) and counted (ordo_idle_tick_failures_total); fenced -> wait for the
   * rebalance; fatal, or transient for longer than ORDO_STUCK_AFTER_MS -> the worker fails;
   * otherwise the next tick retries, on a fresh task if the transaction broke this one.
   */
  private punctuateIdleTasks(intervalMs: number): void {
    const now = Date.now();
    for (const [partition, task] of this.tasks) {
      if (task.state !== 'running' || this.punctuating.has(partition) || now - task.lastActivityMs < intervalMs || now < (this.tickNotBefore.get(partition) ?? 0)) continue;
      this.punctuating.add(partition);
      task
        .punctuate()
        .then(
          () => {
            this.tickFailures.get(partition)?.succeeded();
            this.tickNotBefore.delete(partition);
          },
          async (error: unknown) => {
            // Closed (revoked, shutting down) or replaced meanwhile: not this tick's failure.
            if (this.tasks.get(partition) !== task || this.lifecycle.done || this.lifecycle.state === 'draining') return;
            this.options.metrics.idleTickFailures.inc();
            let failures = this.tickFailures.get(partition);
            if (!failures) this.tickFailures.set(partition, (failures = new RepeatedFailures({ what: 'idle tick', meta: { partition }, log: this.log, liveness: this.liveness })));
            const outcome = failures.failed(error);
            if (outcome.ok) {
              this.tickNotBefore.set(partition, Date.now() + outcome.delayMs);
              if (task.state === 'running') return; // the next tick retries with this task
              await this.dropTask(partition, 'tick failed');
              await this.startOwnedTask(partition);
              return;
            }
            this.endTickFailures(partition);
            await this.gaveUp(partition, 'idle tick', outcome);
          },
        )
        .finally(() => this.punctuating.delete(partition));
    }
  }

  /** What a retry loop that ended without success means: fenced -> wait for the rebalance; fatal or exhausted -> the worker fails. */
  private async gaveUp(partition: number, what: string, result: Stop): Promise<void> {
    if (result.why === 'abandoned') return;
    if (result.why === 'fenced') return this.onFenced(partition, result.error);
    const message = result.why === 'fatal' ? `${what} failed: ${fatalMessage(result.error)}` : `${what} failed for longer than ORDO_STUCK_AFTER_MS; giving up`;
    this.log.error(message, { partition, error: result.error });
    await this.dropTask(partition, 'failed');
    void this.fail(result.error as Error);
  }

  /** Another worker's producer took over this partition: drop the task and wait for the rebalance. */
  private async onFenced(partition: number, error: unknown): Promise<void> {
    this.options.metrics.tasksFenced.inc();
    this.log.warn('task fenced: another worker owns this partition now', { partition, error });
    this.fenced.add(partition);
    this.endTickFailures(partition);
    await this.dropTask(partition, 'fenced');
  }

  /** The partition's idle ticks stop here (revoked, fenced, given up): its failure streak must not outlive them. */
  private endTickFailures(partition: number): void {
    this.tickFailures.get(partition)?.close();
    this.tickFailures.delete(partition);
    this.tickNotBefore.delete(partition);
  }

  /** Runs `action` in the engine's retry loop (retry.ts); fenced -> drop the task; fatal or exhausted -> fail the worker. */
  private async withRetries<T>(action: () => Promise<T>, heartbeat: () => Promise<void>, partition: number, stillOwned: () => boolean = () => true): Promise<T | undefined> {
    const result = await retrying(action, {
      what: 'batch',
      meta: { partition },
      log: this.log,
      liveness: this.liveness,
      // Revoked (or shut down) meanwhile: the batch is someone else's now, not a failure.
      abandoned: (error) => error instanceof RevokedError || !stillOwned() || this.lifecycle.done,
      // kafkajs does not recover a transaction whose commit failed: a fresh task restores the committed position.
      recover: async () => {
        if (this.tasks.get(partition)?.state === 'broken') await this.dropTask(partition, 'transaction failed');
      },
      between: heartbeat,
    });
    if (result.ok) return result.value;
    await this.gaveUp(partition, 'batch', result);
    return undefined;
  }

  /** Heartbeats until the group coordinator reports the rebalance (the heartbeat throws and kafkajs rejoins). */
  private async awaitRebalance(heartbeat: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + this.options.sessionTimeoutMs;
    while (Date.now() < deadline && !this.lifecycle.done && this.lifecycle.state !== 'draining') {
      await heartbeat();
      await sleep(Math.min(500, this.options.heartbeatIntervalMs));
    }
  }

  protected halt(): Promise<void> {
    clearInterval(this.punctuateTimer);
    return this.consumerLag.stop(); // lag: a draining worker owns no partition any more
  }

  protected async drain(): Promise<void> {
    // A stop during start waits for the start to finish, then undoes it.
    await this.startPromise?.catch(() => undefined);
    await this.consumer?.stop();
    await this.consumer?.disconnect();
    await Promise.all([...this.tasks.keys()].map((p) => this.dropTask(p, 'shutdown')));
  }

  protected async abort(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    await Promise.all([...this.tasks.keys()].map((p) => this.dropTask(p, 'failed')));
  }
}

/** The partition was revoked while its task was starting: not an error of the batch. */
class RevokedError extends OrdoError {
  static override readonly code = 'ORDO_REVOKED';
}
