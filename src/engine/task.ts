import type { Kafka } from 'kafkajs';
import { OrdoError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import type { BatchReport, ProcessResult, TaskContext, TaskProcessor } from './task-processor.js';
import type { StateBackend } from './state-dir.js';
import { TransactionalUnit, type UnitState } from './transactional-unit.js';

export { META_STORE, changelogTopic } from './transactional-unit.js';
export const META_POSITION = 'position';

export type TaskState = UnitState;

export interface TaskOptions {
  kafka: Kafka;
  groupId: string;
  topic: string;
  partition: number;
  processor: TaskProcessor;
  transactionTimeoutMs: number;
  logger: Logger;
  metrics: OrdoMetrics;
  /** Where the stores live (default: in memory, restored fully at every start). */
  state?: StateBackend;
}

export function transactionalId(groupId: string, topic: string, partition: number): string {
  return `${transactionalIdPrefix(groupId, topic)}${partition}`;
}

/** What every task's transactional id of `topic` starts with (a prefixed ACL grants them all). */
export function transactionalIdPrefix(groupId: string, topic: string): string {
  return `${groupId}-${topic}-`;
}

/**
 * One task per assigned input partition: a TransactionalUnit (its producer's id
 * `<group>-<topic>-<partition>` fences a zombie owner of the same partition; its stores
 * restored before the first batch) and the processor chain that feeds it. After a failed
 * commit the unit is fenced or broken, and the task with its processor is discarded
 * (`process` refuses): the Worker starts a fresh one, which restores the committed state.
 */
export class Task {
  /** The worker moved the consumer to this task's committed position once (see Worker.onBatch). */
  seeked = false;
  private readonly unit: TransactionalUnit;
  private readonly context: TaskContext;
  private readonly log: Logger;
  private busy: Promise<unknown> = Promise.resolve();
  private lastActivity = Date.now();
  private closing = false;

  constructor(private readonly options: TaskOptions) {
    const { kafka, groupId, topic, partition } = options;
    this.log = options.logger.child({ topic, partition });
    const unit = new TransactionalUnit({
      kafka,
      groupId,
      transactionalId: transactionalId(groupId, topic, partition),
      partition,
      stores: options.processor.stores,
      positionTopics: options.processor.positionTopics,
      state: options.state,
      stateTopic: topic,
      transactionTimeoutMs: options.transactionTimeoutMs,
      logger: this.log,
      metrics: options.metrics,
    });
    this.unit = unit;
    this.context = {
      topic,
      partition,
      get meta() {
        return unit.meta;
      },
      store: <V>(name: string) => unit.store<V>(name),
    };
  }

  get state(): TaskState {
    return this.closing && this.unit.state === 'running' ? 'closed' : this.unit.state;
  }

  get partition(): number {
    return this.options.partition;
  }

  /** The next input offset to process, as committed with the last transaction (undefined: none yet). */
  get position(): string | undefined {
    return this.committedPosition;
  }

  /** Kept here, so the worker may read it even while the task closes its (persistent) stores. */
  private committedPosition: string | undefined;

  /** Opens the unit (fencing, restore) and lets the processor rebuild what has no changelog. */
  async start(): Promise<void> {
    const { records, replayed, seconds, restore, why } = await this.unit.open((replay) => this.options.processor.onRestored(this.context, replay));
    this.committedPosition = this.context.meta.get(META_POSITION);
    this.gaugeStores();
    this.log.info('task restored', { records, replayed, seconds, restore, ...(why === undefined ? {} : { why }), position: this.position ?? null });
  }

  /**
   * Runs the processors over `records` (consecutive, from this partition) and commits
   * outputs, changelog records and the next input offset in one transaction.
   * Store writes are staged and applied only once the commit succeeded.
   */
  async process(records: readonly SourceRecord[]): Promise<{ outputs: number; deadLetters: number }> {
    return this.exclusive(() => this.processNow(records));
  }

  /** When this task last committed a batch (ms); punctuation waits for idle partitions. */
  get lastActivityMs(): number {
    return this.lastActivity;
  }

  /**
   * Gives an idle task's processor its clock tick (TaskProcessor.punctuate) and commits
   * what it emits, with the unchanged input position, in one transaction. Serialised with
   * batches. Resolves false when there was nothing to commit.
   */
  async punctuate(): Promise<boolean> {
    const processor = this.options.processor;
    if (!processor.punctuate) return false;
    return this.exclusive(() => this.commitBatch([], this.position, () => processor.punctuate!(this.context)));
  }

  /** One batch or tick at a time: the stores' staged writes belong to one transaction. */
  private exclusive<T>(action: () => Promise<T>): Promise<T> {
    const run = this.busy.then(() => {
      if (this.state !== 'running') throw new OrdoError(`task for partition ${this.partition} is ${this.state}`);
      return action();
    });
    this.busy = run.catch(() => undefined);
    return run;
  }

  private async processNow(records: readonly SourceRecord[]): Promise<{ outputs: number; deadLetters: number }> {
    const last = records[records.length - 1];
    if (!last) return { outputs: 0, deadLetters: 0 };
    await this.options.processor.prepare(records);
    const nextOffset = (BigInt(last.offset) + 1n).toString();
    let counts = { outputs: 0, deadLetters: 0 };
    await this.commitBatch(records, nextOffset, () => {
      const result = this.options.processor.process(records, this.context);
      counts = { outputs: result.outputs.length, deadLetters: result.report.deadLetters.length };
      return result;
    });
    return counts;
  }

  /** nextOffset undefined: a tick before any batch; no input offset to commit. */
  private async commitBatch(records: readonly SourceRecord[], nextOffset: string | undefined, run: () => ProcessResult | undefined): Promise<boolean> {
    const { topic, partition } = this.options;
    const started = process.hrtime.bigint();
    let result: ProcessResult | undefined;
    try {
      result = run();
    } catch (error) {
      // A processor bug, not a broker problem: surfaced as it is, never retried.
      this.unit.rollback();
      throw error;
    }
    if (result === undefined) {
      this.unit.rollback();
      return false;
    }
    if (nextOffset !== undefined) this.context.meta.put(META_POSITION, nextOffset);
    await this.unit.commit(result.outputs, nextOffset === undefined ? [] : [{ topic, partition, nextOffset }], started);
    if (nextOffset !== undefined) this.committedPosition = nextOffset;
    this.lastActivity = Date.now();
    this.record(records, result.outputs, result.report);
    return true;
  }

  private gaugeStores(): void {
    for (const store of this.unit.allStores) this.options.metrics.stateEntries.set({ store: store.name, partition: String(this.partition) }, store.size);
  }

  private record(records: readonly SourceRecord[], outputs: readonly { topic: string }[], report: BatchReport): void {
    const { metrics, topic, partition } = this.options;
    if (records.length > 0) metrics.eventsIn.inc({ topic, partition: String(partition) }, records.length);
    const perTopic = new Map<string, number>();
    for (const o of outputs) perTopic.set(o.topic, (perTopic.get(o.topic) ?? 0) + 1);
    for (const [t, n] of perTopic) metrics.eventsOut.inc({ topic: t }, n);
    for (const d of report.deadLetters) metrics.deadLettered.inc({ reason: d.reason });
    for (const skew of report.clockSkewsMs ?? []) metrics.clockSkew.observe(skew / 1000);
    if (report.clockSkewRejected) metrics.clockSkewRejected.inc(report.clockSkewRejected);
    if (report.duplicates) metrics.duplicates.inc(report.duplicates);
    for (const l of report.late ?? []) metrics.late.inc({ reason: l.reason });
    for (const reason of report.violations ?? []) metrics.orderingViolations.inc({ reason });
    if (report.forcedEmits) metrics.reorderForced.inc(report.forcedEmits);
    if (report.buffered !== undefined) metrics.reorderBuffered.set({ partition: String(partition) }, report.buffered);
    if (report.expired) metrics.stateExpired.inc(report.expired);
    for (const c of report.corrections ?? []) metrics.corrections.inc({ kind: c.kind, outcome: c.outcome });
    this.gaugeStores();
    const now = Date.now();
    const origins = report.originTimesMs ?? records.map((r) => r.timestamp);
    for (const origin of origins) metrics.endToEndSeconds.observe(Math.max(0, now - origin) / 1000);
  }

  /** Lets an in-flight batch finish (commit or abort) before the producer goes away. */
  async close(): Promise<void> {
    this.closing = true; // batches queued behind the one in flight are refused
    await this.busy;
    for (const store of this.unit.allStores) this.options.metrics.stateEntries.remove({ store: store.name, partition: String(this.partition) });
    this.options.metrics.reorderBuffered.remove({ partition: String(this.partition) });
    await this.unit.close();
  }
}
