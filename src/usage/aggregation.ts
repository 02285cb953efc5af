import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { formatServiceTime } from '../clock/service-time.js';
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
}

export const USAGE_AGGREGATE_SCHEMA_PATH = new URL('../../schemas/usage-aggregate.avsc', import.meta.url);
export const usageAggregateSchema = JSON.parse(readFileSync(USAGE_AGGREGATE_SCHEMA_PATH, 'utf8')) as avro.Schema;
export const usageAggregateType = avro.Type.forSchema(usageAggregateSchema);

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
  return JSON.stringify([c.meter, c.subject, c.groupBy, c.windowSize, new Date(c.windowStart).toISOString()]);
}

/** The aggregate after one more event: a new object with the version one higher. */
export function addMeasurement(previous: UsageAggregate | undefined, at: AggregateCoordinates, m: Measurement): UsageAggregate {
  const time = formatServiceTime(m.orderTime);
  if (previous === undefined) {
    const value = m.value ?? Decimal.ZERO;
    const sum = at.aggregation === 'SUM' || at.aggregation === 'AVG' ? value.toString() : null;
    return {
      ...at,
      value: initialValue(at.aggregation, value),
      sum,
      count: 1,
      firstEventTime: m.eventTime,
      lastEventTime: m.eventTime,
      lastServiceTime: time,
      lastServiceNode: m.orderNode,
      version: 1,
    };
  }
  const count = previous.count + 1;
  const later = compareOrder(time, m.orderNode, previous.lastServiceTime, previous.lastServiceNode) > 0;
  let value = previous.value;
  let sum = previous.sum;
  const v = m.value ?? Decimal.ZERO;
  switch (at.aggregation) {
    case 'SUM':
      sum = Decimal.parse(previous.sum ?? '0').add(v).toString();
      value = sum;
      break;
    case 'AVG':
      sum = Decimal.parse(previous.sum ?? '0').add(v).toString();
      value = Decimal.parse(sum).divide(BigInt(count)).toString();
      break;
    case 'COUNT':
      value = String(count);
      break;
    case 'UNIQUE_COUNT':
      if (m.newMember) value = (BigInt(previous.value) + 1n).toString();
      break;
    case 'MIN':
      if (v.compare(Decimal.parse(previous.value)) < 0) value = v.toString();
      break;
    case 'MAX':
      if (v.compare(Decimal.parse(previous.value)) > 0) value = v.toString();
      break;
    case 'LATEST':
      if (later) value = v.toString();
      break;
  }
  return {
    ...previous,
    value,
    sum,
    count,
    firstEventTime: Math.min(previous.firstEventTime, m.eventTime),
    lastEventTime: Math.max(previous.lastEventTime, m.eventTime),
    lastServiceTime: later ? time : previous.lastServiceTime,
    lastServiceNode: later ? m.orderNode : previous.lastServiceNode,
    version: previous.version + 1,
  };
}

function initialValue(aggregation: Aggregation, value: Decimal): string {
  switch (aggregation) {
    case 'COUNT':
    case 'UNIQUE_COUNT':
      return '1';
    default:
      return value.toString();
  }
}

/** Total order of (service time hex, node): hex strings of equal width sort like the numbers. */
export function compareOrder(timeA: string, nodeA: string, timeB: string, nodeB: string): number {
  if (timeA !== timeB) return timeA < timeB ? -1 : 1;
  if (nodeA === nodeB) return 0;
  return nodeA < nodeB ? -1 : 1;
}

/** The part of aggregates that combines across windows, groups and subjects (the read side). */
export interface Partial {
  aggregation: Aggregation;
  value: string;
  sum: string | null;
  count: number;
  firstEventTime: number;
  lastEventTime: number;
  lastServiceTime: string;
  lastServiceNode: string;
}

/**
 * Combines two partials of the same meter exactly (SUM, COUNT, MIN, MAX, AVG from the
 * exact sum and count, LATEST by order key). UNIQUE_COUNT is not additive: callers must
 * not combine it (the query planner refuses such queries).
 */
export function combine(a: Partial, b: Partial): Partial {
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
      value = Decimal.parse(sum).divide(BigInt(count)).toString();
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
