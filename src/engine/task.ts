import type { Kafka, Producer } from 'kafkajs';
import { FencedError, OrdoError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../processors/records.js';
import { RestoreOutOfRangeError, type RestoreTarget, endOffsets, restorePartitions } from './restore.js';
import { type RestorePlan, type RestoreSource, type StateBackend, type TaskStateStores, memoryBackend } from './state-dir.js';
import { type KeyValueStore, type TaskStore, stringCodec } from './state-store.js';
import type { BatchReport, ProcessResult, StoreSpec, TaskContext, TaskProcessor } from './task-processor.js';
import { classifyKafkaError, commitTransaction } from './transaction.js';

export const META_STORE = 'meta';
export const META_POSITION = 'position';

/** broken: a transaction failed in a way the producer cannot recover from; replace the task. */
export type TaskState = 'created' | 'restoring' | 'running' | 'closed' | 'fenced' | 'broken';

export interface TaskOptions {
  kafka: Kafka;
  groupId: string;
  topic: string;
  partition: number;
  processor: TaskProcessor;
  transactionTimeoutMs: number;
  logger: Logger;
  metrics: OrdoMetrics;
  /** state: where the stores live (default: in memory, restored fully at every start). */
  state?: StateBackend;
}

export function changelogTopic(groupId: string, store: string): string {
  return `${groupId}-${store}-changelog`;
}

export function transactionalId(groupId: string, topic: string, partition: number): string {
  return `${transactionalIdPrefix(groupId, topic)}${partition}`;
}

/** What every task's transactional id of `topic` starts with (a prefixed ACL grants them all). */
export function transactionalIdPrefix(groupId: string, topic: string): string {
  return `${groupId}-${topic}-`;
}

/**
 * One task per assigned input partition: its transactional producer (id
 * `<group>-<topic>-<partition>`, which fences a zombie owner of the same partition), its
 * state stores restored from their changelogs, and its processor chain.
 */
export class Task {
  state: TaskState = 'created';
  /** The worker moved the consumer to this task's committed position once (see Worker.onBatch). */
  seeked = false;
  private readonly producer: Producer;
  // state: the stores come from the StateBackend at start (in memory or lmdb, state-dir.ts).
  private storage: TaskStateStores | undefined;
  private stores: ReadonlyMap<string, TaskStore<unknown>> = new Map();
  /** state: restored and not since broken by a store write failing: a clean close may checkpoint. */
  private restored = false;
  /** Stores whose changelog is an output topic the processor writes (see StoreSpec.changelog). */
  private readonly external = new Map<string, NonNullable<StoreSpec['changelog']>>();
  private readonly context: TaskContext;
  private readonly log: Logger;
  private busy: Promise<unknown> = Promise.resolve();
  private lastActivity = Date.now();

  constructor(private readonly options: TaskOptions) {
    const { kafka, groupId, topic, partition } = options;
    this.log = options.logger.child({ topic, partition });
    this.producer = kafka.producer({
      transactionalId: transactionalId(groupId, topic, partition),
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeoutMs,
    });
    for (const spec of options.processor.stores) {
      if (spec.changelog) this.external.set(spec.name, spec.changelog);
    }
    const store = <V>(name: string): KeyValueStore<V> => {
      const found = this.stores.get(name);
      if (!found) throw new Error(`no store named ${name}`);
      return found as KeyValueStore<V>;
    };
    this.context = {
      topic,
      partition,
      get meta() {
        return store<string>(META_STORE);
      },
      store,
    };
  }

  get partition(): number {
    return this.options.partition;
  }

  /** The next input offset to process, as committed with the last transaction (undefined: none yet). */
  get position(): string | undefined {
    return this.committedPosition;
  }

  /** state: kept here, so the worker may read it even while the task closes its stores. */
  private committedPosition: string | undefined;

  /**
   * Fences older owners and completes their open transaction (InitProducerId), then
   * restores every store from its changelog before anything is processed.
   */
  async start(): Promise<void> {
    const { partition, metrics } = this.options;
    await this.producer.connect();
    const init = await this.producer.transaction();
    await init.abort(); // nothing sent: only initialises the producer id and epoch
    this.state = 'restoring';
    const started = process.hrtime.bigint();
    // state: open the stores, read (and delete) the checkpoint, restore the tail or everything.
    const { storage, plan, records, counts } = await this.restore();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    for (const store of this.stores.values()) {
      metrics.restoreSeconds.observe({ store: store.name }, seconds);
      metrics.restoreRecords.inc({ store: store.name }, counts.get(store.name) ?? 0);
      metrics.stateEntries.set({ store: store.name, partition: String(partition) }, store.size);
    }
    this.committedPosition = this.context.meta.get(META_POSITION);
    this.options.processor.onRestored(this.context);
    this.restored = storage.persistent;
    this.state = 'running';
    this.log.info('task restored', { records, seconds, restore: plan.kind, ...(plan.kind === 'full' ? { why: plan.why } : {}), position: this.position ?? null });
  }

  /** state: where each store restores from (its changelog, or the output topic that is its changelog). */
  private restoreSources(): RestoreSource[] {
    const { groupId, partition } = this.options;
    return [...this.stores.keys()].map((store) => ({ store, topic: this.external.get(store)?.topic ?? changelogTopic(groupId, store), partition }));
  }

  /**
   * state: restores from the checkpointed offsets when the backend has a checkpoint it
   * trusts, else (or when those offsets are gone from a topic) wipes and restores fully.
   */
  private async restore(): Promise<{ storage: TaskStateStores; plan: RestorePlan; records: number; counts: Map<string, number> }> {
    const { kafka, groupId, topic, partition, processor } = this.options;
    const storage = await (this.options.state ?? memoryBackend).open({
      groupId,
      topic,
      partition,
      stores: [{ name: META_STORE, codec: stringCodec }, ...processor.stores.map((s) => ({ name: s.name, codec: s.codec }))],
    });
    this.storage = storage;
    this.stores = storage.stores;
    const sources = this.restoreSources();
    let plan = storage.begin(sources);
    const counts = new Map<string, number>();
    const targets = (from: ReadonlyMap<string, string> | undefined): RestoreTarget[] =>
      sources.map(({ store: name, topic: sourceTopic }) => {
        const store = this.stores.get(name)!;
        const external = this.external.get(name);
        const now = Date.now();
        return {
          topic: sourceTopic,
          partition,
          from: from?.get(name),
          onRecord: (key: string, value: Buffer | null) => {
            counts.set(name, (counts.get(name) ?? 0) + 1);
            if (external === undefined || value === null) return store.restore(key, value);
            store.restore(key, external.payload(value));
            if (!external.keep(key, store.get(key), now)) store.restore(key, null);
          },
        };
      });
    try {
      const { records } = await restorePartitions(kafka, targets(plan.kind === 'tail' ? plan.from : undefined), { groupPrefix: groupId, logger: this.log });
      return { storage, plan, records, counts };
    } catch (error) {
      if (!(error instanceof RestoreOutOfRangeError)) throw error;
      this.log.warn('checkpointed offsets are gone from a restore source: restoring fully', { error });
      storage.wipe();
      counts.clear();
      plan = { kind: 'full', why: 'offsets out of range' };
      const { records } = await restorePartitions(kafka, targets(undefined), { groupPrefix: groupId, logger: this.log });
      return { storage, plan, records, counts };
    }
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
    const { groupId, topic, partition, metrics } = this.options;
    const started = process.hrtime.bigint();
    let result: ProcessResult | undefined;
    try {
      result = run();
    } catch (error) {
      // A processor bug, not a broker problem: surfaced as it is, never retried.
      for (const store of this.stores.values()) store.rollback();
      throw error;
    }
    if (result === undefined) {
      for (const store of this.stores.values()) store.rollback();
      return false;
    }
    if (nextOffset !== undefined) this.context.meta.put(META_POSITION, nextOffset);
    const outputs = [...result.outputs];
    for (const store of this.stores.values()) {
      if (this.external.has(store.name)) continue; // the processor's own outputs are its changelog
      const topicName = changelogTopic(groupId, store.name);
      for (const entry of store.changes()) outputs.push({ topic: topicName, key: entry.key, value: entry.value, headers: {} });
    }
    try {
      const positions = nextOffset === undefined ? [] : [{ topic, partition, nextOffset }];
      await commitTransaction(this.producer, { outputs, partition, offsets: { groupId, positions } });
    } catch (error) {
      for (const store of this.stores.values()) store.rollback();
      const classified = classifyKafkaError(error);
      metrics.transactionSeconds.observe({ outcome: 'abort' }, Number(process.hrtime.bigint() - started) / 1e9);
      metrics.transactionsAborted.inc({ reason: classified instanceof FencedError ? 'fenced' : 'error' });
      // kafkajs does not recover a transaction whose commit/abort failed, and the commit may
      // even have happened: this task is done. A fresh one restores the committed position.
      this.state = classified instanceof FencedError ? 'fenced' : 'broken';
      throw classified;
    }
    try {
      this.storage!.commit(); // state: one write of every store's staged writes
    } catch (error) {
      // state: the transaction committed but the state did not follow: never checkpoint it.
      this.restored = false;
      this.state = 'broken';
      throw new OrdoError(`state of partition ${partition} could not be written after its transaction committed`, { cause: error });
    }
    if (nextOffset !== undefined) this.committedPosition = nextOffset;
    this.lastActivity = Date.now();
    metrics.transactionSeconds.observe({ outcome: 'commit' }, Number(process.hrtime.bigint() - started) / 1e9);
    this.record(records, result.outputs, result.report);
    return true;
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
    for (const store of this.stores.values()) metrics.stateEntries.set({ store: store.name, partition: String(partition) }, store.size);
    const now = Date.now();
    const origins = report.originTimesMs ?? records.map((r) => r.timestamp);
    for (const origin of origins) metrics.endToEndSeconds.observe(Math.max(0, now - origin) / 1000);
  }

  /** Lets an in-flight batch finish (commit or abort) before the producer goes away. */
  async close(): Promise<void> {
    if (this.state !== 'fenced' && this.state !== 'broken') this.state = 'closed';
    await this.busy;
    await this.closeState();
    for (const store of this.stores.values()) this.options.metrics.stateEntries.remove({ store: store.name, partition: String(this.partition) });
    this.options.metrics.reorderBuffered.remove({ partition: String(this.partition) });
    await this.producer.disconnect().catch((error: unknown) => this.log.warn('producer disconnect failed', { error }));
  }

  /**
   * state: after the last commit (none in flight: `busy` settled) of a task that neither broke
   * nor was fenced, checkpoints the restore sources' end offsets: this task's producer is
   * their only writer, so they are final. Any failure just means a full restore next time.
   */
  private async closeState(): Promise<void> {
    const storage = this.storage;
    if (!storage) return;
    try {
      if (this.restored && this.state === 'closed') {
        const sources = this.restoreSources();
        const ends = await endOffsets(this.options.kafka, sources);
        await storage.checkpoint(sources.map((source, i) => ({ ...source, offset: ends[i]! })));
        this.log.info('state checkpoint written', { sources: sources.length });
      }
    } catch (error) {
      this.log.warn('state checkpoint not written: the next start restores fully', { error });
    } finally {
      await storage.close().catch((error: unknown) => this.log.warn('state close failed', { error }));
    }
  }
}
