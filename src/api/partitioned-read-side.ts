import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { NodeRegistry } from '../engine/node-registry.js';
import { PartitionedReader } from '../engine/partitioned-reader.js';
import type { PartitionProgress } from '../engine/read-progress.js';
import type { Liveness } from '../engine/liveness.js';
import { partitionOf } from '../kafka/partition-of.js';
import type { TopicSpec } from '../kafka/topics.js';
import { ensureTopics } from '../kafka/topics.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import { type PartsAnswer, collectParts } from './query-parts.js';
import type { QueryPlan } from './query-plan.js';
import { ReadStore } from './read-store.js';
import { type ApiNodeInfo, decodeApiNodeInfo } from './router.js';

/** The api replicas' heartbeats: compacted, one partition (like the deliver role's nodes topic). */
export function apiNodesTopicSpec(config: Pick<OrdoConfig, 'topics'>): TopicSpec {
  return { topic: config.topics.apiNodes, partitions: 1, compacted: true };
}

/** Where the replica's store lives: ORDO_API_STORE_DIR, else `<ORDO_STATE_DIR>/api-<node>`, else undefined (a temporary directory). */
export function apiStoreDir(config: Pick<OrdoConfig, 'apiReads' | 'stateDir' | 'nodeId'>): string | undefined {
  if (config.apiReads.storeDir !== undefined) return config.apiReads.storeDir;
  if (config.stateDir !== undefined) return `${config.stateDir}/api-${config.nodeId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  return undefined;
}

/** What one replica contributes to a query from its own store. */
export interface LocalShare {
  parts: PartsAnswer;
  /** The partitions served, with how far this replica has applied each. */
  served: PartitionProgress[];
  /** Asked for, but not held as a consistent copy here. */
  missing: number[];
  /** Served, but below the read-your-writes position asked for when the wait ended. */
  unreached: { partition: number; offset: string; appliedOffset: string }[];
}

/** The read side as the fan-out sees it (the local replica). */
export interface LocalReadSide {
  readonly nodeId: string;
  /** Partitions of the aggregates topic (0: not known yet). */
  partitions(): number;
  /** Live replicas (this one included, with its current state) and what they hold. */
  nodes(): Map<string, ApiNodeInfo>;
  /** Serves `partitions` from the local store; with `positions`, waits up to `waitMs` for each to be applied that far. */
  serve(plan: QueryPlan, partitions: readonly number[], positions?: ReadonlyMap<number, bigint>, waitMs?: number): Promise<LocalShare>;
}

export interface PartitionedReadSideOptions {
  kafka: Kafka;
  config: OrdoConfig;
  /** The shared read group (apiReadsGroupId) and the prefix of this replica's own readers (apiGroupId). */
  groupId: string;
  ownGroupPrefix: string;
  logger: Logger;
  liveness: Liveness;
  /** Fetches what decoding the records needs (their schemas); throws what must stop the role (a schema conflict). */
  prefetch(records: SourceRecord[]): Promise<void>;
  /** The aggregate in a record; throws for a record that is not one (skipped, counted). */
  decode(record: SourceRecord): UsageAggregate;
  onSkipped?(record: SourceRecord, error: unknown): void;
  onApplied?(size: number): void;
  onFailure(error: unknown): void;
}

/**
 * The api replica's share of the aggregates topic, Kafka Streams' interactive queries for
 * Node: the shared group gives this replica some partitions (PartitionedReader), it keeps
 * them in its persistent store (ReadStore) with a checkpoint each, and it tells the others
 * in its heartbeats (NodeRegistry, the api nodes topic) where it answers and what it holds,
 * so any replica can route a query's partitions (router.ts, fan-out.ts).
 */
export class PartitionedReadSide implements LocalReadSide {
  readonly store: ReadStore;
  readonly reader: PartitionedReader;
  readonly registry: NodeRegistry;
  readonly nodeId: string;
  private misplaced = 0;
  /** Heartbeat info object -> its checked form (entries leave with the heartbeat they belong to). */
  private readonly decodedInfo = new WeakMap<object, ApiNodeInfo | undefined>();
  private readonly temporaryDir: string | undefined;
  private releaseTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly options: PartitionedReadSideOptions) {
    const { config, kafka } = options;
    this.nodeId = config.nodeId;
    this.log = options.logger.child({ topic: config.topics.aggregates });
    let dir = apiStoreDir(config);
    if (dir === undefined) dir = this.temporaryDir = mkdtempSync(join(tmpdir(), 'ordo-api-store-'));
    this.store = ReadStore.open({ dir, topic: config.topics.aggregates, logger: this.log });
    this.reader = new PartitionedReader({
      kafka,
      topic: config.topics.aggregates,
      groupId: options.groupId,
      nodeId: config.nodeId,
      store: this.store,
      apply: (partition, records, next) => this.apply(partition, records, next),
      logger: this.log,
      sessionTimeoutMs: config.apiReads.sessionTimeoutMs,
      heartbeatIntervalMs: Math.max(100, Math.floor(config.apiReads.sessionTimeoutMs / 3)),
      liveness: options.liveness,
      onFailure: options.onFailure,
      onChange: () => this.registry.setInfo(() => this.info()),
    });
    this.registry = new NodeRegistry({
      kafka,
      topic: config.topics.apiNodes,
      nodeId: config.nodeId,
      heartbeatMs: config.apiReads.nodeHeartbeatMs,
      ttlMs: config.apiReads.nodeTtlMs,
      groupId: `${options.ownGroupPrefix}-nodes`,
      logger: options.logger.child({ component: 'api-nodes' }),
      url: config.apiReads.advertisedUrl,
      info: () => this.info(),
      liveness: options.liveness,
      onFailure: options.onFailure,
    });
  }

  /** Creates the nodes topic if missing, joins the registry, then the shared group. */
  async start(): Promise<void> {
    const { config, kafka } = this.options;
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [apiNodesTopicSpec(config)], { create: config.createTopics, replicationFactor: config.replicationFactor });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await this.registry.start();
    await this.reader.start();
    this.releaseTimer = setInterval(() => void this.releaseServed(), this.options.config.apiReads.nodeHeartbeatMs * 2);
    this.releaseTimer.unref();
  }

  /** Drops the partitions held but not owned whose owner has a consistent copy (they were kept to answer while it restored). */
  private async releaseServed(): Promise<void> {
    const nodes = this.nodes();
    const owned = new Set(this.reader.ownedPartitions());
    for (const p of this.reader.heldPartitions().keys()) {
      if (owned.has(p)) continue;
      const served = [...nodes].some(([node, info]) => node !== this.nodeId && info.owned.includes(p) && info.held[String(p)]?.restoring === false);
      if (served) await this.reader.release(p).catch((error: unknown) => this.log.warn('releasing a partition failed; tried again later', { partition: p, error }));
    }
  }

  /** Resolves once the first assignment is positioned and read to the end offsets known then. */
  async caughtUp(): Promise<void> {
    await this.reader.caughtUp();
  }

  partitions(): number {
    return this.reader.partitions();
  }

  /** What this replica's heartbeats say (router.ts ApiNodeInfo). */
  info(): ApiNodeInfo {
    const held: ApiNodeInfo['held'] = {};
    for (const [p, h] of [...this.reader.heldPartitions()].sort((a, b) => a[0] - b[0])) {
      held[String(p)] = { next: h.next.toString(), end: h.end === undefined ? null : h.end.toString(), restoring: h.restoring };
    }
    return { url: this.options.config.apiReads.advertisedUrl, owned: this.reader.ownedPartitions(), held, misplaced: this.misplaced, partitions: this.reader.partitions() };
  }

  nodes(): Map<string, ApiNodeInfo> {
    // This replica as it is now (also before its first heartbeat went out, or after its registry failed).
    const out = new Map<string, ApiNodeInfo>([[this.nodeId, this.info()]]);
    for (const [node, raw] of this.registry.liveInfo()) {
      const info = this.decoded(raw);
      if (info !== undefined) out.set(node, info);
    }
    return out;
  }

  /** A peer's heartbeat info, checked once per heartbeat rather than once per query. */
  private decoded(raw: unknown): ApiNodeInfo | undefined {
    if (typeof raw !== 'object' || raw === null) return undefined;
    if (!this.decodedInfo.has(raw)) this.decodedInfo.set(raw, decodeApiNodeInfo(raw));
    return this.decodedInfo.get(raw);
  }

  async serve(plan: QueryPlan, partitions: readonly number[], positions?: ReadonlyMap<number, bigint>, waitMs = 0): Promise<LocalShare> {
    const wanted = [...new Set(partitions)].sort((a, b) => a - b);
    if (positions !== undefined && positions.size > 0) {
      const target = new Map([...positions].filter(([p]) => wanted.includes(p)));
      if (target.size > 0) await this.reader.waitApplied(target, waitMs);
    }
    // Held as a consistent copy now (checked after the wait: an assignment may have moved meanwhile).
    const held = this.reader.heldPartitions();
    const serving = wanted.filter((p) => held.get(p)?.restoring === false);
    const missing = wanted.filter((p) => !serving.includes(p));
    const parts = collectParts(plan, this.store, new Set(serving));
    const progress = this.reader.progress(serving).partitions;
    // The store's own checkpoint for what is held but no longer read (a stale copy).
    const served = progress.map((p) => ({ ...p, appliedOffset: (held.get(p.partition)?.next ?? BigInt(p.appliedOffset)).toString() }));
    const unreached: LocalShare['unreached'] = [];
    for (const p of served) {
      const target = positions?.get(p.partition);
      if (target !== undefined && BigInt(p.appliedOffset) < target) unreached.push({ partition: p.partition, offset: target.toString(), appliedOffset: p.appliedOffset });
    }
    return { parts, served, missing, unreached };
  }

  /** Per partition of the aggregates topic owned and positioned: the next offset applied (read-your-writes). */
  applied(): Map<number, bigint> {
    return this.reader.applied();
  }

  async stop(options: { leave?: boolean } = {}): Promise<void> {
    if (this.releaseTimer) clearInterval(this.releaseTimer);
    await this.reader.stop();
    await this.registry.stop(options);
    await this.store.close().catch(() => undefined);
    if (this.temporaryDir !== undefined) rmSync(this.temporaryDir, { recursive: true, force: true });
  }

  private async apply(partition: number, records: SourceRecord[], nextOffset: bigint): Promise<void> {
    await this.options.prefetch(records);
    const partitions = this.reader.partitions();
    const applied: { key: string; aggregate: UsageAggregate | null }[] = [];
    let misplaced = 0;
    for (const record of records) {
      if (record.key === null) continue;
      const key = record.key.toString('utf8');
      if (record.value === null) {
        applied.push({ key, aggregate: null }); // a subject deletion's sweep, or an expired window
        continue;
      }
      let aggregate: UsageAggregate;
      try {
        aggregate = this.options.decode(record);
      } catch (error) {
        // Not ours to dead-letter (the topic is the pipeline's output): skip it loudly.
        this.options.onSkipped?.(record, error);
        continue;
      }
      // The routers look for a subject in its partition only: say so when that would miss it.
      if (partitions > 0 && partitionOf(aggregate.subject, partitions) !== partition) misplaced += 1;
      applied.push({ key, aggregate });
    }
    await this.store.apply(partition, applied, nextOffset);
    if (misplaced > 0) {
      if (this.misplaced === 0) this.log.warn('aggregates in another partition than their subject hashes to: single-subject queries now ask every partition', { partition, misplaced });
      this.misplaced += misplaced;
      this.registry.setInfo(() => this.info());
    }
    this.options.onApplied?.(this.store.size());
  }
}
