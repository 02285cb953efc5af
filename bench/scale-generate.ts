/**
 * The scale bench's input: N UsageAggregates written straight into a fresh aggregates topic,
 * byte for byte as the pipeline writes them (Confluent-framed Avro under the topic's value
 * subject, key = aggregate key, partition = partitionOf(subject) as the pipeline's
 * co-partitioning puts them, no compression, no headers), but without events, stamps or
 * transactions: the read side is what is measured, and 10^7 aggregates through the
 * pipeline would take an hour here.
 *
 * Shape: subject `cust-<s>` was active every hour of one day (2026-09-15 UTC) with the bench
 * meters (bench/meters.ts): 24 HOUR + 1 DAY + 1 MONTH windows of api-requests (COUNT, one
 * region group) and api-spend (SUM), 24 HOUR + 1 DAY of response-time (AVG), 1 DAY + 1 MONTH
 * of active-users (UNIQUE_COUNT): AGGREGATES_PER_SUBJECT = 79. The aggregates are folded
 * from synthetic events with the pipeline's own fold/finish, so DAY and MONTH agree exactly
 * with their HOURs and every value is canonical.
 */
import type { Message, Producer } from 'kafkajs';
import { makeServiceTime } from '../src/clock/service-time.js';
import { partitionOf } from '../src/kafka/partition-of.js';
import { frame } from '../src/schema/wire-format.js';
import { type AggregateWork, type UsageAggregate, aggregateKey, finish, fold, startWork, usageAggregateType } from '../src/usage/aggregation.js';
import { Decimal } from '../src/usage/decimal.js';
import type { Aggregation } from '../src/usage/meters.js';
import { type WindowSize, windowEnd, windowStart } from '../src/usage/windows.js';
import { withTimeout } from './kafka.js';

export const SCALE_DAY = Date.UTC(2026, 8, 15);
export const SCALE_MONTH = { from: Date.UTC(2026, 8, 1), to: Date.UTC(2026, 9, 1) };
const HOUR_MS = 3_600_000;
const REGIONS = ['eu-west-1', 'us-east-1', 'ap-south-1'] as const;
const NODE = 'bench-scale';

interface MeterShape {
  meter: string;
  aggregation: Aggregation;
  windows: WindowSize[];
}

const SHAPE: readonly MeterShape[] = [
  { meter: 'api-requests', aggregation: 'COUNT', windows: ['HOUR', 'DAY', 'MONTH'] },
  { meter: 'api-spend', aggregation: 'SUM', windows: ['HOUR', 'DAY', 'MONTH'] },
  { meter: 'response-time', aggregation: 'AVG', windows: ['HOUR', 'DAY'] },
  { meter: 'active-users', aggregation: 'UNIQUE_COUNT', windows: ['DAY', 'MONTH'] },
];

export const AGGREGATES_PER_SUBJECT = SHAPE.reduce((n, m) => n + m.windows.reduce((k, w) => k + (w === 'HOUR' ? 24 : 1), 0), 0);

export function subjectName(s: number): string {
  return `cust-${s}`;
}

export function subjectsFor(aggregates: number): number {
  return Math.ceil(aggregates / AGGREGATES_PER_SUBJECT);
}

/** Events of subject s in hour h: 1 or 2. */
function eventsIn(s: number, h: number): number {
  return 1 + ((s + h) % 2);
}

/** api-spend value of event k of subject s in hour h (two decimals, exact). */
function spendOf(s: number, h: number, k: number): Decimal {
  return Decimal.parse(`${((s * 31 + h * 7 + k) % 97) + 1}.25`);
}

/** The exact api-spend total of subject s for the day (what a month-total query sums). */
export function spendTotal(s: number): Decimal {
  let total = Decimal.ZERO;
  for (let h = 0; h < 24; h++) for (let k = 0; k < eventsIn(s, h); k++) total = total.add(spendOf(s, h, k));
  return total;
}

/**
 * The exact api-spend total over the month of the first `aggregates` aggregates: each
 * subject's MONTH window, counted when it was written (the last subject may be cut off).
 */
export function expectedSpendTotal(aggregates: number): string {
  let total = Decimal.ZERO;
  const whole = Math.floor(aggregates / AGGREGATES_PER_SUBJECT);
  for (let s = 0; s < whole; s++) total = total.add(spendTotal(s));
  const rest = aggregates - whole * AGGREGATES_PER_SUBJECT;
  const month = subjectAggregates(whole).slice(0, rest).find((a) => a.aggregate.meter === 'api-spend' && a.aggregate.windowSize === 'MONTH');
  if (month !== undefined) total = total.add(Decimal.parse(month.aggregate.value));
  return total.toString();
}

/** The 79 aggregates of subject s, always in the same order (the generator cuts the last subject off in it). */
export function subjectAggregates(s: number): { key: string; subject: string; aggregate: UsageAggregate }[] {
  const subject = subjectName(s);
  const region = REGIONS[s % REGIONS.length]!;
  const works = new Map<string, AggregateWork>();
  const workFor = (m: MeterShape, size: WindowSize, at: number): AggregateWork => {
    const start = windowStart(at, size);
    const groupBy: Record<string, string> = m.meter === 'api-requests' ? { region } : {};
    const key = aggregateKey({ meter: m.meter, subject, groupBy, windowSize: size, windowStart: start });
    let work = works.get(key);
    if (work === undefined) {
      work = startWork(undefined, { meter: m.meter, aggregation: m.aggregation, subject, groupBy, windowSize: size, windowStart: start, windowEnd: windowEnd(start, size) });
      works.set(key, work);
    }
    return work;
  };
  const users = new Set<string>();
  let counter = 0;
  for (let h = 0; h < 24; h++) {
    for (let k = 0; k < eventsIn(s, h); k++) {
      const eventTime = SCALE_DAY + h * HOUR_MS + k * 1_000;
      const user = `user-${(h + k) % 25}`;
      const newMember = !users.has(user);
      users.add(user);
      const orderTime = makeServiceTime(eventTime + 500, counter++ % 65_536);
      for (const m of SHAPE) {
        const value = m.aggregation === 'SUM' ? spendOf(s, h, k) : m.aggregation === 'AVG' ? Decimal.parse(String(5 + ((s + h * 37 + k) % 400))) : undefined;
        for (const size of m.windows) fold(workFor(m, size, eventTime), { value, newMember, eventTime, orderTime, orderNode: NODE });
      }
    }
  }
  return [...works].map(([key, work]) => ({ key, subject, aggregate: finish(work) }));
}

export interface GenerateResult {
  aggregates: number;
  subjects: number;
  bytes: number;
  perPartition: number[];
  ms: number;
  aggregatesPerSecond: number;
}

/**
 * Writes the first `n` aggregates of subjects 0, 1, ... to `topic` (its `partitions`), in
 * sendBatch calls of about `batch` records, one in flight (the producer is idempotent, so a
 * retried batch is not duplicated and the order per partition holds), the next batch
 * generated while the previous one is on the wire.
 */
export async function generateAggregates(
  producer: Producer,
  options: { topic: string; partitions: number; schemaId: number; aggregates: number; batch?: number; log?: (line: string) => void },
): Promise<GenerateResult> {
  const batch = options.batch ?? 20_000;
  const started = Date.now();
  const perPartition = Array.from({ length: options.partitions }, () => 0);
  let written = 0;
  let bytes = 0;
  let s = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  let nextReport = 1_000_000;
  while (written < options.aggregates) {
    const messages: Message[] = [];
    while (messages.length < batch && written + messages.length < options.aggregates) {
      const partition = partitionOf(subjectName(s), options.partitions);
      for (const a of subjectAggregates(s)) {
        if (written + messages.length >= options.aggregates) break;
        const value = frame(options.schemaId, usageAggregateType.toBuffer(a.aggregate));
        bytes += value.length + Buffer.byteLength(a.key);
        perPartition[partition]! += 1;
        messages.push({ key: a.key, value, partition, headers: {} });
      }
      s++;
    }
    await inFlight;
    inFlight = withTimeout(producer.send({ topic: options.topic, messages, acks: -1 }), 120_000, `producing to ${options.topic}`);
    written += messages.length;
    if (written >= nextReport) {
      options.log?.(`  ${written.toLocaleString('en-US')} aggregates written (${Math.round((written / Math.max(1, Date.now() - started)) * 1000).toLocaleString('en-US')}/s)`);
      nextReport += 1_000_000;
    }
  }
  await inFlight;
  const ms = Date.now() - started;
  return { aggregates: written, subjects: s, bytes, perPartition, ms, aggregatesPerSecond: Math.round((written / Math.max(1, ms)) * 1000) };
}
