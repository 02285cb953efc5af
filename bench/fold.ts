import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { makeServiceTime } from '../src/clock/service-time.js';
import { InMemoryStore } from '../src/engine/state-store.js';
import { numberCodec } from '../src/model/store.js';
import { AGGREGATES_STORE, AggregateStep, UNIQUE_STORE, aggregateCodec } from '../src/processors/aggregate.js';
import { DEDUPE_STORE, DedupeStep } from '../src/processors/dedupe.js';
import type { StampedEvent } from '../src/model/records.js';
import type { UsageAggregate } from '../src/usage/aggregation.js';
import { MeterCatalog } from '../src/usage/meters.js';
import { benchEvent } from './events.js';
import { BENCH_METERS } from './meters.js';

const HOUR_MS = 3_600_000;
/** Events per fold batch, as a full Ordo batch (ORDO_MAX_BATCH_RECORDS defaults to 2000). */
export const FOLD_BATCH = 2_000;
const NODE = 'bench-node';

/**
 * The query workload: `subjects` customers over one fixed UTC calendar month (September
 * 2026, 30 days = 720 hours). Of N events, event i is at from + i * month / N (time order,
 * as usage mostly arrives) and belongs to subject i mod S. Every hour then holds at least
 * floor(N / 720) consecutive events, hence every subject, once N >= S * 720: the stored
 * windows are the same for every such N, and only the events behind them grow.
 */
export interface QueryWorkload {
  subjects: number;
  /** Inclusive start of the month, ms. */
  from: number;
  /** Exclusive end of the month, ms. */
  to: number;
}

export function queryWorkload(subjects: number): QueryWorkload {
  return { subjects, from: Date.UTC(2026, 8, 1), to: Date.UTC(2026, 9, 1) };
}

/** Events needed so that every (subject, hour) window of the workload holds at least one. */
export function eventsToFillWindows(w: QueryWorkload): number {
  return w.subjects * ((w.to - w.from) / HOUR_MS);
}

/**
 * Event i of n, stamped as Ordo would have seen it processing the month as a backlog: one
 * hour after the month ended (inside the default 35-day lateness for the whole month), 100
 * events per stamp millisecond, so stamps increase like one node's hybrid clock and no
 * dedupe id expires during the fold.
 */
export function workloadEvent(w: QueryWorkload, i: number, n: number): StampedEvent {
  const subject = i % w.subjects;
  const event = benchEvent(`q-${i}`, i, subject, Math.floor(i / w.subjects), w.from + Math.floor((i * (w.to - w.from)) / n));
  const seenAt = w.to + HOUR_MS + Math.floor(i / 100);
  const stamp = { time: makeServiceTime(seenAt, i % 100), node: NODE };
  return {
    source: { topic: 'bench-fold', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: seenAt },
    event,
    context: undefined,
    stamp,
    orderKey: stamp,
  };
}

/** The pipeline's state for one task, and the pure steps that change it, without Kafka. */
export class WriteFold {
  readonly dedupe = new InMemoryStore<number>(DEDUPE_STORE, numberCodec);
  readonly aggregates = new InMemoryStore<UsageAggregate>(AGGREGATES_STORE, aggregateCodec);
  readonly unique = new InMemoryStore<number>(UNIQUE_STORE, numberCodec);
  /** Records one batch would write: aggregates + changelog entries of the three stores. */
  outputs = 0;
  duplicates = 0;
  late = 0;
  deadLettered = 0;
  private readonly dedupeStep: DedupeStep;
  private readonly aggregateStep: AggregateStep;

  constructor(settings: { dedupeWindowMs: number; allowedLatenessMs: number; maxFutureMs: number }) {
    this.dedupeStep = new DedupeStep(settings.dedupeWindowMs);
    this.aggregateStep = new AggregateStep({
      meters: new MeterCatalog(BENCH_METERS),
      aggregatesTopic: 'bench-aggregates',
      aggregateSchemaId: 1,
      allowedLatenessMs: settings.allowedLatenessMs,
      maxFutureMs: settings.maxFutureMs,
    });
  }

  /**
   * One batch as PipelineProcessor + Task run it, minus decode, stamp, encode and Kafka:
   * measure -> dedupe -> aggregate (Avro-encoded aggregate outputs), then the stores'
   * changelog entries (encoded) and the commit of the staged writes.
   */
  batch(events: readonly StampedEvent[]): void {
    const measured = this.aggregateStep.measure(events);
    const deduped = this.dedupeStep.run(measured.items, this.dedupe);
    const result = this.aggregateStep.apply(deduped.fresh, this.aggregates, this.unique);
    let outputs = result.outputs.length;
    for (const store of [this.dedupe, this.aggregates, this.unique]) {
      outputs += store.changes().length;
      store.commit();
    }
    this.outputs += outputs;
    this.duplicates += deduped.duplicates;
    this.late += result.late.length;
    this.deadLettered += measured.dead.length;
  }
}

export interface FoldFigures {
  events: number;
  /** Time inside WriteFold.batch only (event generation excluded), ms. */
  foldMs: number;
  eventsPerSecond: number | null;
  aggregates: number;
  dedupeIds: number;
  uniqueMembers: number;
  outputs: number;
  duplicates: number;
  late: number;
  deadLettered: number;
}

/** Folds events 0..n-1 of the workload in batches of FOLD_BATCH, yielding to the event loop between batches. */
export async function foldWorkload(w: QueryWorkload, n: number, settings: { dedupeWindowMs: number; allowedLatenessMs: number; maxFutureMs: number }): Promise<{ fold: WriteFold; figures: FoldFigures }> {
  const fold = new WriteFold(settings);
  let foldMs = 0;
  for (let from = 0; from < n; from += FOLD_BATCH) {
    const events: StampedEvent[] = [];
    for (let i = from; i < Math.min(n, from + FOLD_BATCH); i++) events.push(workloadEvent(w, i, n));
    const started = performance.now();
    fold.batch(events);
    foldMs += performance.now() - started;
    await yieldToLoop();
  }
  return {
    fold,
    figures: {
      events: n,
      foldMs: Math.round(foldMs),
      eventsPerSecond: foldMs > 0 ? Math.round((n / foldMs) * 1000) : null,
      aggregates: fold.aggregates.size,
      dedupeIds: fold.dedupe.size,
      uniqueMembers: fold.unique.size,
      outputs: fold.outputs,
      duplicates: fold.duplicates,
      late: fold.late,
      deadLettered: fold.deadLettered,
    },
  };
}
