import type { HybridClock } from '../clock/hybrid-clock.js';
import type { OrdoConfig } from '../config/config.js';
import { formatServiceTime, parseServiceTime } from '../clock/service-time.js';
import { numberCodec, stringCodec } from '../engine/state-store.js';
import type { ProcessResult, StoreSpec, TaskContext, TaskProcessor } from '../engine/task-processor.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { unframe } from '../schema/wire-format.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import type { MeterCatalog } from '../usage/meters.js';
import { AGGREGATES_STORE, AggregateStep, UNIQUE_STORE, aggregateCodec, isFinal } from './aggregate.js';
import { toDeadLetterRecord, toLateRecord } from './dead-letter.js';
import { DEDUPE_STORE, DedupeStep } from './dedupe.js';
import { DecodeStep, schemaIdsOf } from './decode.js';
import { EncodeStep } from './encode.js';
import { type BufferedEvent, type OrderItem, OrderStep, REORDER_STORE, SEQUENCE_STORE, bufferedCodec } from './order.js';
import type { SourceRecord } from './records.js';
import { type StampStats, StampStep } from './stamp.js';

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
}

/** The chain's settings that come straight from the config (documented in src/config/config.ts). */
export type PipelineSettings = PipelineWiring &
  Pick<OrdoConfig, 'dedupeWindowMs' | 'allowedLatenessMs' | 'maxFutureMs' | 'reorderWindowMs' | 'reorderMaxEvents' | 'latePolicy' | 'watermarkIntervalMs'>;

/**
 * The chain's stores. The aggregates store's changelog is the aggregates topic itself: the
 * chain writes every changed aggregate there in the same transaction anyway, so a second
 * copy would double the writes. Restore keeps only windows that can still change.
 */
export function pipelineStores(settings: Pick<PipelineSettings, 'aggregatesTopic' | 'allowedLatenessMs'>): StoreSpec[] {
  const lateness = settings.allowedLatenessMs;
  return [
    { name: DEDUPE_STORE, codec: numberCodec },
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
    { name: REORDER_STORE, codec: bufferedCodec },
    { name: SEQUENCE_STORE, codec: stringCodec },
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
  readonly clock: HybridClock;
  private readonly decode: DecodeStep;
  private readonly stamp: StampStep;
  private readonly dedupe: DedupeStep;
  private readonly aggregate: AggregateStep;
  private readonly encode: EncodeStep;
  private readonly order: OrderStep;
  /** When this task last published its frontier to the watermarks topic (wall clock). */
  private watermarkPublishedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly settings: PipelineSettings) {
    this.clock = settings.clock;
    this.stores = pipelineStores(settings);
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
    this.order = new OrderStep({
      reorderWindowMs: settings.reorderWindowMs,
      maxBuffered: settings.reorderMaxEvents,
      latePolicy: settings.latePolicy,
      stamp: () => this.clock.now(),
    });
  }

  /** Failover: adopt the highest service time already emitted for this partition. */
  onRestored(context: TaskContext): void {
    const hwm = context.meta.get(META_CLOCK_HWM);
    if (hwm !== undefined) this.clock.witness(parseServiceTime(hwm));
    this.order.restore(context.store<BufferedEvent>(REORDER_STORE), context.meta);
  }

  prepare(records: readonly SourceRecord[]): Promise<void> {
    return this.settings.catalog.prefetch(schemaIdsOf(records));
  }

  process(records: readonly SourceRecord[], context: TaskContext): ProcessResult {
    const { dlqTopic, lateTopic } = this.settings;
    const node = this.clock.node;
    const decoded = this.decode.run(records);
    const stats: StampStats = { skewsMs: [], rejectedForSkew: 0 };
    const stamped = this.stamp.run(decoded.items, stats);
    const measured = this.aggregate.measure(stamped.items);
    const deduped = this.dedupe.run(measured.items, context.store<number>(DEDUPE_STORE));
    const aggregated = this.aggregate.apply(
      deduped.fresh,
      context.store<UsageAggregate>(AGGREGATES_STORE),
      context.store<number>(UNIQUE_STORE),
    );
    const dead = [...decoded.dead, ...stamped.dead, ...measured.dead];
    const encoded = this.encode.run(aggregated.events);
    const items: OrderItem[] = aggregated.events.map((e, i) => ({
      subject: e.event.subject,
      orderKey: e.orderKey,
      record: encoded[i]!,
      source: e.source,
      producer: e.producer,
    }));
    const ordered = this.order.run(items, this.orderStores(context));
    const outputs = ordered.emitted;
    outputs.push(...aggregated.outputs);
    for (const late of aggregated.late) outputs.push(toLateRecord(late, lateTopic, node));
    for (const late of ordered.late) outputs.push(toLateRecord(late, lateTopic, node));
    for (const d of dead) outputs.push(toDeadLetterRecord(d, dlqTopic, node));
    if (stamped.items.length > 0) context.meta.put(META_CLOCK_HWM, formatServiceTime(this.clock.last));
    return {
      outputs,
      report: {
        deadLetters: dead,
        clockSkewsMs: stats.skewsMs,
        clockSkewRejected: stats.rejectedForSkew,
        duplicates: deduped.duplicates,
        late: [...aggregated.late, ...ordered.late],
        expired: deduped.expired + aggregated.expired,
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
    const now = this.clock.physical.now();
    const ordered = this.order.run([], this.orderStores(context), now);
    const outputs = ordered.emitted;
    const { watermarksTopic, watermarkIntervalMs } = this.settings;
    if (watermarkIntervalMs > 0 && now - this.watermarkPublishedAt >= watermarkIntervalMs && Number.isFinite(this.order.frontier)) {
      outputs.push({ topic: watermarksTopic, key: String(context.partition), value: String(this.order.frontier), headers: {} });
      this.watermarkPublishedAt = now;
    }
    if (outputs.length === 0) return undefined;
    if (ordered.emitted.length > 0) context.meta.put(META_CLOCK_HWM, formatServiceTime(this.clock.last));
    return {
      outputs,
      report: { deadLetters: [], violations: ordered.violations, forcedEmits: ordered.forced, buffered: this.order.buffered, originTimesMs: ordered.emittedOriginMs },
    };
  }

  private orderStores(context: TaskContext): Parameters<OrderStep['run']>[1] {
    return { buffer: context.store<BufferedEvent>(REORDER_STORE), sequences: context.store<string>(SEQUENCE_STORE), meta: context.meta };
  }
}
