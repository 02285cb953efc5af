/**
 * CPU per event of each step of the pipeline's chain, and heap per held (reordered) event,
 * in process and without Kafka: the chain of PipelineProcessor.process, step by step, over
 * in-memory stores, so each step can be timed alone. Used by bench/capacity.ts.
 */
import { HybridClock } from '../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../src/clock/service-time.js';
import { InMemoryStore } from '../src/engine/state-store.js';
import { CONTRIBUTIONS_STORE, type Contribution, contributionCodec } from '../src/corrections/contributions.js';
import { CorrectionStep } from '../src/corrections/correction-step.js';
import { pendingStore } from '../src/corrections/pending.js';
import { type HeaderValue, type SourceRecord } from '../src/model/records.js';
import { numberCodec, stringCodec } from '../src/model/store.js';
import { AGGREGATES_STORE, AggregateStep, UNIQUE_STORE, aggregateCodec } from '../src/processors/aggregate.js';
import { DecodeStep } from '../src/processors/decode.js';
import { DEDUPE_STORE, DedupeStep } from '../src/processors/dedupe.js';
import { EncodeStep } from '../src/processors/encode.js';
import { heldPositionsCodec } from '../src/processors/held-positions.js';
import { type HeldPosition, type OrderItem, OrderStep, REORDER_STORE, SEQUENCE_STORE } from '../src/processors/order.js';
import { StampStep } from '../src/processors/stamp.js';
import { usageEventType } from '../src/schema/usage-event.js';
import { frame } from '../src/schema/wire-format.js';
import type { UsageAggregate } from '../src/usage/aggregation.js';
import { MeterCatalog } from '../src/usage/meters.js';
import { benchEvent } from './events.js';
import { BENCH_METERS } from './meters.js';
import { settledHeap } from './memory.js';
import { median } from './stats.js';

export const STAGES = ['decode', 'stamp', 'corrections', 'measure', 'dedupe', 'aggregate', 'encode', 'order', 'commit'] as const;
export type Stage = (typeof STAGES)[number];

const SCHEMA_ID = 1;
const DAY_MS = 86_400_000;

/** The bench events as the input topic holds them (Confluent-framed Avro), as SourceRecords. */
export function sourceRecords(n: number, subjects: number, at: number, contextRatio: number): SourceRecord[] {
  const upstream = new HybridClock({ node: 'bench-upstream' });
  const out: SourceRecord[] = [];
  for (let i = 0; i < n; i++) {
    const event = benchEvent(`c-${i}`, i, i % subjects, Math.floor(i / subjects), at);
    const headers: Record<string, HeaderValue> = {};
    if (Math.floor((i + 1) * contextRatio) > Math.floor(i * contextRatio)) {
      headers['service-time'] = Buffer.from(formatServiceTime(upstream.now()));
      headers['service-node'] = Buffer.from(upstream.node);
    }
    out.push({ topic: 'bench-in', partition: 0, offset: String(i), key: Buffer.from(event.subject), value: frame(SCHEMA_ID, usageEventType.toBuffer(event)), headers, timestamp: at });
  }
  return out;
}

/** One task's chain and stores, as PipelineProcessor wires them (no sweeper, no DLQ records). */
class Chain {
  readonly clock = new HybridClock({ node: 'bench-node' });
  readonly decode = new DecodeStep({ writerType: (id) => (id === SCHEMA_ID ? usageEventType : null) });
  readonly stamp = new StampStep(this.clock);
  readonly dedupe = new DedupeStep(DAY_MS);
  readonly aggregate: AggregateStep;
  readonly corrections: CorrectionStep;
  readonly encode = new EncodeStep('bench-ordered', SCHEMA_ID);
  readonly order: OrderStep;
  readonly stores = {
    dedupe: new InMemoryStore<number>(DEDUPE_STORE, numberCodec),
    aggregates: new InMemoryStore<UsageAggregate>(AGGREGATES_STORE, aggregateCodec),
    unique: new InMemoryStore<number>(UNIQUE_STORE, numberCodec),
    contributions: new InMemoryStore<Contribution>(CONTRIBUTIONS_STORE, contributionCodec),
    buffer: new InMemoryStore<HeldPosition[]>(REORDER_STORE, heldPositionsCodec),
    sequences: new InMemoryStore<string>(SEQUENCE_STORE, stringCodec),
    meta: new InMemoryStore<string>('meta', stringCodec),
  };

  constructor(reorderWindowMs: number, maxBuffered = 1_000_000) {
    const meters = new MeterCatalog(BENCH_METERS);
    const lateness = 35 * DAY_MS;
    this.aggregate = new AggregateStep({ meters, aggregatesTopic: 'bench-aggregates', aggregateSchemaId: SCHEMA_ID, allowedLatenessMs: lateness, maxFutureMs: 60_000 });
    this.corrections = new CorrectionStep({ enabled: true, meters, allowedLatenessMs: lateness, maxFutureMs: 60_000, aggregatesTopic: 'bench-aggregates', aggregateSchemaId: SCHEMA_ID, clock: this.clock });
    this.order = new OrderStep({ reorderWindowMs, maxBuffered, latePolicy: 'flag', stamp: () => this.clock.now() });
  }

  /** One batch; `time` (if given) adds each step's ms to the totals. Returns the records written. */
  batch(records: readonly SourceRecord[], time?: Record<Stage, number>): number {
    const s = this.stores;
    // CPU time, not wall time: on a shared machine the wall clock also counts time the
    // process was not running. cpuUsage is the whole process (GC threads included), in µs.
    const cpu = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    let t = time ? cpu() : 0;
    const lap = (stage: Stage): void => {
      if (!time) return;
      const now = cpu();
      time[stage] += now - t;
      t = now;
    };
    const decoded = this.decode.run(records);
    lap('decode');
    const classified = this.corrections.classify(decoded.items);
    lap('corrections');
    const stamped = this.stamp.run(classified.items);
    lap('stamp');
    const measured = this.corrections.measure(this.aggregate, stamped.items);
    lap('measure');
    const deduped = this.dedupe.run(measured.items, s.dedupe);
    lap('dedupe');
    const fresh = this.corrections.split(deduped.fresh);
    lap('corrections');
    const aggregated = this.aggregate.apply(fresh.events, s.aggregates, s.unique);
    lap('aggregate');
    const corrected = this.corrections.apply(aggregated.events, fresh.corrections, { contributions: s.contributions, pending: pendingStore(s.meta), aggregates: s.aggregates, unique: s.unique, dedupe: s.dedupe });
    lap('corrections');
    const accepted = corrected.applied.length > 0 ? [...aggregated.events, ...corrected.applied] : aggregated.events;
    const encoded = this.encode.run(accepted);
    lap('encode');
    const items: OrderItem[] = accepted.map((e, i) => ({ subject: e.event.subject, orderKey: e.orderKey, stamp: e.stamp, record: encoded[i]!, source: e.source, producer: e.producer }));
    const ordered = this.order.run(items, { buffer: s.buffer, sequences: s.sequences, meta: s.meta });
    lap('order');
    let written = ordered.emitted.length + aggregated.outputs.length;
    for (const store of Object.values(s)) {
      written += store.changes().length;
      store.commit();
    }
    lap('commit');
    return written;
  }
}

export interface StageCosts {
  method: string;
  events: number;
  batch: number;
  rounds: number;
  subjects: number;
  /** Median over the rounds of (ms in the step / events) in µs. */
  microsPerEvent: Record<Stage, number>;
  totalMicrosPerEvent: number;
  /** Every round's total, µs per event: the spread on a shared machine. */
  roundTotals: number[];
}

/** Times each step over `events` events in batches of `batch`, `rounds` times (a fresh chain each), after one unrecorded round. */
export async function measureStages(options: { events: number; batch: number; rounds: number; subjects: number; contextRatio: number }): Promise<StageCosts> {
  const { events, batch, rounds, subjects, contextRatio } = options;
  const perRound: Record<Stage, number>[] = [];
  for (let round = 0; round <= rounds; round++) {
    const records = sourceRecords(events, subjects, Date.now(), contextRatio);
    const chain = new Chain(0);
    const time = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<Stage, number>;
    for (let from = 0; from < events; from += batch) {
      chain.batch(records.slice(from, from + batch), time);
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (round > 0) perRound.push(time); // round 0 warms the JIT
  }
  const micros = Object.fromEntries(STAGES.map((s) => [s, round3(((median(perRound.map((r) => r[s])) ?? 0) * 1000) / events)])) as Record<Stage, number>;
  const totals = perRound.map((r) => round3((STAGES.reduce((a, s) => a + r[s], 0) * 1000) / events));
  return {
    method: 'the chain of PipelineProcessor.process step by step (decode, classify/split/apply corrections, stamp, measure, dedupe, aggregate, encode, order, store changelog encoding + commit) over InMemoryStores, bench meters, reorder window 0, one task; process.cpuUsage() (user + system, the whole process) around each step; one unrecorded round, then the median per step over the rounds',
    events, batch, rounds, subjects,
    microsPerEvent: micros,
    totalMicrosPerEvent: round3(STAGES.reduce((a, s) => a + micros[s], 0)),
    roundTotals: totals,
  };
}

export interface HeldMemory {
  method: string;
  held: number;
  heapBytes: number;
  bytesPerHeldEvent: number;
}

/** Heap per event held by the reorder buffer: a chain whose window never releases, `n` events in, full GCs around. Needs global.gc. */
export async function measureHeld(n: number, subjects: number): Promise<HeldMemory> {
  const heap = settledHeap;
  let records: SourceRecord[] | undefined = sourceRecords(n, subjects, Date.now(), 0);
  const chain = new Chain(365 * DAY_MS);
  // Everything but the held events is there before the first reading: warm the chain with
  // one batch the window releases (a later far-future event moves the watermark), then
  // measure the rest held. Dedupe ids and aggregates grow too; they are dropped before the reading.
  const before = heap();
  for (let from = 0; from < n; from += 2_000) {
    chain.batch(records.slice(from, from + 2_000));
    await new Promise((resolve) => setImmediate(resolve));
  }
  records = undefined;
  // Drop what is not the held events: dedupe ids, aggregates, unique members, contributions, sequences.
  for (const store of [chain.stores.dedupe, chain.stores.aggregates, chain.stores.unique, chain.stores.contributions, chain.stores.sequences]) store.wipe();
  const held = chain.order.buffered;
  const withHeld = heap();
  return {
    method: 'OrderStep with a one-year reorder window (nothing released) fed n bench events through the real chain; heap after two full GCs minus heap before, with the other stores wiped: the heap entry, the buffered-key index and the encoded record per held event, plus the held-positions store entry',
    held,
    heapBytes: withHeld - before,
    bytesPerHeldEvent: held > 0 ? Math.round((withHeld - before) / held) : 0,
  };
}

export interface ContributionMemory {
  method: string;
  events: number;
  contributions: number;
  heapBytes: number;
  bytesPerContribution: number;
}

/** Heap per kept contribution (corrections on: one per accepted event within the lateness), with the correction step's window index. Needs global.gc. */
export async function measureContributions(n: number, subjects: number): Promise<ContributionMemory> {
  const heap = settledHeap;
  const before = heap();
  const chain = new Chain(0);
  let records: SourceRecord[] | undefined = sourceRecords(n, subjects, Date.now(), 0);
  for (let from = 0; from < n; from += 2_000) {
    chain.batch(records.slice(from, from + 2_000));
    await new Promise((resolve) => setImmediate(resolve));
  }
  records = undefined;
  for (const store of [chain.stores.dedupe, chain.stores.aggregates, chain.stores.unique, chain.stores.sequences, chain.stores.buffer]) store.wipe();
  const after = heap();
  const contributions = chain.stores.contributions.size;
  return {
    method: 'the real chain (corrections on) fed n bench events, reorder window 0; then every store but contributions wiped; heap after two full GCs minus heap before the chain existed, / contributions kept: the entry (decoded, with its readings) and the correction step\'s window index',
    events: n,
    contributions,
    heapBytes: after - before,
    bytesPerContribution: contributions > 0 ? Math.round((after - before) / contributions) : 0,
  };
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
