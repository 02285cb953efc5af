import type { Admin, Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { Liveness } from '../engine/liveness.js';
import { retrying } from '../engine/retry.js';
import { PartitionFollower } from '../engine/stream-consumer.js';
import { waitForTopic } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { schemaIdsOf } from '../processors/decode.js';
import { ResolverCache } from '../schema/resolvers.js';
import { unframe } from '../schema/wire-format.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../schema/usage-event.js';
import type { MeterCatalog } from '../usage/meters.js';
import { type ReceiptAnswer, type TrailAnswer, receiptAnswer, trailAnswer } from './answers.js';
import { type EntryContext, type Receipt, type ReceiptTopic, toEntries } from './entries.js';
import { ReceiptIndex } from './receipt-index.js';

/** How far the index has read each topic, and how far back it can answer. */
export interface ReceiptsFreshness {
  /** Every topic applied up to its end offset last seen. */
  caughtUp: boolean;
  lagRecords: number | null;
  topics: Record<ReceiptTopic, { topic: string; lagRecords: number | null; partitions: { partition: number; appliedOffset: string; endOffset: string | null }[] }>;
  retentionMs: number;
  /** Records written before this instant have left the index: an event older than it is "not seen" for that reason. */
  retentionHorizon: string;
  /** The oldest record still indexed, if any. */
  oldestIndexed: string | null;
}

export interface ReceiptsServiceOptions {
  kafka: Kafka;
  config: Pick<OrdoConfig, 'topics' | 'receipts' | 'trails' | 'stateDir' | 'nodeId' | 'stuckAfterMs'>;
  catalog: SchemaCatalog;
  meters: MeterCatalog;
  logger: Logger;
  metrics: OrdoMetrics;
  /** Consumer group prefix: each topic's follower joins `<group>-<8 hex>`, a group of its own per start. */
  group: string;
  /** The reader cannot go on (its consumer crashed for good). */
  onFailure?: (error: unknown) => void;
  now?: () => number;
}

/** Fetched batches queued for the index at most; beyond it the followers hold theirs. */
const MAX_QUEUED_BATCHES = 16;
/** Entries removed per retention step (one lmdb transaction), and steps per tick. */
const PRUNE_STEP = 5_000;
const PRUNE_STEPS_PER_TICK = 20;
const TICK_MS = 2_000;

/** Where the index lives: the configured dir, else `<ORDO_STATE_DIR>/receipts-<node>`, else a fresh temporary dir. */
export function receiptsDir(config: Pick<OrdoConfig, 'receipts' | 'stateDir' | 'nodeId'>): string | undefined {
  if (config.receipts.dir !== undefined) return config.receipts.dir;
  if (config.stateDir !== undefined) return `${config.stateDir}/receipts-${config.nodeId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  return undefined;
}

/**
 * The api replica's receipts: follows the ordered, DLQ, late and duplicates topics from the
 * positions its index stored (or from the beginning) and indexes each batch with its next
 * offset in one lmdb transaction. Lookups read the index only.
 */
export class ReceiptsService {
  readonly index: ReceiptIndex;
  private readonly topics: Record<ReceiptTopic, string>;
  private readonly followers = new Map<ReceiptTopic, PartitionFollower>();
  private readonly applied = new Map<ReceiptTopic, Map<number, bigint>>();
  private readonly ends = new Map<ReceiptTopic, Map<number, bigint>>();
  private readonly queue: { topic: ReceiptTopic; partition: number; last: bigint; records: SourceRecord[] }[] = [];
  private draining: Promise<void> | undefined;
  private readonly waiters: (() => void)[] = [];
  private readonly admin: Admin;
  private readonly resolvers = new ResolverCache(usageEventType);
  private readonly context: EntryContext;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failure: Error | undefined;
  private readonly now: () => number;

  constructor(private readonly options: ReceiptsServiceOptions) {
    const t = options.config.topics;
    this.topics = { ordered: t.ordered, dlq: t.dlq, late: t.late, duplicates: t.duplicates };
    this.index = new ReceiptIndex({ dir: receiptsDir(options.config), topics: this.topics, terminalTypes: options.config.trails.terminalTypes });
    this.admin = options.kafka.admin();
    this.now = options.now ?? Date.now;
    this.context = { decode: (value) => this.decode(value), meters: options.meters, trailKey: options.config.trails.key };
    for (const topic of Object.keys(this.topics) as ReceiptTopic[]) this.applied.set(topic, this.index.positions(topic));
  }

  /**
   * Checks the stored positions against the topics (a position past a topic's end means the
   * topic was recreated: the index starts over), then starts following each topic once it
   * exists. Resolves once the check is done; followers of topics still missing start later.
   */
  async start(): Promise<void> {
    // A broker still starting (or a leader moving) is retried like everywhere (engine/retry.ts).
    const checked = await retrying(() => this.checkPositions(), {
      what: 'receipts index check',
      log: this.options.logger,
      liveness: new Liveness(this.options.config.stuckAfterMs),
      abandoned: () => this.stopped,
    });
    if (!checked.ok) {
      if (checked.why === 'abandoned') return;
      throw checked.error;
    }
    for (const role of Object.keys(this.topics) as ReceiptTopic[]) void this.follow(role);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    await this.refreshEnds().catch((error: unknown) => this.options.logger.warn('receipts: end offset refresh failed', { error }));
  }

  private async checkPositions(): Promise<void> {
    await this.admin.connect();
    let stale = false;
    const existing = new Set(await this.admin.listTopics());
    for (const [role, topic] of Object.entries(this.topics) as [ReceiptTopic, string][]) {
      const stored = this.applied.get(role)!;
      if (!existing.has(topic)) {
        stale ||= stored.size > 0;
        continue;
      }
      const offsets = await this.admin.fetchTopicOffsets(topic);
      for (const { partition, high } of offsets) if ((stored.get(partition) ?? 0n) > BigInt(high)) stale = true;
      if ([...stored.keys()].some((p) => !offsets.some((o) => o.partition === p))) stale = true;
    }
    if (stale) {
      this.options.logger.warn('the receipts index is ahead of its topics (recreated?): rebuilding it from the topics', { topics: this.topics });
      this.index.reset();
      for (const topic of this.applied.keys()) this.applied.set(topic, new Map());
    }
  }

  /** Resolves once every topic that exists is applied up to its end offsets at the time of the call. */
  async caughtUp(): Promise<void> {
    await this.refreshEnds();
    const target = new Map([...this.ends].map(([topic, ends]) => [topic, new Map(ends)]));
    const reached = (): boolean =>
      [...target].every(([topic, ends]) => [...ends].every(([p, end]) => (this.applied.get(topic)?.get(p) ?? 0n) >= end));
    while (!reached() && !this.stopped && this.failure === undefined) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure !== undefined) throw this.failure;
  }

  receipt(source: string, id: string): ReceiptAnswer | undefined {
    return receiptAnswer(source, id, this.index.receipts(source, id));
  }

  /** A receipt by DLQ position, for a letter whose value does not decode. */
  letter(partition: number, offset: string): Receipt | undefined {
    return this.index.letter({ partition, offset });
  }

  /** The trail's events kept by `keep` (subject scope, deletions), as an answer. */
  trail(id: string, keep: (subject: string) => boolean, limit: number): TrailAnswer | undefined {
    const { events } = this.index.trail(id, 100_000);
    const { terminalTypes, stallMs } = this.options.config.trails;
    return trailAnswer(id, events.filter((e) => keep(e.subject)), { terminalTypes, stallMs, now: this.now(), limit });
  }

  freshness(): ReceiptsFreshness {
    let caughtUp = true;
    let total = 0;
    let known = true;
    const topics = {} as ReceiptsFreshness['topics'];
    for (const [role, topic] of Object.entries(this.topics) as [ReceiptTopic, string][]) {
      const ends = this.ends.get(role);
      const applied = this.applied.get(role) ?? new Map<number, bigint>();
      if (ends === undefined) {
        known = false;
        caughtUp = false;
        topics[role] = { topic, lagRecords: null, partitions: [] };
        continue;
      }
      let lag = 0n;
      const partitions = [...ends].sort((a, b) => a[0] - b[0]).map(([partition, end]) => {
        const at = applied.get(partition) ?? 0n;
        if (at < end) lag += end - at;
        return { partition, appliedOffset: at.toString(), endOffset: end.toString() };
      });
      if (lag > 0n) caughtUp = false;
      total += Number(lag);
      topics[role] = { topic, lagRecords: Number(lag), partitions };
    }
    const { retentionMs } = this.options.config.receipts;
    const oldest = this.index.oldest();
    return {
      caughtUp,
      lagRecords: known ? total : null,
      topics,
      retentionMs,
      retentionHorizon: new Date(this.now() - retentionMs).toISOString(),
      oldestIndexed: oldest === undefined ? null : new Date(oldest).toISOString(),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.followers.values()].map((f) => f.stop()));
    await this.draining?.catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
    this.wake();
    await this.index.close();
  }

  private async follow(role: ReceiptTopic): Promise<void> {
    const topic = this.topics[role];
    const log = this.options.logger.child({ topic });
    try {
      const partitions = await waitForTopic(this.admin, topic, { stopped: () => this.stopped, logger: log });
      if (partitions === undefined || this.stopped) return;
      const applied = this.applied.get(role)!;
      const follower = new PartitionFollower({
        kafka: this.options.kafka,
        topic,
        partitions,
        group: `${this.options.group}-${role}`,
        logger: log,
        positions: () => new Map(Array.from({ length: partitions }, (_, p) => [p, applied.get(p) ?? 0n])),
        full: () => this.queue.length >= MAX_QUEUED_BATCHES,
        onBatch: (partition, _first, last, records) => {
          this.queue.push({ topic: role, partition, last, records });
          this.drain();
        },
        onFailure: (error) => this.fail(error),
      });
      this.followers.set(role, follower);
      await follower.start();
    } catch (error) {
      if (!this.stopped) this.fail(error);
    }
  }

  private drain(): void {
    this.draining ??= (async () => {
      try {
        while (this.queue.length > 0 && !this.stopped) {
          const batch = this.queue[0]!;
          await this.prefetch(batch.records);
          if (this.stopped) return;
          this.queue.shift();
          this.applyBatch(batch);
          for (const f of this.followers.values()) f.release();
        }
      } catch (error) {
        this.fail(error);
      } finally {
        this.draining = undefined;
      }
    })();
  }

  /** Schema lookups are retried while the registry is away: a receipt is never indexed undecoded for that. */
  private async prefetch(records: readonly SourceRecord[]): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.options.catalog.prefetch(schemaIdsOf(records.filter((r) => r.topic !== this.topics.duplicates)));
        return;
      } catch (error) {
        if (attempt % 10 === 0) this.options.logger.warn('receipts: schema lookup failed; retrying', { error });
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** Math.min(attempt, 5))));
      }
    }
  }

  private applyBatch(batch: { topic: ReceiptTopic; partition: number; last: bigint; records: SourceRecord[] }): void {
    const applied = this.applied.get(batch.topic)!;
    const position = applied.get(batch.partition) ?? 0n;
    const next = batch.last + 1n;
    if (next <= position) return; // re-read after a rejoin
    const records = batch.records
      .filter((r) => BigInt(r.offset) >= position)
      .map((r) => ({ at: r.timestamp, entries: toEntries(batch.topic, r, this.context) }));
    const result = this.index.apply(batch.topic, batch.partition, next, records);
    applied.set(batch.partition, next);
    const m = this.options.metrics;
    for (const outcome of result.outcomes) if (outcome !== 'corrected') m.receiptsIndexed.inc({ outcome });
    for (const trail of result.completed) m.trailDuration.observe(Math.max(0, trail.durationMs) / 1000);
    this.wake();
  }

  /**
   * Leniently, unlike the pipeline's DecodeStep: a dead letter rejected for its content (a
   * bad value, a missing field's check) still names its source and id, and is indexed
   * under them. Only bytes that are no UsageEvent at all are not.
   */
  private decode(value: Buffer | null): UsageEvent | undefined {
    try {
      const { schemaId, body } = unframe(value);
      const writer = this.options.catalog.writerType(schemaId);
      if (writer === undefined || writer === null) return undefined;
      const resolver = this.resolvers.resolverFor(writer);
      if (resolver instanceof Error) return undefined;
      const event = usageEventType.fromBuffer(body, resolver, true) as UsageEvent;
      return typeof event.source === 'string' && typeof event.id === 'string' ? event : undefined;
    } catch {
      return undefined;
    }
  }

  private tick(): void {
    const { retentionMs } = this.options.config.receipts;
    const horizon = this.now() - retentionMs;
    try {
      for (let step = 0; step < PRUNE_STEPS_PER_TICK && this.index.prune(horizon, PRUNE_STEP) === PRUNE_STEP; step++);
    } catch (error) {
      this.options.logger.warn('receipts: retention step failed', { error });
    }
    const m = this.options.metrics;
    m.receiptsEntries.set(this.index.entries());
    const counts = this.index.trailCounts(this.now() - this.options.config.trails.stallMs);
    m.trailsOpen.set(counts.open);
    m.trailsStalled.set(counts.stalled);
    this.refreshEnds().then(
      () => m.receiptsLag.set(this.freshness().lagRecords ?? 0),
      (error: unknown) => this.options.logger.warn('receipts: end offset refresh failed', { error }),
    );
  }

  private async refreshEnds(): Promise<void> {
    const existing = new Set(await this.admin.listTopics());
    for (const [role, topic] of Object.entries(this.topics) as [ReceiptTopic, string][]) {
      if (!existing.has(topic)) continue;
      const offsets = await this.admin.fetchTopicOffsets(topic);
      const applied = this.applied.get(role)!;
      this.ends.set(role, new Map(offsets.map((o) => [o.partition, BigInt(o.high)])));
      // Nothing to read below the log start (retention removed it).
      for (const { partition, low } of offsets) if ((applied.get(partition) ?? 0n) < BigInt(low)) applied.set(partition, BigInt(low));
    }
    this.wake();
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined || this.stopped) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.options.logger.error('receipts index stopped', { error });
    this.options.onFailure?.(error);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
