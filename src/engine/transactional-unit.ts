import type { Kafka, Producer } from 'kafkajs';
import { FencedError, OrdoError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { OutputRecord } from '../model/records.js';
import { type RestoredRecord, restorePartitions } from './restore.js';
import { InMemoryStore } from './state-store.js';
import { type KeyValueStore, stringCodec } from '../model/store.js';
import { type Replay, type ReplaySource, type StoreSpec, tailKey } from './task-processor.js';
import { type WrittenEnds, classifyKafkaError, commitTransaction } from './transaction.js';

/** The engine's own store of every unit: input positions, and what the processor keeps there. */
export const META_STORE = 'meta';

export function changelogTopic(groupId: string, store: string): string {
  return `${groupId}-${store}-changelog`;
}

/**
 * created -> restoring -> running -> closed. fenced: another owner's producer took over.
 * broken: a transaction failed in a way the producer cannot recover from (and the commit
 * may even have happened). A fenced or broken unit is discarded together with the
 * processor that fed it: the processor's in-memory state is ahead of what was committed.
 * A fresh unit restores the committed state.
 */
export type UnitState = 'created' | 'restoring' | 'running' | 'closed' | 'fenced' | 'broken';

export interface UnitOptions {
  kafka: Kafka;
  groupId: string;
  /** Fences an older producer with the same id (a zombie owner) when the unit opens. */
  transactionalId: string;
  /** The partition of the changelogs (and of outputs without an explicit partition). */
  partition: number;
  stores: readonly StoreSpec[];
  /** Name of the engine's meta store (its changelog is `<group>-<name>-changelog`). */
  metaStore?: string;
  transactionTimeoutMs: number;
  logger: Logger;
  metrics: OrdoMetrics;
}

/** One input partition's next offset, committed with a transaction. */
export interface Position {
  topic: string;
  partition: number;
  nextOffset: string;
}

/**
 * The one transactional unit of the engine, under a pipeline task and under the merge:
 * a transactional producer, the state stores, their restore, and the commit that writes a
 * batch's outputs, the stores' changelog records and the input offsets in ONE transaction.
 * Store writes are staged; they become state only once that commit succeeded, and are
 * dropped when it failed.
 */
export class TransactionalUnit {
  state: UnitState = 'created';
  readonly meta: InMemoryStore<string>;
  private readonly producer: Producer;
  private readonly stores = new Map<string, InMemoryStore<unknown>>();
  /** Stores whose changelog is an output topic the processor writes (see StoreSpec.changelog). */
  private readonly external = new Map<string, NonNullable<StoreSpec['changelog']>>();
  /** Stores without a changelog: the processor rebuilds them (StoreSpec.rebuilt). */
  private readonly rebuilt = new Set<string>();
  /** Stores whose changelog is written every so often (StoreSpec.snapshot): committed changes not written yet. */
  private readonly snapshots = new Map<string, { spec: NonNullable<StoreSpec['snapshot']>; unwritten: Map<string, Buffer | null>; writtenAt: number }>();
  /** Per output topic: the offset after this unit's last committed record on its partition (as far as known). */
  private readonly written = new Map<string, bigint>();
  private readonly log: Logger;

  constructor(private readonly options: UnitOptions) {
    this.log = options.logger;
    this.producer = options.kafka.producer({
      transactionalId: options.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeoutMs,
    });
    this.meta = new InMemoryStore(options.metaStore ?? META_STORE, stringCodec);
    this.stores.set(this.meta.name, this.meta);
    for (const spec of options.stores) {
      this.stores.set(spec.name, new InMemoryStore(spec.name, spec.codec));
      if (spec.changelog) this.external.set(spec.name, spec.changelog);
      if (spec.rebuilt) this.rebuilt.add(spec.name);
      if (spec.snapshot) this.snapshots.set(spec.name, { spec: spec.snapshot, unwritten: new Map(), writtenAt: Date.now() });
    }
  }

  store<V>(name: string): KeyValueStore<V> {
    const store = this.stores.get(name);
    if (!store) throw new Error(`no store named ${name}`);
    return store as KeyValueStore<V>;
  }

  /** Every store, meta included (for gauges). */
  get allStores(): Iterable<InMemoryStore<unknown>> {
    return this.stores.values();
  }

  /**
   * Fences older owners and completes their open transaction (InitProducerId), restores
   * every store from its changelog, then lets `rebuild` derive what has none (its store
   * writes become state; a snapshot store's go out with its next snapshot).
   */
  async open(rebuild?: (replay: Replay) => Promise<void> | void): Promise<{ records: number; replayed: number; seconds: number }> {
    const { kafka, groupId, partition, metrics } = this.options;
    await this.producer.connect();
    const init = await this.producer.transaction();
    await init.abort(); // nothing sent: only initialises the producer id and epoch
    this.state = 'restoring';
    const started = process.hrtime.bigint();
    const counts = new Map<string, number>();
    const { records } = await restorePartitions(
      kafka,
      [...this.stores.values()]
        .filter((store) => !this.rebuilt.has(store.name))
        .map((store) => {
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
    await rebuild?.({ read: async (sources) => (replayed += await this.replay(sources)) });
    for (const store of this.stores.values()) {
      const snapshot = this.snapshots.get(store.name);
      if (snapshot) for (const entry of store.changes()) snapshot.unwritten.set(entry.key, entry.value);
      store.commit();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    for (const store of this.stores.values()) {
      metrics.restoreSeconds.observe({ store: store.name }, seconds);
      metrics.restoreRecords.inc({ store: store.name }, counts.get(store.name) ?? 0);
    }
    this.state = 'running';
    return { records, replayed, seconds };
  }

  /** The end offsets of the snapshot stores' tail topics on this partition: stable, as this unit's producer is their only writer. */
  private async learnWrittenEnds(): Promise<void> {
    const topics = new Set([...this.snapshots.values()].flatMap((s) => s.spec.tailTopics));
    if (topics.size === 0) return;
    const admin = this.options.kafka.admin();
    await admin.connect();
    try {
      for (const topic of topics) {
        const p = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === this.options.partition);
        if (!p) throw new OrdoError(`topic ${topic} has no partition ${this.options.partition}`);
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

  /** Whether any store has staged writes (something a commit would write). */
  hasChanges(): boolean {
    return [...this.stores.values()].some((store) => store.changes().length > 0);
  }

  /** Drops the staged store writes (a batch that will not be committed). */
  rollback(): void {
    for (const store of this.stores.values()) store.rollback();
  }

  /**
   * Commits `outputs`, the stores' staged changes (as changelog records) and `positions` in
   * one transaction, then makes the staged changes state. On failure the changes are
   * dropped, the unit becomes `fenced` or `broken` (discard it and its processor) and the
   * classified error is thrown. `startedAt`: when the batch's processing began, for
   * ordo_transaction_commit_seconds.
   */
  async commit(outputs: readonly OutputRecord[], positions: readonly Position[], startedAt = process.hrtime.bigint()): Promise<void> {
    const { groupId, partition, metrics } = this.options;
    if (this.state !== 'running') {
      this.rollback();
      throw new OrdoError(`a ${this.state} transactional unit cannot commit: it is discarded with its processor`);
    }
    const now = Date.now();
    // Snapshot stores due now: their unwritten changes go out with this batch, and meta
    // records where their tail topics' records after this snapshot may begin.
    const due = new Set([...this.snapshots].filter(([, s]) => now - s.writtenAt >= s.spec.everyMs).map(([name]) => name));
    for (const name of due) {
      const tail: Record<string, string> = {};
      for (const t of this.snapshots.get(name)!.spec.tailTopics) tail[t] = (this.written.get(t) ?? 0n).toString();
      this.meta.put(tailKey(name), JSON.stringify(tail));
    }
    const all: OutputRecord[] = [...outputs];
    const snapshotChanges = new Map<string, ReturnType<InMemoryStore<unknown>['changes']>>();
    for (const store of this.stores.values()) {
      if (this.external.has(store.name) || this.rebuilt.has(store.name)) continue; // no changelog of its own
      let entries = store.changes();
      const snapshot = this.snapshots.get(store.name);
      if (snapshot) {
        snapshotChanges.set(store.name, entries);
        if (!due.has(store.name)) continue;
        const merged = new Map(snapshot.unwritten);
        for (const e of entries) merged.set(e.key, e.value);
        entries = [...merged].map(([key, value]) => ({ key, value }));
      }
      const topic = changelogTopic(groupId, store.name);
      for (const entry of entries) all.push({ topic, key: entry.key, value: entry.value, headers: {}, partition });
    }
    let ends: WrittenEnds;
    try {
      ends = await commitTransaction(this.producer, { outputs: all, partition, offsets: { groupId, positions: [...positions] } });
    } catch (error) {
      this.rollback();
      const classified = classifyKafkaError(error);
      metrics.transactionSeconds.observe({ outcome: 'abort' }, Number(process.hrtime.bigint() - startedAt) / 1e9);
      metrics.transactionsAborted.inc({ reason: classified instanceof FencedError ? 'fenced' : 'error' });
      // kafkajs does not recover a transaction whose commit/abort failed, and the commit may
      // even have happened: this unit is done. A fresh one restores the committed state.
      this.state = classified instanceof FencedError ? 'fenced' : 'broken';
      throw classified;
    }
    for (const [key, end] of ends) {
      const slash = key.lastIndexOf('/');
      if (Number(key.slice(slash + 1)) === partition) this.written.set(key.slice(0, slash), end);
    }
    for (const [name, entries] of snapshotChanges) {
      const snapshot = this.snapshots.get(name)!;
      if (due.has(name)) {
        snapshot.unwritten.clear();
        snapshot.writtenAt = now;
      } else for (const e of entries) snapshot.unwritten.set(e.key, e.value);
    }
    for (const store of this.stores.values()) store.commit();
    metrics.transactionSeconds.observe({ outcome: 'commit' }, Number(process.hrtime.bigint() - startedAt) / 1e9);
  }

  /** Disconnects the producer (callers wait for an in-flight commit first). */
  async close(): Promise<void> {
    if (this.state !== 'fenced' && this.state !== 'broken') this.state = 'closed';
    await this.producer.disconnect().catch((error: unknown) => this.log.warn('producer disconnect failed', { error }));
  }
}
