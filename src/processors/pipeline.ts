import type { HybridClock } from '../clock/hybrid-clock.js';
import { OrdoError } from '../errors.js';
import type { OrdoConfig } from '../config/config.js';
import { formatServiceTime, millisOf, parseServiceTime } from '../clock/service-time.js';
import { numberCodec, stringCodec } from '../model/store.js';
import { type ProcessResult, type Replay, type StoreSpec, type TaskContext, type TaskProcessor, tailKey } from '../engine/task-processor.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { unframe } from '../schema/wire-format.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import type { MeterCatalog } from '../usage/meters.js';
import { AGGREGATES_STORE, AggregateStep, UNIQUE_STORE, aggregateCodec, isFinal } from './aggregate.js';
import { toDeadLetterRecord, toLateRecord } from './dead-letter.js';
import { DEDUPE_STORE, DedupeStep, dedupeKey, toDuplicatesRecord } from './dedupe.js';
import { DecodeStep, schemaIdsOf } from './decode.js';
import { EncodeStep } from './encode.js';
import { heldPositionsCodec } from './held-positions.js';
import { HELD_KEY, type HeldEvent, type HeldPosition, type OrderItem, OrderStep, REORDER_STORE, SEQUENCE_STORE, replayOrdered } from './order.js';
import type { SourceRecord } from '../model/records.js';
import { type StampStats, StampStep, withStamp } from './stamp.js';
import { usageEventType } from '../schema/usage-event.js';
import type { DeletionSweeper, SweepResult } from '../deletion/sweep.js';
import type { RetentionSweeper } from '../retention/retention-sweep.js';
import { CONTRIBUTIONS_STORE, type Contribution, contributionCodec } from '../corrections/contributions.js';
import { CorrectionStep } from '../corrections/correction-step.js';
import { headerText } from '../corrections/correction.js';
import { pendingStore } from '../corrections/pending.js';
import { HEADER } from '../model/records.js';

export const META_CLOCK_HWM = 'clock-hwm';

/** What the role wires in: the clock, topics, schema ids, catalogs. */
export interface PipelineWiring {
  /**
   * The worker's one clock, shared by its tasks so (service-time, service-node) stays
   * unique per node. Its node id also names the node in dead-letter headers.
   */
  clock: HybridClock;
  orderedTopic: string;
  dlqTopic: string;
  lateTopic: string;
  aggregatesTopic: string;
  /** Registry ids of UsageEvent (ordered topic) and UsageAggregate (aggregates topic). */
  outputSchemaId: number;
  aggregateSchemaId: number;
  catalog: SchemaCatalog;
  meters: MeterCatalog;
  /** Where an idle partition publishes its frontier for the `merge` role. */
  watermarksTopic: string;
  /** Where a batch's dropped re-sends are listed (one record per transaction, for receipts); undefined: not listed. */
  duplicatesTopic?: string;
  /** Subject deletions (src/deletion/sweep.ts): the policy for their events and the lazy sweep; one per task. */
  sweeper?: DeletionSweeper;
  /** Retention of old windows (src/retention/retention-sweep.ts): tombstones expired aggregates; one per task. */
  retentionSweeper?: RetentionSweeper;
}

/** The chain's settings that come straight from the config (documented in src/config/config.ts). */
export type PipelineSettings = PipelineWiring &
  Pick<OrdoConfig, 'dedupeWindowMs' | 'allowedLatenessMs' | 'maxFutureMs' | 'reorderWindowMs' | 'reorderMaxEvents' | 'latePolicy' | 'watermarkIntervalMs'> &
  /** ORDO_CORRECTIONS (default on); the hold of early corrections is CorrectionStep's default unless given (tests). */
  Partial<Pick<OrdoConfig, 'corrections'>> & { correctionHoldMs?: number; correctionMaxPending?: number };

/** How often the sequences store's changed entries are written to its changelog. */
export const SEQUENCES_SNAPSHOT_MS = 10_000;

/**
 * The chain's stores, each fact written once:
 * - `aggregates`: its changelog is the aggregates topic itself (every changed aggregate goes
 *   there in the same transaction anyway); restore keeps only windows that can still change.
 * - `dedupe`: no changelog; rebuilt from the ordered and late topics (every claimed id left
 *   on one of them, with its claim time as the record timestamp) and the held events.
 * - `sequences`: its changelog is written every SEQUENCES_SNAPSHOT_MS; what changed since is
 *   replayed from the ordered topic (each record carries its `ordo-seq` and order key).
 * - `reorder`: the positions (input offset, arrival stamp) of the held events, one entry;
 *   the events themselves are read from the input again on restore.
 * - `unique`: its own changelog (a write per new member only).
 * - `contributions` (corrections): no changelog; rebuilt from the ordered topic (and the
 *   late topic's `out-of-order` events, which were aggregated too) and the held events.
 * - corrections waiting for their original: in `meta` (a write per correction that came before its original).
 */
export function pipelineStores(settings: Pick<PipelineSettings, 'aggregatesTopic' | 'allowedLatenessMs' | 'orderedTopic' | 'lateTopic'>): StoreSpec[] {
  const lateness = settings.allowedLatenessMs;
  return [
    { name: DEDUPE_STORE, codec: numberCodec, rebuilt: { from: [settings.orderedTopic, settings.lateTopic] } },
    {
      name: AGGREGATES_STORE,
      codec: aggregateCodec,
      changelog: {
        topic: settings.aggregatesTopic,
        payload: (value) => unframe(value).body,
        keep: (_key, aggregate, now) => !isFinal((aggregate as UsageAggregate).windowEnd, now, lateness),
      },
    },
    { name: UNIQUE_STORE, codec: numberCodec },
    { name: REORDER_STORE, codec: heldPositionsCodec },
    { name: SEQUENCE_STORE, codec: stringCodec, snapshot: { everyMs: SEQUENCES_SNAPSHOT_MS, tailTopics: [settings.orderedTopic] } },
    { name: CONTRIBUTIONS_STORE, codec: contributionCodec, rebuilt: { from: [settings.orderedTopic, settings.lateTopic] } },
  ] as StoreSpec[];
}

/**
 * The `pipeline` role's chain for one task, one pass through the broker:
 * decode -> stamp -> measure -> dedupe -> aggregate -> encode -> order. Bad records go to
 * the DLQ, events too late for their window (or, by policy, for their order slot) to the
 * late topic; both with the reason. Order runs on encoded records: its buffer (a
 * changelog-backed store) then holds exactly the bytes it will emit.
 * Values are measured before dedupe so that an event dead-lettered for a bad value never
 * claims its id: the corrected re-send is counted.
 */
export class PipelineProcessor implements TaskProcessor {
  readonly stores: readonly StoreSpec[];
  /**
   * Every event below a committed input position is in the aggregates that position's
   * transaction (or an earlier one) wrote: events are aggregated in the batch they arrive
   * in, also those the reorder buffer then holds for the ordered topic. Where the aggregates
   * ended goes with each committed position, for the api's read-your-writes.
   */
  readonly positionTopics: readonly string[];
  readonly clock: HybridClock;
  private readonly decode: DecodeStep;
  private readonly stamp: StampStep;
  private readonly dedupe: DedupeStep;
  private readonly aggregate: AggregateStep;
  private readonly encode: EncodeStep;
  private readonly order: OrderStep;
  private readonly corrections: CorrectionStep;
  /** When this task last published its frontier to the watermarks topic (wall clock). */
  private watermarkPublishedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly settings: PipelineSettings) {
    this.clock = settings.clock;
    this.stores = pipelineStores(settings);
    this.positionTopics = [settings.aggregatesTopic];
    this.decode = new DecodeStep(settings.catalog);
    this.stamp = new StampStep(this.clock);
    this.dedupe = new DedupeStep(settings.dedupeWindowMs);
    this.aggregate = new AggregateStep({
      meters: settings.meters,
      aggregatesTopic: settings.aggregatesTopic,
      aggregateSchemaId: settings.aggregateSchemaId,
      allowedLatenessMs: settings.allowedLatenessMs,
      maxFutureMs: settings.maxFutureMs,
    });
    this.encode = new EncodeStep(settings.orderedTopic, settings.outputSchemaId);
    this.corrections = new CorrectionStep({
      enabled: settings.corrections?.enabled ?? true,
      meters: settings.meters,
      allowedLatenessMs: settings.allowedLatenessMs,
      maxFutureMs: settings.maxFutureMs,
      aggregatesTopic: settings.aggregatesTopic,
      aggregateSchemaId: settings.aggregateSchemaId,
      clock: this.clock,
      holdMs: settings.correctionHoldMs,
      maxPending: settings.correctionMaxPending,
    });
    this.order = new OrderStep({
      reorderWindowMs: settings.reorderWindowMs,
      maxBuffered: settings.reorderMaxEvents,
      latePolicy: settings.latePolicy,
      stamp: () => this.clock.now(),
    });
  }

  /**
   * Failover: adopt the highest service time already emitted for this partition, then
   * rebuild what has no changelog, in one replay: the dedupe ids claimed within the window
   * (ordered and late topics, by record timestamp), the sequences changed since their last
   * snapshot (ordered topic), and the held events (input topic, at their positions).
   */
  async onRestored(context: TaskContext, replay: Replay): Promise<void> {
    const { orderedTopic, lateTopic, dedupeWindowMs } = this.settings;
    const hwm = context.meta.get(META_CLOCK_HWM);
    if (hwm !== undefined) this.clock.witness(parseServiceTime(hwm));
    const dedupe = context.store<number>(DEDUPE_STORE);
    const sequences = context.store<string>(SEQUENCE_STORE);
    const positions = context.store<HeldPosition[]>(REORDER_STORE).get(HELD_KEY) ?? [];
    const correctionStores = { contributions: context.store<Contribution>(CONTRIBUTIONS_STORE), pending: pendingStore(context.meta) };
    if (hwm === undefined || parseServiceTime(hwm) === 0n) {
      // Nothing was ever stamped here: nothing emitted, claimed or held.
      this.order.restore([], context.meta);
      return;
    }
    const claim = (source: string, id: string, seenAt: number): void => {
      const key = dedupeKey(source, id);
      if (!((dedupe.get(key) ?? Number.NEGATIVE_INFINITY) >= seenAt)) dedupe.put(key, seenAt);
    };
    // Ids claimed at or before this are out of the window for every event still to come.
    const since = millisOf(parseServiceTime(hwm)) - dedupeWindowMs;
    const tail = context.meta.get(tailKey(SEQUENCE_STORE));
    const tailFrom = tail === undefined ? 0n : BigInt((JSON.parse(tail) as Record<string, string>)[orderedTopic] ?? '0');
    // From a trusted checkpoint (persistent state) the dedupe and sequences stores are as they
    // were at that checkpoint: only records written after it are read.
    const kept = replay.checkpointed;
    const orderedFrom = kept?.get(orderedTopic);
    const lateFrom = kept?.get(lateTopic);
    const late: SourceRecord[] = [];
    const heldAt = new Map(positions.map((p) => [p.offset.toString(), p]));
    const heldRecords: SourceRecord[] = [];
    // Corrections need what each accepted event contributed: every ordered record (and
    // `out-of-order` late one, aggregated too) still within reach of a correction. One
    // source per topic (the replay reads each topic once), from the earlier start.
    const hwmMs = millisOf(parseServiceTime(hwm));
    const corrections = this.corrections.enabled;
    const from = corrections ? Math.min(since + 1, this.corrections.replayFrom(hwmMs)) : since + 1;
    const contributed = (record: SourceRecord): void => void (corrections && this.corrections.replayRecord(record, correctionStores.contributions, hwmMs));
    const sources: Parameters<Replay['read']>[0][number][] = [
      {
        topic: orderedTopic,
        from: orderedFrom !== undefined ? { offset: orderedFrom } : { offset: tailFrom, timestamp: from },
        onRecord: (record) => {
          const subject = record.key?.toString('utf8') ?? '';
          const swept = this.settings.sweeper?.replaysOrdered(context.meta, subject, record.timestamp) === false;
          if ((orderedFrom !== undefined || BigInt(record.offset) >= tailFrom) && !swept) replayOrdered(record, sequences);
          if (record.timestamp > since) {
            const event = usageEventType.fromBuffer(unframe(record.value).body) as { source: string; id: string };
            claim(event.source, event.id, record.timestamp);
          }
          contributed(record);
        },
      },
      {
        topic: lateTopic,
        from: lateFrom !== undefined ? { offset: lateFrom } : { timestamp: from },
        onRecord: (record) => {
          if (record.timestamp > since) late.push(record);
          if (isOutOfOrder(record)) contributed(record);
        },
      },
    ];
    if (positions.length > 0) {
      const offsets = positions.map((p) => p.offset);
      const min = offsets.reduce((a, b) => (b < a ? b : a));
      const max = offsets.reduce((a, b) => (b > a ? b : a));
      sources.push({ topic: context.topic, from: { offset: min }, to: max + 1n, onRecord: (record) => void (heldAt.has(record.offset) && heldRecords.push(record)) });
    }
    await replay.read(sources);
    await this.settings.catalog.prefetch(schemaIdsOf([...late, ...heldRecords]));
    for (const item of this.decode.run(late).items) claim(item.event.source, item.event.id, item.source.timestamp);
    const decoded = this.decode.run(heldRecords);
    if (decoded.dead.length > 0 || decoded.items.length !== positions.length) {
      throw new OrdoError(
        `${positions.length} held events to restore, but ${decoded.items.length} read back from ${context.topic} partition ${context.partition} ` +
          `(offsets ${positions[0]!.offset}…): the input's retention removed held records, or they no longer decode`,
      );
    }
    // A correction's order key is its stamp (CorrectionStep.classify drops its time context), live and restored alike.
    const stamped = this.corrections.classify(decoded.items).items.map((d) => withStamp(d, heldAt.get(d.source.offset)!.stamp));
    const encoded = this.encode.run(stamped);
    const held: HeldEvent[] = stamped.map((e, i) => {
      claim(e.event.source, e.event.id, millisOf(e.stamp.time));
      return { subject: e.event.subject, time: e.orderKey.time, node: e.orderKey.node, offset: BigInt(e.source.offset), record: encoded[i]!, producer: e.producer, stamp: e.stamp };
    });
    this.order.restore(held, context.meta);
    if (corrections) {
      this.corrections.replayHeld([...stamped].sort((a, b) => (a.orderKey.time < b.orderKey.time ? -1 : a.orderKey.time > b.orderKey.time ? 1 : 0)), correctionStores.contributions, hwmMs);
      this.corrections.finishRestore(correctionStores, hwmMs, claim);
    }
  }

  prepare(records: readonly SourceRecord[]): Promise<void> {
    return this.settings.catalog.prefetch(schemaIdsOf(records));
  }

  process(records: readonly SourceRecord[], context: TaskContext): ProcessResult {
    const { dlqTopic, lateTopic } = this.settings;
    const node = this.clock.node;
    // Every event of this batch is stamped above this; every earlier one is committed.
    const horizon = millisOf(this.clock.last);
    const decoded = this.decode.run(records);
    const classified = this.corrections.classify(decoded.items);
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const stamped = this.stamp.run(classified.items, stats);
    const admitted = this.settings.sweeper?.admit(stamped.items, context.meta) ?? { items: stamped.items, dead: [] };
    const measured = this.corrections.measure(this.aggregate, admitted.items);
    const dedupeStore = context.store<number>(DEDUPE_STORE);
    const deduped = this.dedupe.run(measured.items, dedupeStore);
    const fresh = this.corrections.split(deduped.fresh);
    const aggregateStore = context.store<UsageAggregate>(AGGREGATES_STORE);
    const uniqueStore = context.store<number>(UNIQUE_STORE);
    const aggregated = this.aggregate.apply(fresh.events, aggregateStore, uniqueStore);
    const corrected = this.corrections.apply(aggregated.events, fresh.corrections, {
      contributions: context.store<Contribution>(CONTRIBUTIONS_STORE),
      pending: pendingStore(context.meta),
      aggregates: aggregateStore,
      unique: uniqueStore,
      dedupe: dedupeStore,
    });
    const dead = [...decoded.dead, ...classified.dead, ...stamped.dead, ...admitted.dead, ...measured.dead, ...corrected.dead];
    // Applied corrections go to the ordered topic too, each ordered after its original.
    const accepted = corrected.applied.length > 0 ? [...aggregated.events, ...corrected.applied] : aggregated.events;
    const encoded = this.encode.run(accepted);
    const items: OrderItem[] = accepted.map((e, i) => ({
      subject: e.event.subject,
      orderKey: e.orderKey,
      stamp: e.stamp,
      record: encoded[i]!,
      source: e.source,
      producer: e.producer,
    }));
    const ordered = this.order.run(items, this.orderStores(context));
    const outputs = ordered.emitted; // nothing reads `ordered.emitted` after this: no copy on the hot path
    // An aggregate's record timestamp is its batch's latest stamp, so that every record of a window lies
    // before its end + the allowed lateness + one batch's spread (the retention sweep reads by it).
    const stampedAt = millisOf(this.clock.last);
    for (const output of CorrectionStep.mergeOutputs(aggregated.outputs, corrected.outputs)) {
      output.timestamp = stampedAt; // records made for this batch
      outputs.push(output);
    }
    for (const late of aggregated.late) outputs.push(toLateRecord(late, lateTopic, node));
    for (const late of corrected.late) outputs.push(toLateRecord(late, lateTopic, node));
    for (const late of ordered.late) outputs.push(toLateRecord(late, lateTopic, node));
    for (const d of dead) outputs.push(toDeadLetterRecord(d, dlqTopic, node));
    const { duplicatesTopic } = this.settings;
    if (duplicatesTopic !== undefined && deduped.dropped.length > 0) outputs.push(toDuplicatesRecord(deduped.dropped, duplicatesTopic, context.partition));
    const swept = this.sweep(context);
    if (swept) outputs.push(...swept.outputs);
    const expired = this.expire(context, horizon);
    if (expired) outputs.push(...expired.outputs);
    if (stamped.items.length > 0 || (expired?.tombstoned ?? 0) > 0) context.meta.put(META_CLOCK_HWM, formatServiceTime(this.clock.last));
    return {
      outputs,
      report: {
        deadLetters: dead,
        clockSkewsMs: stats.skewsMs,
        clockSkewRejected: stats.rejectedForSkew,
        duplicates: deduped.duplicates,
        late: [...aggregated.late, ...ordered.late, ...corrected.late, ...(swept?.late ?? [])],
        expired: deduped.expired + aggregated.expired + corrected.expired,
        corrections: corrected.counts,
        violations: ordered.violations,
        forcedEmits: ordered.forced,
        buffered: this.order.buffered,
        originTimesMs: ordered.emittedOriginMs,
      },
    };
  }

  /**
   * An idle partition's clock tick: its watermark moves to the wall clock, events held long
   * enough leave, and at most every `watermarkIntervalMs` its frontier goes to the
   * watermarks topic, so the `merge` role's low watermark is not stalled by a quiet
   * partition. Nothing to commit: undefined (no transaction).
   */
  punctuate(context: TaskContext): ProcessResult | undefined {
    const horizon = millisOf(this.clock.last);
    const now = this.clock.physical.now();
    const ordered = this.order.run([], this.orderStores(context), now);
    const outputs = [...ordered.emitted];
    const swept = this.sweep(context);
    if (swept) outputs.push(...swept.outputs);
    const expired = this.expire(context, horizon);
    if (expired) outputs.push(...expired.outputs);
    const { watermarksTopic, watermarkIntervalMs } = this.settings;
    if (watermarkIntervalMs > 0 && now - this.watermarkPublishedAt >= watermarkIntervalMs && Number.isFinite(this.order.frontier)) {
      outputs.push({ topic: watermarksTopic, key: String(context.partition), value: String(this.order.frontier), headers: {} });
      this.watermarkPublishedAt = now;
    }
    const waited = this.corrections.expireIdle(now, { pending: pendingStore(context.meta), dedupe: context.store<number>(DEDUPE_STORE) });
    for (const d of waited.dead) outputs.push(toDeadLetterRecord(d, this.settings.dlqTopic, this.clock.node));
    if (outputs.length === 0 && swept === undefined && expired === undefined) return undefined;
    if (ordered.emitted.length > 0 || (expired?.tombstoned ?? 0) > 0) context.meta.put(META_CLOCK_HWM, formatServiceTime(this.clock.last));
    return {
      outputs,
      report: {
        deadLetters: waited.dead,
        corrections: waited.counts,
        late: swept?.late,
        violations: ordered.violations,
        forcedEmits: ordered.forced,
        buffered: this.order.buffered,
        originTimesMs: ordered.emittedOriginMs,
      },
    };
  }

  /** One bounded step of the deleted subjects' sweep, in this batch's (or tick's) transaction. */
  private sweep(context: TaskContext): SweepResult | undefined {
    const buffer = context.store<HeldPosition[]>(REORDER_STORE);
    return this.settings.sweeper?.step(
      context,
      { meta: context.meta, aggregates: context.store<UsageAggregate>(AGGREGATES_STORE), unique: context.store<number>(UNIQUE_STORE), sequences: context.store<string>(SEQUENCE_STORE) },
      { evict: (drop, limit) => this.order.evict(drop, limit, buffer) },
    );
  }

  /**
   * One bounded step of the retention sweep, in this batch's (or tick's) transaction. A tombstone is
   * judged by a fresh stamp of the clock (a local event: at least the wall clock), which the caller then
   * records as the partition's high-water mark: no later event can still count in a tombstoned window.
   */
  private expire(context: TaskContext, horizon: number): ReturnType<RetentionSweeper['step']> {
    const retention = this.settings.retentionSweeper;
    if (retention === undefined || !retention.active) return undefined;
    return retention.step(context.partition, context.meta, { horizon, now: millisOf(this.clock.now()) });
  }

  private orderStores(context: TaskContext): Parameters<OrderStep['run']>[1] {
    return { buffer: context.store<HeldPosition[]>(REORDER_STORE), sequences: context.store<string>(SEQUENCE_STORE), meta: context.meta };
  }
}

/** A late-topic record the order step routed away (`out-of-order`): it was aggregated all the same. */
function isOutOfOrder(record: SourceRecord): boolean {
  return headerText(record.headers[HEADER.lateReason]) === 'out-of-order';
}
