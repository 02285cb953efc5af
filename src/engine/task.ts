import type { Kafka, Producer } from 'kafkajs';
import { FencedError, OrdoError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../processors/records.js';
import { type RestoredRecord, restorePartitions } from './restore.js';
import { InMemoryStore, type KeyValueStore, stringCodec } from './state-store.js';
import type { BatchReport, ProcessResult, Replay, ReplaySource, StoreSpec, TaskContext, TaskProcessor } from './task-processor.js';
import { tailKey } from './task-processor.js';
import { type WrittenEnds, classifyKafkaError, commitTransaction } from './transaction.js';

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
  private readonly stores = new Map<string, InMemoryStore<unknown>>();
  /** Stores whose changelog is an output topic the processor writes (see StoreSpec.changelog). */
  private readonly external = new Map<string, NonNullable<StoreSpec['changelog']>>();
  /** Stores without a changelog: the processor rebuilds them (StoreSpec.rebuilt). */
  private readonly rebuilt = new Set<string>();
  /** Stores whose changelog is written every so often (StoreSpec.snapshot): committed changes not written yet. */
  private readonly snapshots = new Map<string, { spec: NonNullable<StoreSpec['snapshot']>; unwritten: Map<string, Buffer | null>; writtenAt: number }>();
  /** Per output topic: the offset after this task's last committed record on its partition (as far as known). */
  private readonly written = new Map<string, bigint>();
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
    this.stores.set(META_STORE, new InMemoryStore(META_STORE, stringCodec));
    for (const spec of options.processor.stores) {
      this.stores.set(spec.name, new InMemoryStore(spec.name, spec.codec));
      if (spec.changelog) this.external.set(spec.name, spec.changelog);
      if (spec.rebuilt) this.rebuilt.add(spec.name);
      if (spec.snapshot) this.snapshots.set(spec.name, { spec: spec.snapshot, unwritten: new Map(), writtenAt: Date.now() });
    }
    const stores = this.stores;
    this.context = {
      topic,
      partition,
      meta: stores.get(META_STORE) as unknown as KeyValueStore<string>,
      store<V>(name: string): KeyValueStore<V> {
        const store = stores.get(name);
        if (!store) throw new Error(`no store named ${name}`);
        return store as KeyValueStore<V>;
      },
    };
  }

  get partition(): number {
    return this.options.partition;
  }

  /** The next input offset to process, as committed with the last transaction (undefined: none yet). */
  get position(): string | undefined {
    return this.context.meta.get(META_POSITION);
  }

  /**
   * Fences older owners and completes their open transaction (InitProducerId), then
   * restores every store from its changelog before anything is processed.
   */
  async start(): Promise<void> {
    const { kafka, groupId, partition, metrics } = this.options;
    await this.producer.connect();
    const init = await this.producer.transaction();
    await init.abort(); // nothing sent: only initialises the producer id and epoch
    this.state = 'restoring';
    const started = process.hrtime.bigint();
    const counts = new Map<string, number>();
    const { records } = await restorePartitions(
      kafka,
      [...this.stores.values()].filter((store) => !this.rebuilt.has(store.name)).map((store) => {
        const external = this.external.get(store.name);
        const now = Date.now();
        return {
          topic: external?.topic ?? changelogTopic(groupId, store.name),
          partition,
          onRecord: (key: string, value: Buffer | null) => {
            counts.set(store.name, (counts.get(store.name) ?? 0) + 1);
            if (external === undefined || value === null) return store.restore(key, value);
            store.restore(key, external.payload(value));
            if (!external.keep(key, store.get(key), now)) store.restore(key, null);
          },
        };
      }),
      { groupPrefix: groupId, logger: this.log },
    );
    await this.learnWrittenEnds();
    let replayed = 0;
    const replay: Replay = { read: async (sources) => (replayed += await this.replay(sources)) };
    await this.options.processor.onRestored(this.context, replay);
    // What onRestored derived is state now; a snapshot store's part of it goes out with its next snapshot.
    for (const store of this.stores.values()) {
      const snapshot = this.snapshots.get(store.name);
      if (snapshot) for (const entry of store.changes()) snapshot.unwritten.set(entry.key, entry.value);
      store.commit();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    for (const store of this.stores.values()) {
      metrics.restoreSeconds.observe({ store: store.name }, seconds);
      metrics.restoreRecords.inc({ store: store.name }, counts.get(store.name) ?? 0);
      metrics.stateEntries.set({ store: store.name, partition: String(partition) }, store.size);
    }
    this.state = 'running';
    this.log.info('task restored', { records, replayed, seconds, position: this.position ?? null });
  }

  /** The end offsets of the snapshot stores' tail topics on this partition: stable, as this task's producer is their only writer. */
  private async learnWrittenEnds(): Promise<void> {
    const topics = new Set([...this.snapshots.values()].flatMap((s) => s.spec.tailTopics));
    if (topics.size === 0) return;
    const admin = this.options.kafka.admin();
    await admin.connect();
    try {
      for (const topic of topics) {
        const p = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === this.partition);
        if (!p) throw new OrdoError(`topic ${topic} has no partition ${this.partition}`);
        this.written.set(topic, BigInt(p.high));
      }
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Replay.read: this partition of each source, from an offset or a timestamp, to its end (or `to`). */
  private async replay(sources: readonly ReplaySource[]): Promise<number> {
    if (sources.length === 0) return 0;
    const { kafka, groupId, partition } = this.options;
    const starts = new Map<string, bigint>();
    const admin = kafka.admin();
    await admin.connect();
    try {
      for (const source of sources) {
        const { offset, timestamp } = source.from;
        let start = offset;
        if (timestamp !== undefined) {
          const found = (await admin.fetchTopicOffsetsByTimestamp(source.topic, timestamp)).find((o) => o.partition === partition);
          if (!found) throw new OrdoError(`topic ${source.topic} has no partition ${partition}`);
          if (start === undefined || BigInt(found.offset) < start) start = BigInt(found.offset);
        }
        if (start !== undefined) starts.set(source.topic, start);
      }
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    const { records } = await restorePartitions(
      kafka,
      sources.map((source) => ({
        topic: source.topic,
        partition,
        from: starts.get(source.topic),
        to: source.to,
        onRecord: (_key: string, value: Buffer | null, record: RestoredRecord) =>
          source.onRecord({ topic: source.topic, partition, offset: record.offset, key: record.key, value, headers: record.headers, timestamp: record.timestamp }),
      })),
      { groupPrefix: groupId, logger: this.log },
    );
    return records;
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
    const now = Date.now();
    // Snapshot stores due now: their unwritten changes go out with this batch, and meta
    // records where their tail topics' records after this snapshot may begin.
    const due = [...this.snapshots].filter(([, s]) => now - s.writtenAt >= s.spec.everyMs);
    for (const [name, snapshot] of due) {
      const tail: Record<string, string> = {};
      for (const t of snapshot.spec.tailTopics) tail[t] = (this.written.get(t) ?? 0n).toString();
      this.context.meta.put(tailKey(name), JSON.stringify(tail));
    }
    const outputs = [...result.outputs];
    const changes = new Map<string, ReturnType<InMemoryStore<unknown>['changes']>>();
    for (const store of this.stores.values()) {
      if (this.external.has(store.name) || this.rebuilt.has(store.name)) continue; // no changelog of its own
      let entries = store.changes();
      const snapshot = this.snapshots.get(store.name);
      if (snapshot) {
        changes.set(store.name, entries);
        if (!due.some(([name]) => name === store.name)) continue;
        const merged = new Map(snapshot.unwritten);
        for (const e of entries) merged.set(e.key, e.value);
        entries = [...merged].map(([key, value]) => ({ key, value }));
      }
      const topicName = changelogTopic(groupId, store.name);
      for (const entry of entries) outputs.push({ topic: topicName, key: entry.key, value: entry.value, headers: {} });
    }
    let ends: WrittenEnds;
    try {
      const positions = nextOffset === undefined ? [] : [{ topic, partition, nextOffset }];
      ends = await commitTransaction(this.producer, { outputs, partition, offsets: { groupId, positions } });
    } catch (error) {
      for (const store of this.stores.values()) store.rollback();
      const classified = classifyKafkaError(error);
      metrics.transactionSeconds.observe({ outcome: 'abort' }, Number(process.hrtime.bigint() - started) / 1e9);
      metrics.transactionsAborted.inc({ reason: classified instanceof FencedError ? 'fenced' : 'error' });
      // kafkajs does not recover a transaction whose commit/abort failed, and the commit may
      // even have happened: this task is done. A fresh one restores the committed position.
      // (The processor's in-memory state is ahead of the stores too: it goes with the task.)
      this.state = classified instanceof FencedError ? 'fenced' : 'broken';
      throw classified;
    }
    for (const [key, end] of ends) {
      const slash = key.lastIndexOf('/');
      if (Number(key.slice(slash + 1)) === partition) this.written.set(key.slice(0, slash), end);
    }
    for (const [name, entries] of changes) {
      const snapshot = this.snapshots.get(name)!;
      if (due.some(([n]) => n === name)) {
        snapshot.unwritten.clear();
        snapshot.writtenAt = now;
      } else for (const e of entries) snapshot.unwritten.set(e.key, e.value);
    }
    for (const store of this.stores.values()) store.commit();
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
    for (const store of this.stores.values()) this.options.metrics.stateEntries.remove({ store: store.name, partition: String(this.partition) });
    this.options.metrics.reorderBuffered.remove({ partition: String(this.partition) });
    await this.producer.disconnect().catch((error: unknown) => this.log.warn('producer disconnect failed', { error }));
  }
}
