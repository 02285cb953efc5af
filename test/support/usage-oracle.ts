import type { UsageEvent } from '../../src/schema/usage-event.js';
import type { Meter } from '../../src/usage/meters.js';

/**
 * An independent recomputation of usage aggregates from accepted events, for tests: plain
 * BigInt fixed-point arithmetic at 10^-40 and Date arithmetic for windows, sharing no code
 * with src/usage (so a bug there cannot hide in the expectation).
 */
export interface OracleEvent {
  event: UsageEvent;
  orderTime: bigint;
  orderNode: string;
}

export interface ExpectedAggregate {
  meter: string;
  subject: string;
  groupBy: Record<string, string>;
  windowSize: string;
  windowStart: number;
  windowEnd: number;
  value: string;
  count: number;
  firstEventTime: number;
  lastEventTime: number;
}

const SCALE = 40;
const ONE = 10n ** BigInt(SCALE);

/** Decimal text -> integer count of 10^-40 units. */
export function toUnits(text: string): bigint {
  const negative = text.startsWith('-');
  const [int, frac = ''] = (negative ? text.slice(1) : text).split('.');
  const units = BigInt(int ?? '0') * ONE + BigInt((frac + '0'.repeat(SCALE)).slice(0, SCALE) || '0');
  return negative ? -units : units;
}

/** Integer count of 10^-40 units -> canonical decimal text (no trailing fractional zeros, no -0). */
export function fromUnits(units: bigint): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const int = abs / ONE;
  const frac = (abs % ONE).toString().padStart(SCALE, '0').replace(/0+$/, '');
  const text = frac.length > 0 ? `${int}.${frac}` : `${int}`;
  return negative && text !== '0' ? `-${text}` : text;
}

/** sum / count rounded half-to-even to 20 fractional digits, canonical text. */
export function average(sumUnits: bigint, count: number): string {
  const step = 10n ** BigInt(SCALE - 20); // units per 10^-20
  const denominator = BigInt(count) * step;
  const negative = sumUnits < 0n;
  const abs = negative ? -sumUnits : sumUnits;
  let q = abs / denominator;
  const r = abs % denominator;
  if (r * 2n > denominator || (r * 2n === denominator && q % 2n === 1n)) q += 1n;
  return fromUnits((negative ? -q : q) * step);
}

export function utcWindow(ms: number, size: string): { start: number; end: number } {
  const d = new Date(ms);
  switch (size) {
    case 'MINUTE':
      return { start: Math.floor(ms / 60_000) * 60_000, end: Math.floor(ms / 60_000) * 60_000 + 60_000 };
    case 'HOUR':
      return { start: Math.floor(ms / 3_600_000) * 3_600_000, end: Math.floor(ms / 3_600_000) * 3_600_000 + 3_600_000 };
    case 'DAY':
      return { start: Math.floor(ms / 86_400_000) * 86_400_000, end: Math.floor(ms / 86_400_000) * 86_400_000 + 86_400_000 };
    case 'MONTH':
      return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
    default:
      throw new Error(`unknown window size ${size}`);
  }
}

function measuredText(meter: Meter, event: UsageEvent): string | undefined {
  const p = meter.valueProperty;
  if (p === undefined) return undefined;
  return p.kind === 'value' ? event.value : event.dimensions[p.name];
}

/** Expected aggregates by Kafka key, from the events that were accepted (deduplicated, not late, valid). */
export function expectedAggregates(meters: readonly Meter[], events: readonly OracleEvent[]): Map<string, ExpectedAggregate> {
  interface Acc {
    base: Omit<ExpectedAggregate, 'value' | 'count' | 'firstEventTime' | 'lastEventTime'>;
    aggregation: string;
    count: number;
    sum: bigint;
    min: bigint | undefined;
    max: bigint | undefined;
    latest: { time: bigint; node: string; text: string } | undefined;
    members: Set<string>;
    first: number;
    last: number;
  }
  const accs = new Map<string, Acc>();
  for (const { event, orderTime, orderNode } of events) {
    for (const meter of meters) {
      if (!meter.eventTypes.includes(event.type)) continue;
      const groupBy: Record<string, string> = {};
      for (const name of Object.keys(meter.groupBy).sort()) {
        const dimension = meter.groupBy[name] as string;
        if (Object.hasOwn(event.dimensions, dimension)) groupBy[name] = event.dimensions[dimension] as string;
      }
      const text = measuredText(meter, event);
      for (const size of meter.windows) {
        const { start, end } = utcWindow(event.time, size);
        const key = JSON.stringify([meter.slug, event.subject, groupBy, size, new Date(start).toISOString()]);
        let acc = accs.get(key);
        if (!acc) {
          acc = {
            base: { meter: meter.slug, subject: event.subject, groupBy, windowSize: size, windowStart: start, windowEnd: end },
            aggregation: meter.aggregation,
            count: 0,
            sum: 0n,
            min: undefined,
            max: undefined,
            latest: undefined,
            members: new Set(),
            first: event.time,
            last: event.time,
          };
          accs.set(key, acc);
        }
        acc.count += 1;
        acc.first = Math.min(acc.first, event.time);
        acc.last = Math.max(acc.last, event.time);
        if (meter.aggregation === 'UNIQUE_COUNT') acc.members.add(text as string);
        else if (meter.aggregation !== 'COUNT') {
          const units = toUnits(text as string);
          acc.sum += units;
          acc.min = acc.min === undefined || units < acc.min ? units : acc.min;
          acc.max = acc.max === undefined || units > acc.max ? units : acc.max;
          const l = acc.latest;
          if (!l || orderTime > l.time || (orderTime === l.time && orderNode > l.node)) acc.latest = { time: orderTime, node: orderNode, text: fromUnits(units) };
        }
      }
    }
  }
  const out = new Map<string, ExpectedAggregate>();
  for (const [key, acc] of accs) {
    let value: string;
    switch (acc.aggregation) {
      case 'SUM':
        value = fromUnits(acc.sum);
        break;
      case 'COUNT':
        value = String(acc.count);
        break;
      case 'UNIQUE_COUNT':
        value = String(acc.members.size);
        break;
      case 'MIN':
        value = fromUnits(acc.min as bigint);
        break;
      case 'MAX':
        value = fromUnits(acc.max as bigint);
        break;
      case 'AVG':
        value = average(acc.sum, acc.count);
        break;
      case 'LATEST':
        value = acc.latest?.text ?? '0';
        break;
      default:
        throw new Error(`unknown aggregation ${acc.aggregation}`);
    }
    out.set(key, { ...acc.base, value, count: acc.count, firstEventTime: acc.first, lastEventTime: acc.last });
  }
  return out;
}
