import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { formatServiceTime, parseServiceTime } from '../clock/service-time.js';
import { Decimal } from './decimal.js';
import type { Aggregation } from './meters.js';
import type { WindowSize } from './windows.js';

/** One aggregate as written to `usage-aggregates` (schemas/usage-aggregate.avsc). */
export interface UsageAggregate {
  meter: string;
  subject: string;
  groupBy: Record<string, string>;
  windowSize: WindowSize;
  windowStart: number;
  windowEnd: number;
  aggregation: Aggregation;
  /** Canonical decimal string. */
  value: string;
  /** Exact sum for SUM and AVG, else null. */
  sum: string | null;
  count: number;
  firstEventTime: number;
  lastEventTime: number;
  /** Highest order key among the events (16 hex digits) and its node: what LATEST follows. */
  lastServiceTime: string;
  lastServiceNode: string;
  version: number;
  /** Corrections (void, amend) applied to this aggregate (docs/corrections.md). */
  corrections: number;
}

export const USAGE_AGGREGATE_SCHEMA_PATH = new URL('../../schemas/usage-aggregate.avsc', import.meta.url);
export const usageAggregateSchema = JSON.parse(readFileSync(USAGE_AGGREGATE_SCHEMA_PATH, 'utf8')) as avro.Schema;
export const usageAggregateType = avro.Type.forSchema(usageAggregateSchema);
/**
 * The schema before `corrections` existed: aggregates it wrote lack the trailing field, so a
 * restore of `usage-aggregates` written by an older version reads them with this one
 * (aggregateCodec) and counts 0 corrections.
 */
export const usageAggregateTypeBeforeCorrections = avro.Type.forSchema({
  ...(usageAggregateSchema as avro.schema.RecordType),
  fields: (usageAggregateSchema as avro.schema.RecordType).fields.filter((f) => f.name !== 'corrections'),
});

/** Where an aggregate belongs: one meter, subject, set of group values and UTC window. */
export interface AggregateCoordinates {
  meter: string;
  aggregation: Aggregation;
  subject: string;
  groupBy: Record<string, string>;
  windowSize: WindowSize;
  windowStart: number;
  windowEnd: number;
}

/** What one event contributes to one meter. */
export interface Measurement {
  /** The decimal value (SUM, MIN, MAX, AVG, LATEST); undefined for COUNT and UNIQUE_COUNT. */
  value: Decimal | undefined;
  /** UNIQUE_COUNT: whether this event's value was not yet counted in this aggregate. */
  newMember: boolean;
  eventTime: number;
  orderTime: bigint;
  orderNode: string;
}

/**
 * The Kafka key of an aggregate: a JSON array (meter, subject, group values, window size,
 * window start), readable in kcat and unambiguous whatever the strings contain. Group
 * values are in name order, so the same group always gives the same key.
 */
export function aggregateKey(c: Pick<AggregateCoordinates, 'meter' | 'subject' | 'groupBy' | 'windowSize' | 'windowStart'>): string {
  return windowKey(keyPrefix(c.meter, c.subject, c.groupBy), c.windowSize, new Date(c.windowStart).toISOString());
}

/** The window-independent head of an aggregate key (computed once per event and meter). */
export function keyPrefix(meter: string, subject: string, groupBy: Record<string, string>): string {
  return JSON.stringify([meter, subject, groupBy]).slice(0, -1);
}

/** A key from its prefix, window size and ISO window start (no characters there need JSON escaping). */
export function windowKey(prefix: string, size: WindowSize, startIso: string): string {
  return `${prefix},"${size}","${startIso}"]`;
}

/**
 * An aggregate being updated within one batch: mutable, with the running sum, extreme and
 * latest value kept as Decimals and the order key as a bigint, so a batch parses and
 * formats each aggregate once rather than once per event.
 */
export interface AggregateWork {
  readonly aggregate: UsageAggregate;
  sum: Decimal;
  extreme: Decimal | undefined;
  distinct: bigint;
  lastTime: bigint;
}

/** Starts a batch's work on an aggregate: a copy of the stored one, or a new empty one. */
export function startWork(previous: UsageAggregate | undefined, at: AggregateCoordinates): AggregateWork {
  if (previous !== undefined && previous.count === 0) {
    // Every event of it was voided (corrections): it starts over, its version and correction count go on.
    const work = startWork(undefined, at);
    work.aggregate.version = previous.version;
    work.aggregate.corrections = previous.corrections ?? 0;
    return work;
  }
  if (previous === undefined) {
    const aggregate: UsageAggregate = {
      meter: at.meter,
      subject: at.subject,
      groupBy: at.groupBy,
      windowSize: at.windowSize,
      windowStart: at.windowStart,
      windowEnd: at.windowEnd,
      aggregation: at.aggregation,
      value: '0',
      sum: null,
      count: 0,
      firstEventTime: Number.MAX_SAFE_INTEGER,
      lastEventTime: Number.MIN_SAFE_INTEGER,
      lastServiceTime: formatServiceTime(0n),
      lastServiceNode: '',
      version: 0,
      corrections: 0,
    };
    return { aggregate, sum: Decimal.ZERO, extreme: undefined, distinct: 0n, lastTime: -1n };
  }
  const a = previous.aggregation;
  const p = previous;
  return {
    // Field by field, so every aggregate has one shape (a spread of decoded Avro records does not).
    aggregate: {
      meter: p.meter,
      subject: p.subject,
      groupBy: p.groupBy,
      windowSize: p.windowSize,
      windowStart: p.windowStart,
      windowEnd: p.windowEnd,
      aggregation: p.aggregation,
      value: p.value,
      sum: p.sum,
      count: p.count,
      firstEventTime: p.firstEventTime,
      lastEventTime: p.lastEventTime,
      lastServiceTime: p.lastServiceTime,
      lastServiceNode: p.lastServiceNode,
      version: p.version,
      corrections: p.corrections ?? 0,
    },
    sum: Decimal.parse(previous.sum ?? '0'),
    extreme: a === 'MIN' || a === 'MAX' || a === 'LATEST' ? Decimal.parse(previous.value) : undefined,
    distinct: a === 'UNIQUE_COUNT' ? BigInt(previous.value) : 0n,
    lastTime: parseServiceTime(previous.lastServiceTime),
  };
}

/** Folds one event into the work (each fold is one version). */
export function fold(work: AggregateWork, m: Measurement): void {
  const agg = work.aggregate;
  agg.count += 1;
  agg.version += 1;
  if (m.eventTime < agg.firstEventTime) agg.firstEventTime = m.eventTime;
  if (m.eventTime > agg.lastEventTime) agg.lastEventTime = m.eventTime;
  const later = m.orderTime > work.lastTime || (m.orderTime === work.lastTime && m.orderNode > agg.lastServiceNode);
  if (later) {
    work.lastTime = m.orderTime;
    agg.lastServiceNode = m.orderNode;
  }
  const v = m.value ?? Decimal.ZERO;
  switch (agg.aggregation) {
    case 'SUM':
    case 'AVG':
      work.sum = work.sum.add(v);
      break;
    case 'MIN':
      if (work.extreme === undefined || v.compare(work.extreme) < 0) work.extreme = v;
      break;
    case 'MAX':
      if (work.extreme === undefined || v.compare(work.extreme) > 0) work.extreme = v;
      break;
    case 'LATEST':
      if (later) work.extreme = v;
      break;
    case 'UNIQUE_COUNT':
      if (m.newMember) work.distinct += 1n;
      break;
    case 'COUNT':
      break;
  }
}

/** The aggregate as written: value and sum rendered as canonical decimal strings. */
export function finish(work: AggregateWork): UsageAggregate {
  const agg = work.aggregate;
  agg.lastServiceTime = formatServiceTime(work.lastTime < 0n ? 0n : work.lastTime);
  switch (agg.aggregation) {
    case 'SUM':
      agg.sum = work.sum.toString();
      agg.value = agg.sum;
      break;
    case 'AVG':
      agg.sum = work.sum.toString();
      // A window whose every event was voided averages nothing: 0, like an empty SUM.
      agg.value = agg.count === 0 ? '0' : work.sum.divide(BigInt(agg.count)).toString();
      break;
    case 'COUNT':
      agg.value = String(agg.count);
      break;
    case 'UNIQUE_COUNT':
      agg.value = work.distinct.toString();
      break;
    case 'MIN':
    case 'MAX':
    case 'LATEST':
      agg.value = (work.extreme ?? Decimal.ZERO).toString();
      break;
  }
  return agg;
}

/** The aggregate after one more event: a new object with the version one higher. */
export function addMeasurement(previous: UsageAggregate | undefined, at: AggregateCoordinates, m: Measurement): UsageAggregate {
  const work = startWork(previous, at);
  fold(work, m);
  return finish(work);
}

/** Total order of (service time hex, node): hex strings of equal width sort like the numbers. */
export function compareOrder(timeA: string, nodeA: string, timeB: string, nodeB: string): number {
  if (timeA !== timeB) return timeA < timeB ? -1 : 1;
  if (nodeA === nodeB) return 0;
  return nodeA < nodeB ? -1 : 1;
}

/** The part of aggregates that combines across windows, groups and subjects (the read side). */
export type AggregatePart = Pick<
  UsageAggregate,
  'aggregation' | 'value' | 'sum' | 'count' | 'firstEventTime' | 'lastEventTime' | 'lastServiceTime' | 'lastServiceNode'
>;

/**
 * Combines two partials of the same meter exactly (SUM, COUNT, MIN, MAX, AVG from the
 * exact sum and count, LATEST by order key). UNIQUE_COUNT is not additive: callers must
 * not combine it (the query planner refuses such queries).
 */
export function combine(a: AggregatePart, b: AggregatePart): AggregatePart {
  const later = compareOrder(b.lastServiceTime, b.lastServiceNode, a.lastServiceTime, a.lastServiceNode) > 0 ? b : a;
  const count = a.count + b.count;
  let value: string;
  let sum: string | null = null;
  switch (a.aggregation) {
    case 'SUM':
      sum = Decimal.parse(a.sum ?? a.value).add(Decimal.parse(b.sum ?? b.value)).toString();
      value = sum;
      break;
    case 'AVG':
      sum = Decimal.parse(a.sum ?? '0').add(Decimal.parse(b.sum ?? '0')).toString();
      value = count === 0 ? '0' : Decimal.parse(sum).divide(BigInt(count)).toString();
      break;
    case 'COUNT':
      value = String(count);
      break;
    case 'MIN':
      value = Decimal.parse(a.value).compare(Decimal.parse(b.value)) <= 0 ? a.value : b.value;
      break;
    case 'MAX':
      value = Decimal.parse(a.value).compare(Decimal.parse(b.value)) >= 0 ? a.value : b.value;
      break;
    case 'LATEST':
      value = later.value;
      break;
    case 'UNIQUE_COUNT':
      throw new Error('UNIQUE_COUNT aggregates cannot be combined');
  }
  return {
    aggregation: a.aggregation,
    value,
    sum,
    count,
    firstEventTime: Math.min(a.firstEventTime, b.firstEventTime),
    lastEventTime: Math.max(a.lastEventTime, b.lastEventTime),
    lastServiceTime: later.lastServiceTime,
    lastServiceNode: later.lastServiceNode,
  };
}
