import type { Kafka, Producer } from 'kafkajs';
import { FencedError, OrdoError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { OutputRecord } from '../model/records.js';
import { RestoreOutOfRangeError, type RestoreTarget, type RestoredRecord, endOffsets, restorePartitions } from './restore.js';
import { type RestorePlan, type RestoreSource, type StateBackend, type TaskStateStores, memoryBackend } from './state-dir.js';
import type { TaskStore } from './state-store.js';
import { type KeyValueStore, stringCodec } from '../model/store.js';
import { encodePositionMetadata } from '../model/position-metadata.js';
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
  /** Output topics whose ends on `partition` go into the metadata of every committed position (TaskProcessor.positionTopics). */
  positionTopics?: readonly string[];
  /** Name of the engine's meta store (its changelog is `<group>-<name>-changelog`). */
  metaStore?: string;
  /** Where the stores live (default: in memory, restored fully at every open). */
  state?: StateBackend;
  /** Names the unit's state directory with the group and partition (default: the transactional id). */
  stateTopic?: string;
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
  private readonly producer: Producer;
  private readonly metaName: string;
  /** The stores, from the state backend once open (in memory, or lmdb with a checkpoint). */
  private storage: TaskStateStores | undefined;
  private stores: ReadonlyMap<string, TaskStore<unknown>> = new Map();
  /** Restored completely into a persistent backend and not broken since: a clean close may checkpoint. */
  private restored = false;
  /** Stores whose changelog is an output topic the processor writes (see StoreSpec.changelog). */
  private readonly external = new Map<string, NonNullable<StoreSpec['changelog']>>();
  /** Stores without a changelog, and the topics the processor rebuilds them from (StoreSpec.rebuilt). */
  private readonly rebuilt = new Map<string, readonly string[]>();
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
    this.metaName = options.metaStore ?? META_STORE;
    for (const spec of options.stores) {
      if (spec.changelog) this.external.set(spec.name, spec.changelog);
      if (spec.rebuilt) this.rebuilt.set(spec.name, spec.rebuilt.from);
      if (spec.snapshot) this.snapshots.set(spec.name, { spec: spec.snapshot, unwritten: new Map(), writtenAt: Date.now() });
    }
  }

  store<V>(name: string): KeyValueStore<V> {
    const store = this.stores.get(name);
    if (!store) throw new Error(`no store named ${name} (is the unit open?)`);
    return store as KeyValueStore<V>;
  }

  get meta(): KeyValueStore<string> {
    return this.store<string>(this.metaName);
  }

  /** Every store, meta included (for gauges). */
  get allStores(): Iterable<TaskStore<unknown>> {
    return this.stores.values();
  }

  /**
   * Where the stores restore from: the changelog (or the output topic that is one) of each
   * store with one; for a rebuilt store, a source per topic it is rebuilt from, so that a
   * checkpoint records how far those stood (`<store>@<topic>`).
   */
  private restoreSources(): RestoreSource[] {
    const { groupId, partition } = this.options;
    const sources: RestoreSource[] = [];
    for (const name of this.stores.keys()) {
      const rebuilt = this.rebuilt.get(name);
      if (rebuilt) for (const topic of rebuilt) sources.push({ store: `${name}@${topic}`, topic, partition });
      else sources.push({ store: name, topic: this.external.get(name)?.topic ?? changelogTopic(groupId, name), partition });
    }
    return sources;
  }

  /**
   * Fences older owners and completes their open transaction (InitProducerId), opens the
   * stores (reading and deleting their checkpoint, if persistent), restores them from their
   * changelogs (only the tails after a trusted checkpoint), then lets `rebuild` derive what
   * has no changelog (its store writes become state; a snapshot store's go out with its
   * next snapshot).
   */
  async open(rebuild?: (replay: Replay) => Promise<void> | void): Promise<{ records: number; replayed: number; seconds: number; restore: RestorePlan['kind']; why?: string }> {
    const { kafka, groupId, partition, metrics } = this.options;
    await this.producer.connect();
    const init = await this.producer.transaction();
    await init.abort(); // nothing sent: only initialises the producer id and epoch
    this.state = 'restoring';
    const started = process.hrtime.bigint();
    const storage = await (this.options.state ?? memoryBackend).open({
      groupId,
      topic: this.options.stateTopic ?? this.options.transactionalId,
      partition,
      stores: [{ name: this.metaName, codec: stringCodec }, ...this.options.stores.map((s) => ({ name: s.name, codec: s.codec }))],
    });
    this.storage = storage;
    this.stores = storage.stores;
    const sources = this.restoreSources();
    let plan = storage.begin(sources);
    const counts = new Map<string, number>();
    const targets = (from: ReadonlyMap<string, string> | undefined): RestoreTarget[] =>
      sources
        .filter((source) => this.stores.has(source.store)) // a rebuilt store's topics are its processor's to read
        .map(({ store: name, topic }) => {
          const store = this.stores.get(name)!;
          const external = this.external.get(name);
          const now = Date.now();
          const offset = from?.get(name);
          return {
            topic,
            partition,
            from: offset === undefined ? undefined : BigInt(offset),
            onRecord: (key: string, value: Buffer | null) => {
              counts.set(name, (counts.get(name) ?? 0) + 1);
              if (external === undefined || value === null) return store.restore(key, value);
              store.restore(key, external.payload(value));
              if (!external.keep(key, store.get(key), now)) store.restore(key, null);
            },
          };
        });
    let records: number;
    try {
      ({ records } = await restorePartitions(kafka, targets(plan.kind === 'tail' ? plan.from : undefined), { groupPrefix: groupId, logger: this.log }));
    } catch (error) {
      if (!(error instanceof RestoreOutOfRangeError)) throw error;
      this.log.warn('checkpointed offsets are gone from a restore source: restoring fully', { error });
      storage.wipe();
      counts.clear();
      plan = { kind: 'full', why: 'offsets out of range' };
      ({ records } = await restorePartitions(kafka, targets(undefined), { groupPrefix: groupId, logger: this.log }));
    }
    await this.learnWrittenEnds();
    // After a trusted checkpoint the rebuilt stores are as this unit left them: the processor
    // reads their topics only from where they stood then (another owner may have written since).
    let checkpointed: Map<string, bigint> | undefined;
    if (plan.kind === 'tail') {
      checkpointed = new Map();
      for (const source of sources) {
        const offset = plan.from.get(source.store);
        if (!this.stores.has(source.store) && offset !== undefined) checkpointed.set(source.topic, BigInt(offset));
      }
    }
    let replayed = 0;
    await rebuild?.({ read: async (replaySources) => (replayed += await this.replay(replaySources)), checkpointed });
    for (const [name, store] of this.stores) {
      const snapshot = this.snapshots.get(name);
      if (snapshot) for (const entry of store.changes()) snapshot.unwritten.set(entry.key, entry.value);
    }
    storage.commit();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    for (const store of this.stores.values()) {
      metrics.restoreSeconds.observe({ store: store.name }, seconds);
      metrics.restoreRecords.inc({ store: store.name }, counts.get(store.name) ?? 0);
    }
    this.restored = storage.persistent;
    this.state = 'running';
    return { records, replayed, seconds, restore: plan.kind, ...(plan.kind === 'full' ? { why: plan.why } : {}) };
  }

  /**
   * The end offsets of the snapshot stores' tail topics and of the position topics on this
   * partition: stable, as this unit's producer is their only writer, and final, as opening
   * the producer completed its earlier transactions (their markers are written).
   */
  private async learnWrittenEnds(): Promise<void> {
    const topics = [...new Set([...[...this.snapshots.values()].flatMap((s) => s.spec.tailTopics), ...(this.options.positionTopics ?? [])])];
    if (topics.length === 0) return;
    const ends = await endOffsets(this.options.kafka, topics.map((topic) => ({ topic, partition: this.options.partition })));
    topics.forEach((topic, i) => this.written.set(topic, BigInt(ends[i]!)));
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
          // Negative timestamps are the protocol's special values (latest, earliest, max…): 0 is the start.
          const found = (await admin.fetchTopicOffsetsByTimestamp(source.topic, Math.max(0, timestamp))).find((o) => o.partition === partition);
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
        clamp: true,
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
    const snapshotChanges = new Map<string, ReturnType<TaskStore<unknown>['changes']>>();
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
      ends = await commitTransaction(this.producer, { outputs: all, partition, offsets: { groupId, positions: [...positions], metadata: this.positionMetadata() } });
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
    try {
      this.storage!.commit(); // one write of every store's staged writes
    } catch (error) {
      // The transaction committed but the state did not follow: never checkpoint it.
      this.restored = false;
      this.state = 'broken';
      throw new OrdoError(`state of partition ${partition} could not be written after its transaction committed`, { cause: error });
    }
    metrics.transactionSeconds.observe({ outcome: 'commit' }, Number(process.hrtime.bigint() - startedAt) / 1e9);
  }

  /** Where this transaction leaves the position topics on this partition, for the offset commit's metadata. */
  private positionMetadata(): ((written: WrittenEnds) => string) | undefined {
    const topics = this.options.positionTopics ?? [];
    if (topics.length === 0) return undefined;
    const { partition } = this.options;
    return (written) => {
      const ends = new Map<string, bigint>();
      for (const topic of topics) {
        const end = written.get(`${topic}/${partition}`) ?? this.written.get(topic);
        if (end !== undefined) ends.set(topic, end);
      }
      return encodePositionMetadata({ ends });
    };
  }

  /**
   * Closes the unit (callers wait for an in-flight commit first). A persistent unit that
   * restored completely and never failed writes a checkpoint first: its snapshot stores'
   * unwritten changes go out in one last transaction, then the restore sources' end offsets
   * (final: this unit's producer is their only writer) are recorded with the state. Any
   * failure there only means a full restore next time.
   */
  async close(): Promise<void> {
    const storage = this.storage;
    try {
      if (storage && this.restored && this.state === 'running') await this.checkpoint(storage);
    } catch (error) {
      this.log.warn('state checkpoint not written: the next start restores fully', { error });
    } finally {
      if (this.state !== 'fenced' && this.state !== 'broken') this.state = 'closed';
      await storage?.close().catch((error: unknown) => this.log.warn('state close failed', { error }));
      await this.producer.disconnect().catch((error: unknown) => this.log.warn('producer disconnect failed', { error }));
    }
  }

  private async checkpoint(storage: TaskStateStores): Promise<void> {
    if ([...this.snapshots.values()].some((s) => s.unwritten.size > 0)) {
      for (const snapshot of this.snapshots.values()) snapshot.writtenAt = Number.NEGATIVE_INFINITY; // due now
      await this.commit([], []);
    }
    const sources = this.restoreSources();
    const ends = await endOffsets(this.options.kafka, sources);
    await storage.checkpoint(sources.map((source, i) => ({ ...source, offset: ends[i]! })));
    this.log.info('state checkpoint written', { sources: sources.length });
  }
}
