import { expect } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { CORRECTION_HEADER, type CorrectionKind } from '../../src/corrections/correction.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import { aggregateCodec } from '../../src/processors/aggregate.js';
import { PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { unframe } from '../../src/schema/wire-format.js';
import type { UsageAggregate } from '../../src/usage/aggregation.js';
import { type Aggregation, type Meter, MeterCatalog } from '../../src/usage/meters.js';
import type { FakeClock} from '../support/unit/fixtures.js';
import { FakeCatalog, type MemoryTopics, framedEvent, sourceRecord, taskContext } from '../support/unit/fixtures.js';
import { type ExpectedAggregate, type OracleEvent, expectedAggregates } from '../support/usage-oracle.js';

export const INPUT_ID = 1;
export const OUTPUT_ID = 10;
export const AGGREGATE_ID = 11;
export const ORDERED = 'usage-events-ordered';
export const LATE = 'usage-events-late';
export const DLQ = 'usage-events-dlq';
export const AGGREGATES = 'usage-aggregates';
export const LATENESS_MS = 35 * 86_400_000;

const meter = (slug: string, aggregation: Aggregation, valueProperty: Meter['valueProperty'], groupBy: Record<string, string> = {}): Meter => ({
  slug,
  description: undefined,
  eventTypes: ['use'],
  aggregation,
  valueProperty,
  groupBy,
  windows: ['HOUR', 'DAY'],
});

/** One meter per aggregation, over the same events (`use`); two grouped by region. */
export const METERS: Meter[] = [
  meter('sum', 'SUM', { kind: 'value' }, { region: 'region' }),
  meter('count', 'COUNT', undefined),
  meter('min', 'MIN', { kind: 'value' }),
  meter('max', 'MAX', { kind: 'value' }, { region: 'region' }),
  meter('avg', 'AVG', { kind: 'value' }),
  meter('latest', 'LATEST', { kind: 'value' }),
  meter('users', 'UNIQUE_COUNT', { kind: 'dimension', name: 'user' }),
];

export function pipeline(physical: FakeClock, options: { reorderWindowMs?: number; holdMs?: number; maxPending?: number; enabled?: boolean; meters?: Meter[] } = {}): PipelineProcessor {
  const catalog = new FakeCatalog(new Map([[INPUT_ID, usageEventType], [OUTPUT_ID, usageEventType]]));
  return new PipelineProcessor({
    clock: new HybridClock({ node: 'ordo-0', physical, maxSkewMs: 500 }),
    orderedTopic: ORDERED,
    dlqTopic: DLQ,
    lateTopic: LATE,
    aggregatesTopic: AGGREGATES,
    outputSchemaId: OUTPUT_ID,
    aggregateSchemaId: AGGREGATE_ID,
    catalog: catalog as unknown as SchemaCatalog,
    meters: new MeterCatalog(options.meters ?? METERS),
    dedupeWindowMs: 86_400_000,
    allowedLatenessMs: LATENESS_MS,
    maxFutureMs: 300_000,
    reorderWindowMs: options.reorderWindowMs ?? 0,
    reorderMaxEvents: 10_000,
    latePolicy: 'flag',
    watermarksTopic: 'usage-events-watermarks',
    watermarkIntervalMs: 0,
    corrections: { enabled: options.enabled ?? true },
    correctionHoldMs: options.holdMs,
    correctionMaxPending: options.maxPending,
  });
}

export function pipelineContext(meta?: InMemoryStore<string>) {
  return taskContext(meta, pipelineStores({ aggregatesTopic: AGGREGATES, allowedLatenessMs: LATENESS_MS, orderedTopic: ORDERED, lateTopic: LATE }));
}

/** A fresh owner's context after a crash: the stores with a changelog (meta included) as committed; the rebuilt ones empty. */
export function restoredContext(processor: PipelineProcessor, from: ReturnType<typeof pipelineContext>) {
  const meta = new InMemoryStore('meta', stringCodec);
  for (const [k, v] of from.meta.entries()) meta.restore(k, Buffer.from(v));
  const context = pipelineContext(meta);
  for (const spec of processor.stores) {
    if (spec.rebuilt) continue;
    for (const [k, v] of from.stores.get(spec.name)!.entries()) context.stores.get(spec.name)!.restore(k, spec.codec.encode(v));
  }
  return context;
}

let offset = 0;

export function eventRecord(event: UsageEvent, headers: Record<string, string> = {}): SourceRecord {
  return sourceRecord({ offset: String(offset++), key: Buffer.from(event.subject), value: framedEvent(INPUT_ID, event), headers });
}

export function correctionHeaders(kind: CorrectionKind, source: string, id: string): Record<string, string> {
  return { [CORRECTION_HEADER.kind]: kind, [CORRECTION_HEADER.source]: source, [CORRECTION_HEADER.id]: id };
}

export function decodeEvent(record: { value: Buffer | string | null }): UsageEvent {
  return usageEventType.fromBuffer(unframe(record.value as Buffer).body) as UsageEvent;
}

/** The last version of every aggregate written, by key. */
export function lastAggregates(topics: MemoryTopics): Map<string, UsageAggregate> {
  const out = new Map<string, UsageAggregate>();
  for (const r of topics.topics.get(AGGREGATES) ?? []) out.set(r.key!.toString(), aggregateCodec.decode(unframe(r.value).body));
  return out;
}

export function header(record: { headers: Record<string, unknown> }, name: string): string | undefined {
  const v = record.headers[name] as Buffer | string | undefined;
  return v === undefined ? undefined : v.toString();
}

/**
 * The oracle: the originals that reached the ordered topic, each with its order key there,
 * minus the voided, with the amended ones' content replaced (an amend keeps its original's
 * place), folded independently of src/usage. Windows whose every event was voided are
 * absent; the pipeline keeps them with count 0.
 */
export function oracle(topics: MemoryTopics, corrections: ReadonlyMap<string, { kind: CorrectionKind; event: UsageEvent }[]>): Map<string, ExpectedAggregate> {
  const events: OracleEvent[] = [];
  for (const r of topics.topics.get(ORDERED) ?? []) {
    if (header(r, CORRECTION_HEADER.kind) !== undefined) continue;
    const original = decodeEvent(r);
    const applied = corrections.get(original.id) ?? [];
    if (applied.some((c) => c.kind === 'void')) continue;
    const amend = applied.find((c) => c.kind === 'amend');
    const event = amend === undefined ? original : { ...original, time: amend.event.time, value: amend.event.value, type: amend.event.type, dimensions: amend.event.dimensions };
    events.push({ event, orderTime: BigInt(`0x${header(r, 'origin-service-time')!}`), orderNode: header(r, 'origin-service-node') ?? '' });
  }
  return expectedAggregates(METERS, events);
}

export function expectAggregatesEqual(actual: Map<string, UsageAggregate>, expected: Map<string, ExpectedAggregate>): void {
  const got = new Map<string, ExpectedAggregate>();
  for (const [key, a] of actual) {
    if (a.count === 0) continue;
    got.set(key, { meter: a.meter, subject: a.subject, groupBy: a.groupBy, windowSize: a.windowSize, windowStart: a.windowStart, windowEnd: a.windowEnd, value: a.value, count: a.count, firstEventTime: a.firstEventTime, lastEventTime: a.lastEventTime });
  }
  expect(Object.fromEntries([...got].sort())).toEqual(Object.fromEntries([...expected].sort()));
}

/** Appends a batch's outputs as committed. */
export function commitTo(topics: MemoryTopics, context: ReturnType<typeof pipelineContext>, outputs: readonly OutputRecord[], now: number): void {
  context.commit();
  topics.append(outputs, now);
}
