import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { OrdoError } from '../errors.js';
import { ensureTopics, partitionCount, type TopicSpec, waitUntilServed } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import { alignToPosition, sleep, toSourceRecord } from './batch.js';
import { ConsumerLag } from './consumer-lag.js';
import { EngineShell } from './engine-shell.js';
import { RepeatedFailures, retrying } from './retry.js';
import { fatalMessage } from './error-policy.js';
import type { MergeOutput, MergeProcessor, UnitContext } from './task-processor.js';
import { type Position, TransactionalUnit, changelogTopic } from './transactional-unit.js';

export interface MergeWorkerOptions
  extends Pick<OrdoConfig, 'replicationFactor' | 'createTopics' | 'sessionTimeoutMs' | 'heartbeatIntervalMs' | 'rebalanceTimeoutMs' | 'transactionTimeoutMs' | 'shutdownGraceMs' | 'maxBytesPerPartition' | 'nodeId' | 'stuckAfterMs'> {
  kafka: Kafka;
  /** The merge's consumer group; also names its transactional id and changelogs. */
  groupId: string;
  orderedTopic: string;
  watermarksTopic: string;
  globalTopic: string;
  dlqTopic: string;
  /** The merge's processor, given the ordered topic's partition count. */
  processorFactory: (partitions: number) => MergeProcessor;
  /** Its stores with a changelog, its meta store included (what `mergeTopicSpecs` creates). */
  storeNames: readonly string[];
  /** How often published watermarks are checked against the ordered topic's end offsets. */
  tickMs?: number;
  logger: Logger;
  metrics: OrdoMetrics;
}

/**
 * Every topic the merge role needs besides the ordered topic it reads (which the pipeline
 * creates), given the ordered topic's partition count: what it creates at start and what
 * `ordo topics` lists.
 */
export function mergeTopicSpecs(o: Pick<MergeWorkerOptions, 'groupId' | 'globalTopic' | 'watermarksTopic' | 'dlqTopic' | 'storeNames'>, partitions: number): TopicSpec[] {
  return [
    { topic: o.globalTopic, partitions: 1, minPartitions: 1 },
    { topic: o.watermarksTopic, partitions, compacted: true },
    { topic: o.dlqTopic, partitions, minPartitions: 1 },
    ...o.storeNames.map((store) => ({ topic: changelogTopic(o.groupId, store), partitions: 1, mustMatchPartitions: true, compacted: true })),
  ];
}

const TICK_MS = 200;
const WAIT_FOR_TOPIC_MS = 1_000;

/**
 * The `merge` role's engine: ONE task over every partition of the ordered topic, writing
 * the single-partition global topic. One transactional producer (`<group>-global`: a
 * second instance fences the first) commits, per batch, the global records, the merge's
 * store changes and the ordered topic's input offsets.
 *
 * Quiet partitions: the pipeline writes their frontier to the watermarks topic. A
 * watermark read there is applied only once this worker's fetch position on that
 * partition of the ordered topic (control records included) reaches the partition's last
 * stable offset measured AFTER the watermark was read, i.e. once every ordered record
 * committed before the watermark has been merged. The watermarks topic is never
 * committed: on a restart it is read again from the start (compacted; applying a
 * watermark twice changes nothing).
 *
 * A transient failure (e.g. the broker restarting) is retried in place, as the pipeline's
 * tasks do (retry.ts): a failed transaction leaves the producer unusable and the in-memory
 * state ahead of what was committed, so the merge's task is rebuilt (a fresh producer,
 * the stores restored from their changelogs) and the batch retried from the restored
 * position. Fenced, fatal, or still failing after ORDO_STUCK_AFTER_MS ends the worker
 * (`failed`); a restart restores the stores and continues.
 */
export class MergeWorker extends EngineShell {
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private processor: MergeProcessor | undefined;
  /** The merge's one transactional unit: producer, `held` and `merge-meta` stores, commits. */
  private unit: TransactionalUnit | undefined;
  /** Watermark ticks failing in a row (logged once, counted, bounded). */
  private readonly tickFailures: RepeatedFailures;
  /** After a failed tick: no tick before this (the failure streak's backoff), ms since the epoch. */
  private tickNotBefore = 0;
  private partitions = 0;
  /** The group gave this worker every partition of both topics. */
  private complete = false;
  private readonly seeked = new Set<string>();
  /** `<topic>:<p>` -> next offset fetched and handled (control records included). */
  private readonly fetched = new Map<string, bigint>();
  /** Published watermarks not applied yet: partition -> ms. */
  private readonly pending = new Map<number, number>();
  private busy: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  /** ordo_consumer_lag_* of the ordered topic's partitions. */
  private readonly consumerLag: ConsumerLag;

  constructor(private readonly options: MergeWorkerOptions) {
    const log = options.logger.child({ group: options.groupId });
    super(log, options);
    this.consumerLag = new ConsumerLag({ kafka: options.kafka, groupId: options.groupId, topic: options.orderedTopic, metrics: options.metrics, logger: log });
    this.tickFailures = new RepeatedFailures({ what: 'merge watermark tick', log, liveness: this.liveness });
  }

  /** Running, and the owner of every partition. */
  get ready(): boolean {
    return this.lifecycle.state === 'running' && this.complete;
  }

  async start(): Promise<void> {
    const o = this.options;
    try {
      const admin = o.kafka.admin();
      this.admin = admin;
      // Started with the other roles, the topics may be just created and without a leader yet.
      const setUp = await retrying(() => this.setUp(admin), { what: 'merge start', log: this.log, liveness: this.liveness, abandoned: () => this.stopping !== undefined });
      if (!setUp.ok) {
        if (setUp.why === 'abandoned') return;
        throw setUp.error;
      }
      if (this.stopping) return;
      const consumer = this.groupConsumer(o.kafka, o.groupId, o);
      this.consumer = consumer;
      consumer.on(consumer.events.GROUP_JOIN, (event) => this.onAssignment(event.payload.memberAssignment));
      // Batches of only control records (or aborted ones) never reach eachBatch: still progress.
      consumer.on(consumer.events.END_BATCH_PROCESS, (event) => {
        if (event.payload.batchSize === 0) this.advance(event.payload.topic, event.payload.partition, event.payload.lastOffset);
        if (event.payload.topic === o.orderedTopic) this.consumerLag.scanned(event.payload);
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [o.orderedTopic, o.watermarksTopic], fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch: (payload) => this.onBatch(payload) });
      this.lifecycle.transition('running');
      this.timer = setInterval(() => void this.tick(), o.tickMs ?? TICK_MS);
      this.timer.unref();
    } catch (error) {
      if (this.stopping) return; // stopped while starting: the drain ends it
      await this.fail(error as Error);
      throw error;
    }
  }

  private async setUp(admin: Admin): Promise<void> {
    const o = this.options;
    await admin.connect();
    this.partitions = await this.waitForOrderedTopic(admin);
    const specs = mergeTopicSpecs(o, this.partitions);
    await ensureTopics(admin, specs, { create: o.createTopics, replicationFactor: o.replicationFactor });
    await waitUntilServed(admin, [o.orderedTopic, ...specs.map((spec) => spec.topic)]);
    await this.openTask();
  }

  /**
   * A fresh transactional unit (its producer's InitProducerId fences an older instance and
   * completes its open transaction; its stores restored from their changelogs), and a fresh
   * processor over them: after a failed commit both are discarded.
   */
  private async openTask(): Promise<void> {
    const o = this.options;
    await this.unit?.close();
    this.lifecycle.transition('restoring');
    const processor = o.processorFactory(this.partitions);
    const unit = new TransactionalUnit({
      kafka: o.kafka,
      groupId: o.groupId,
      transactionalId: mergeTransactionalId(o.groupId),
      partition: 0,
      stores: processor.stores,
      metaStore: processor.metaStore,
      transactionTimeoutMs: o.transactionTimeoutMs,
      logger: this.log,
      metrics: o.metrics,
    });
    this.unit = unit;
    const { records, seconds } = await unit.open();
    processor.restore(this.context());
    this.processor = processor;
    this.observe();
    this.log.info('merge restored', { records, seconds, held: processor.held, partitions: this.partitions });
  }

  /** A commit failed: the unit (and the processor's in-memory state, ahead of it) must be rebuilt. */
  private get broken(): boolean {
    return this.unit !== undefined && this.unit.state !== 'running';
  }

  /** After a failed transaction: rebuild the task, then carry on (called inside `exclusive`). */
  private async healIfBroken(): Promise<void> {
    if (!this.broken) return;
    this.log.info('rebuilding the merge task after a failed transaction');
    await this.openTask();
    if (this.consumer) this.lifecycle.transition('running');
  }

  private async waitForOrderedTopic(admin: Admin): Promise<number> {
    for (let logged = false; ; logged = true) {
      const n = await partitionCount(admin, this.options.orderedTopic, { probeAccess: true });
      if (n !== undefined) return n;
      if (!logged) this.log.info('waiting for the ordered topic (the pipeline creates it)', { topic: this.options.orderedTopic });
      if (this.stopping) throw new OrdoError('stopped while waiting for the ordered topic');
      await sleep(WAIT_FOR_TOPIC_MS);
    }
  }

  private onAssignment(assignment: Record<string, number[]>): void {
    const o = this.options;
    this.options.metrics.rebalances.inc({ kind: 'assignment' });
    const owns = (topic: string, n: number): boolean => new Set(assignment[topic] ?? []).size === n;
    this.complete = owns(o.orderedTopic, this.partitions) && owns(o.watermarksTopic, this.partitions);
    this.options.metrics.assignedPartitions.set(Object.values(assignment).reduce((n, ps) => n + ps.length, 0));
    if (!this.complete) {
      this.log.error('this merge instance does not own every partition: another instance is in the group; run exactly one', { assignment });
    }
    this.seeked.clear();
    this.consumerLag.assign(assignment[o.orderedTopic] ?? []);
    for (const p of assignment[o.orderedTopic] ?? []) {
      const position = this.unit?.meta.get(positionKey(o.orderedTopic, p));
      if (position !== undefined) this.consumerLag.committed(p, position);
    }
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const o = this.options;
    if (!this.complete) {
      await sleep(1_000); // idle, not merging half a stream
      return;
    }
    const { topic, partition } = batch;
    const records: SourceRecord[] = batch.messages.map((m) => toSourceRecord(topic, partition, m));
    if (topic === o.watermarksTopic) {
      for (const r of records) {
        const p = Number(r.key?.toString());
        const mark = Number(r.value?.toString());
        if (Number.isInteger(p) && Number.isFinite(mark) && mark > (this.pending.get(p) ?? Number.NEGATIVE_INFINITY)) this.pending.set(p, mark);
      }
      this.advance(topic, partition, batch.lastOffset());
      resolveOffset(batch.lastOffset());
      return;
    }
    this.consumerLag.fetched(batch);
    const position = this.unit!.meta.get(positionKey(topic, partition));
    const aligned = alignToPosition(records, position, this.seeked.has(`${topic}:${partition}`));
    if (position !== undefined) this.seeked.add(`${topic}:${partition}`);
    if (aligned.seek) {
      this.consumer?.seek({ topic, partition, offset: position! });
      return;
    }
    const todo = aligned.records;
    if (!isRunning() || isStale()) return;
    const last = todo[todo.length - 1];
    if (last !== undefined) {
      const next = (BigInt(last.offset) + 1n).toString();
      const merged = await retrying(
        () =>
          this.exclusive(async () => {
            await this.healIfBroken();
            // After a rebuild, the restored position says whether the failed commit happened.
            const from = this.unit!.meta.get(positionKey(topic, partition));
            const rest = from === undefined ? todo : todo.filter((r) => BigInt(r.offset) >= BigInt(from));
            const started = process.hrtime.bigint();
            if (rest.length > 0) await this.commit(this.processor!.onOrdered(rest, this.context()), [{ topic, partition, nextOffset: next }], rest.length, started);
          }),
        { what: 'merge batch', meta: { partition }, log: this.log, liveness: this.liveness, abandoned: () => this.stopping !== undefined || this.lifecycle.done, between: heartbeat },
      );
      if (!merged.ok) {
        if (merged.why !== 'abandoned') await this.fail(merged.error as Error);
        return;
      }
      this.consumerLag.committed(partition, next);
    }
    this.advance(topic, partition, batch.lastOffset());
    resolveOffset(batch.lastOffset());
    await heartbeat();
  }

  /**
   * Applies the published watermarks whose partition has been merged up to its last stable
   * offset as measured now (after the watermark was read).
   */
  private async tick(): Promise<void> {
    // A broken task (a failed rebuild leaves the role `restoring`) is due a tick even with no
    // watermark pending: the tick is what rebuilds it when no ordered batch comes.
    const due = this.complete && !this.stopping && !this.lifecycle.done && (this.broken || (this.pending.size > 0 && this.lifecycle.state === 'running'));
    if (this.ticking || !due) {
      // No tick is due: a failure streak of earlier ticks must not outlive them (/healthz).
      if (!this.ticking) this.tickFailures.close();
      return;
    }
    if (Date.now() < this.tickNotBefore) return;
    this.ticking = true;
    const snapshot = new Map(this.pending);
    try {
      const ends = await this.admin!.fetchTopicOffsets(this.options.orderedTopic);
      await this.exclusive(async () => {
        await this.healIfBroken();
        const started = process.hrtime.bigint();
        const result: MergeOutput = { outputs: [], emitted: 0, late: 0, deadLetters: [] };
        for (const [p, mark] of snapshot) {
          const end = ends.find((e) => e.partition === p);
          const stored = this.unit!.meta.get(positionKey(this.options.orderedTopic, p));
          const at = this.fetched.get(`${this.options.orderedTopic}:${p}`) ?? (stored === undefined ? 0n : BigInt(stored));
          if (end === undefined || at < BigInt(end.high)) continue;
          const r = this.processor!.onWatermark(p, mark, this.context());
          result.outputs.push(...r.outputs);
          result.emitted += r.emitted;
          if (this.pending.get(p) === mark) this.pending.delete(p);
        }
        if (this.unit!.hasChanges()) await this.commit(result, [], 0, started);
      });
      this.tickFailures.succeeded();
      this.tickNotBefore = 0;
      this.observe();
    } catch (error) {
      // Not applied: the next tick tries these watermarks again (unless newer ones came).
      for (const [p, mark] of snapshot) if (!((this.pending.get(p) ?? Number.NEGATIVE_INFINITY) >= mark)) this.pending.set(p, mark);
      if (this.lifecycle.done || this.stopping) return;
      this.options.metrics.idleTickFailures.inc();
      const outcome = this.tickFailures.failed(error);
      if (outcome.ok) this.tickNotBefore = Date.now() + outcome.delayMs;
      else await this.fail(outcome.error as Error);
    } finally {
      this.ticking = false;
    }
  }

  private context(): UnitContext {
    const unit = this.unit!;
    return { meta: unit.meta, store: <V>(name: string) => unit.store<V>(name) };
  }

  private advance(topic: string, partition: number, lastOffset: string): void {
    const key = `${topic}:${partition}`;
    const next = BigInt(lastOffset) + 1n;
    if (next > (this.fetched.get(key) ?? -1n)) this.fetched.set(key, next);
  }

  private exclusive<T>(action: () => Promise<T>): Promise<T> {
    const run = this.busy.then(action);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /** One transaction: global records, dead letters, store changes, ordered-topic offsets. */
  private async commit(result: MergeOutput, positions: Position[], inputs: number, startedAt: bigint): Promise<void> {
    const o = this.options;
    const unit = this.unit!;
    for (const p of positions) unit.meta.put(positionKey(p.topic, p.partition), p.nextOffset);
    // A failure leaves the unit broken (or fenced): healIfBroken rebuilds it and the processor.
    await unit.commit(result.outputs, positions, startedAt);
    const m = o.metrics;
    for (const p of positions) m.eventsIn.inc({ topic: p.topic, partition: String(p.partition) }, inputs);
    if (result.emitted > 0) m.eventsOut.inc({ topic: o.globalTopic }, result.emitted);
    if (result.late > 0) m.mergeLate.inc(result.late);
    for (const d of result.deadLetters) m.deadLettered.inc({ reason: d.reason });
    this.observe();
  }

  private observe(): void {
    const m = this.options.metrics;
    if (!this.processor) return;
    m.mergeHeld.set(this.processor.held);
    const low = this.processor.lowWatermark;
    m.mergeWatermarkDelay.set(Number.isFinite(low) ? Math.max(0, Date.now() - low) / 1000 : 0);
  }

  protected halt(): Promise<void> {
    clearInterval(this.timer);
    return this.consumerLag.stop();
  }

  protected async drain(): Promise<void> {
    await this.consumer?.stop();
    await this.consumer?.disconnect();
    await this.busy;
    await this.unit?.close();
    await this.admin?.disconnect();
  }

  protected async abort(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    await this.unit?.close();
    await this.admin?.disconnect().catch(() => undefined);
  }

  protected override fail(error: Error): Promise<void> {
    return super.fail(error, `merge failed: ${fatalMessage(error)}`);
  }
}

function positionKey(topic: string, partition: number): string {
  return `pos:${topic}:${partition}`;
}

/** The merge's one transactional producer id. */
export function mergeTransactionalId(groupId: string): string {
  return `${groupId}-global`;
}
