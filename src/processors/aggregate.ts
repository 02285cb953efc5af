import { millisOf } from '../clock/service-time.js';
import type { KeyValueStore, StoreCodec } from '../model/store.js';
import { frame } from '../schema/wire-format.js';
import { type AggregateWork, type Measurement, type UsageAggregate, finish, fold, keyPrefix, startWork, usageAggregateType, usageAggregateTypeBeforeCorrections, windowKey } from '../usage/aggregation.js';
import { Decimal } from '../usage/decimal.js';
import type { Meter, MeterCatalog } from '../usage/meters.js';
import { windowEnd, windowStart } from '../usage/windows.js';
import type { OutputRecord, StampedEvent, StepResult } from '../model/records.js';
import { Sweeper } from './sweep.js';

/** Current aggregates by aggregate key. */
export const AGGREGATES_STORE = 'aggregates';
/** UNIQUE_COUNT members: key `<aggregate key>\0<value>`, value the window end (for expiry). */
export const UNIQUE_STORE = 'unique';

export const aggregateCodec: StoreCodec<UsageAggregate> = {
  encode: (v) => usageAggregateType.toBuffer(v),
  decode: (b) => {
    const read = usageAggregateType.decode(b, 0);
    if (read.offset === b.length) return read.value as UsageAggregate;
    // Written before the `corrections` field existed (the buffer ends before it): none applied.
    return { ...(usageAggregateTypeBeforeCorrections.fromBuffer(b) as Omit<UsageAggregate, 'corrections'>), corrections: 0 };
  },
};

export interface AggregateSettings {
  meters: MeterCatalog;
  aggregatesTopic: string;
  /** Registry id of UsageAggregate under the aggregates topic's value subject. */
  aggregateSchemaId: number;
  /** An event older than this (event time against its stamp) goes to the late topic. */
  allowedLatenessMs: number;
  /** A metered event whose time is further ahead of its stamp than this is dead-lettered. */
  maxFutureMs: number;
}

/** What one event brings to one meter. */
export interface Reading {
  meter: Meter;
  value: Decimal | undefined;
  /** UNIQUE_COUNT: the value whose distinct count the meter keeps. */
  member: string | undefined;
  groupBy: Record<string, string>;
}

export interface MeasuredEvent extends StampedEvent {
  readings: Reading[];
}

export interface AggregateResult {
  /** Events to carry on downstream (late ones removed). */
  events: MeasuredEvent[];
  /** seenAt: the event's stamp (ms), the late record's timestamp (the dedupe store is rebuilt from it). */
  late: { source: MeasuredEvent['source']; reason: 'too-late'; detail: string; seenAt: number }[];
  /** One record per aggregate changed in the batch (its last version). */
  outputs: OutputRecord[];
  expired: number;
}

/** How often (in stamp time) final windows are swept out of memory. */
const SWEEP_EVERY_MS = 60_000;

/**
 * The write-path aggregation: every event updates, for each meter that selects its type
 * and each window size the meter keeps, the aggregate of (meter, subject, group values,
 * window). A batch writes each changed aggregate once, with its last version. Windows
 * that can no longer change (older than the allowed lateness) leave memory; their last
 * version stays in the compacted topic.
 */
export class AggregateStep {
  private readonly aggregateSweeper: Sweeper<UsageAggregate>;
  private readonly uniqueSweeper: Sweeper<number>;
  /** Window starts as ISO text: few distinct values, formatted once each. */
  private readonly isoCache = new Map<number, string>();

  constructor(private readonly settings: AggregateSettings) {
    const lateness = settings.allowedLatenessMs;
    this.aggregateSweeper = new Sweeper(SWEEP_EVERY_MS, (_key, agg, now) => isFinal(agg.windowEnd, now, lateness));
    this.uniqueSweeper = new Sweeper(SWEEP_EVERY_MS, (_key, end, now) => isFinal(end, now, lateness));
  }

  /** Reads each matching meter's value; an event with a value a meter cannot use is dead-lettered whole. */
  measure(events: readonly StampedEvent[]): StepResult<MeasuredEvent> {
    const items: MeasuredEvent[] = [];
    const dead: StepResult<MeasuredEvent>['dead'] = [];
    for (const e of events) {
      const meters = this.settings.meters.forEventType(e.event.type);
      const readings: Reading[] = [];
      let problem: string | undefined;
      const seenAt = millisOf(e.stamp.time);
      if (meters.length > 0 && e.event.time > seenAt + this.settings.maxFutureMs) {
        const detail = `event time ${new Date(e.event.time).toISOString()} is more than ${this.settings.maxFutureMs} ms ahead of Ordo's clock (${new Date(seenAt).toISOString()})`;
        dead.push({ source: e.source, reason: 'invalid-event', message: `${detail}: a metered event cannot be billed before it happens` });
        continue;
      }
      for (const meter of meters) {
        const reading = readMeter(meter, e);
        if (typeof reading === 'string') {
          problem = reading;
          break;
        }
        readings.push(reading);
      }
      if (problem === undefined) items.push({ ...e, readings });
      else dead.push({ source: e.source, reason: 'invalid-value', message: problem });
    }
    return { items, dead };
  }

  apply(events: readonly MeasuredEvent[], aggregates: KeyValueStore<UsageAggregate>, unique: KeyValueStore<number>): AggregateResult {
    const lateness = this.settings.allowedLatenessMs;
    const work = new Map<string, AggregateWork>();
    const kept: MeasuredEvent[] = [];
    const late: AggregateResult['late'] = [];
    let now = Number.NEGATIVE_INFINITY;
    for (const e of events) {
      const seenAt = millisOf(e.stamp.time);
      now = Math.max(now, seenAt);
      if (e.readings.length > 0 && e.event.time < seenAt - lateness) {
        late.push({
          source: e.source,
          seenAt,
          reason: 'too-late',
          detail: `event time ${new Date(e.event.time).toISOString()} is more than ${lateness} ms before it was seen (${new Date(seenAt).toISOString()})`,
        });
        continue;
      }
      kept.push(e);
      for (const reading of e.readings) this.update(e, reading, aggregates, unique, work);
    }
    const outputs: OutputRecord[] = [];
    const { aggregatesTopic, aggregateSchemaId } = this.settings;
    for (const [key, w] of work) {
      const aggregate = finish(w);
      aggregates.put(key, aggregate);
      outputs.push({ topic: aggregatesTopic, key, value: frame(aggregateSchemaId, aggregateCodec.encode(aggregate)), headers: {} });
    }
    if (this.isoCache.size > 50_000) this.isoCache.clear();
    const expired = events.length > 0 ? this.aggregateSweeper.run(aggregates, now) + this.uniqueSweeper.run(unique, now) : 0;
    return { events: kept, late, outputs, expired };
  }

  private update(
    e: MeasuredEvent,
    reading: Reading,
    aggregates: KeyValueStore<UsageAggregate>,
    unique: KeyValueStore<number>,
    work: Map<string, AggregateWork>,
  ): void {
    const { meter } = reading;
    const prefix = keyPrefix(meter.slug, e.event.subject, reading.groupBy);
    const measurement: Measurement = {
      value: reading.value,
      newMember: false,
      eventTime: e.event.time,
      orderTime: e.orderKey.time,
      orderNode: e.orderKey.node,
    };
    for (const size of meter.windows) {
      const start = windowStart(e.event.time, size);
      const key = windowKey(prefix, size, this.iso(start));
      let w = work.get(key);
      if (w === undefined) {
        w = startWork(aggregates.get(key), {
          meter: meter.slug,
          aggregation: meter.aggregation,
          subject: e.event.subject,
          groupBy: reading.groupBy,
          windowSize: size,
          windowStart: start,
          windowEnd: windowEnd(start, size),
        });
        work.set(key, w);
      }
      if (reading.member !== undefined) {
        const memberKey = `${key}\u0000${reading.member}`; // JSON keys never hold a raw NUL
        measurement.newMember = unique.get(memberKey) === undefined;
        if (measurement.newMember) unique.put(memberKey, w.aggregate.windowEnd);
      }
      fold(w, measurement);
    }
  }

  private iso(ms: number): string {
    let text = this.isoCache.get(ms);
    if (text === undefined) {
      text = new Date(ms).toISOString();
      this.isoCache.set(ms, text);
    }
    return text;
  }
}

/**
 * A window that ends more than the allowed lateness before `now` can no longer change: any
 * event for it would be late. Final windows leave memory (and are not restored).
 */
export function isFinal(windowEnd: number, now: number, allowedLatenessMs: number): boolean {
  return windowEnd <= now - allowedLatenessMs;
}

/** The meter's reading of one event, or why the event cannot be measured. */
export function readMeter(meter: Meter, e: StampedEvent): Reading | string {
  const groupBy: Record<string, string> = {};
  for (const [name, dimension] of Object.entries(meter.groupBy)) {
    if (Object.hasOwn(e.event.dimensions, dimension)) groupBy[name] = e.event.dimensions[dimension] as string;
  }
  const property = meter.valueProperty;
  if (meter.aggregation === 'COUNT' || property === undefined) return { meter, value: undefined, member: undefined, groupBy };
  const where = property.kind === 'value' ? 'value' : `dimensions.${property.name}`;
  let text: string | undefined;
  if (property.kind === 'value') text = e.event.value;
  else if (Object.hasOwn(e.event.dimensions, property.name)) text = e.event.dimensions[property.name];
  if (text === undefined) return `meter ${meter.slug} reads ${where}, which the event does not have`;
  if (meter.aggregation === 'UNIQUE_COUNT') return { meter, value: undefined, member: text, groupBy };
  if (!Decimal.isValid(text)) {
    return `meter ${meter.slug} reads ${where} = ${JSON.stringify(text.slice(0, 48))}, which is not a plain decimal string (e.g. "12.50"; no exponent, NaN or Infinity)`;
  }
  return { meter, value: Decimal.parse(text), member: undefined, groupBy };
}
