import { expect } from 'vitest';
import type { Kafka } from 'kafkajs';
import { unframe } from '../../src/schema/wire-format.js';
import { type UsageAggregate, usageAggregateType } from '../../src/usage/aggregation.js';
import { decodeEvent, readAll } from './cluster.js';
import { expectGaplessSeq } from './exactly-once.js';
import { type ExpectedAggregate, expectedAggregates } from './usage-oracle.js';
import { TEST_METERS, oracleEvents } from './usage-workload.js';

/** Every committed aggregate record, reduced to the highest version per key (what compaction keeps). */
export async function readLatestAggregates(kafka: Kafka, topic: string, atLeastKeys: number): Promise<Map<string, UsageAggregate>> {
  const records = await readAll(kafka, topic, atLeastKeys, { timeoutMs: 180_000, settleMs: 3_000 });
  const latest = new Map<string, UsageAggregate>();
  for (const r of records) {
    const agg = usageAggregateType.fromBuffer(unframe(r.value).body) as UsageAggregate;
    const key = (r.key as Buffer).toString();
    const previous = latest.get(key);
    if (previous !== undefined) expect(agg.version).toBeGreaterThan(previous.version); // versions only grow, per key, in log order
    latest.set(key, agg);
  }
  return latest;
}

/** Checks the aggregates topic against the oracle, to the last decimal digit. */
export function expectAggregatesExact(actual: Map<string, UsageAggregate>, expected: Map<string, ExpectedAggregate>): void {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  expect({ missing: missing.slice(0, 5), extra: extra.slice(0, 5) }).toEqual({ missing: [], extra: [] });
  const wrong: string[] = [];
  for (const [key, want] of expected) {
    const got = actual.get(key) as UsageAggregate;
    if (got.value !== want.value || got.count !== want.count || got.version !== want.count || got.firstEventTime !== want.firstEventTime || got.lastEventTime !== want.lastEventTime) {
      wrong.push(`${key}: got value ${got.value} count ${got.count} version ${got.version}, want value ${want.value} count ${want.count}`);
    }
  }
  expect(wrong.slice(0, 10)).toEqual([]);
}

/**
 * Everything a pipeline (on TEST_METERS, topics named after `prefix`) wrote, against a
 * recomputation from the accepted events: each on the ordered topic once (gapless seq),
 * none lost, aggregates exact. Returns the latest aggregates.
 */
export async function expectUsageOutputsExact(kafka: Kafka, prefix: string, accepted: Set<string>, timeoutMs = 180_000): Promise<Map<string, UsageAggregate>> {
  const ordered = await readAll(kafka, `${prefix}-ordered`, accepted.size, { timeoutMs, settleMs: 3_000 });
  expectGaplessSeq(ordered);
  const keys = ordered.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
  expect(keys.length - new Set(keys).size).toBe(0); // nothing twice downstream
  expect(new Set(keys)).toEqual(accepted); // nothing lost
  const expected = expectedAggregates(TEST_METERS, oracleEvents(ordered));
  const actual = await readLatestAggregates(kafka, `${prefix}-aggregates`, expected.size);
  expectAggregatesExact(actual, expected);
  return actual;
}
