import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { TEST_METERS, makeUsageWorkload, oracleEvents, writeTestMeters } from '../support/usage-workload.js';
import { expectAggregatesExact, readLatestAggregates } from '../support/usage-checks.js';
import { expectedAggregates, fromUnits, toUnits, utcWindow } from '../support/usage-oracle.js';

const kafka = testKafka();
const DAY = 86_400_000;
const LATENESS = 7 * DAY;
const EVENTS = Number(process.env.ORDO_TEST_USAGE_EVENTS ?? 100_000);
const prefix = uniqueName('usage');
let producer: Producer;
let api: ApiRole | undefined;

describe('usage aggregation on the write path: ground truth through the real broker', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 3);
  });

  afterAll(async () => {
    await api?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it(`aggregates ${EVENTS} events with duplicates, late and bad values exactly, and the API answers from them`, async () => {
    const now = Date.now();
    const encode = await usageEventEncoder(`${prefix}-in`);
    const workload = makeUsageWorkload(encode, { count: EVENTS, subjects: 150, now, latenessMs: LATENESS, spreadDays: 6 });
    expect(workload.duplicates).toBeGreaterThan(EVENTS / 100);
    expect(workload.late.size).toBeGreaterThan(EVENTS / 200);
    expect(workload.bad.size).toBeGreaterThan(EVENTS / 500);
    await produce(producer, `${prefix}-in`, workload.messages);

    const config = testConfig(prefix, { ORDO_METERS_FILE: writeTestMeters(), ORDO_ALLOWED_LATENESS_MS: String(LATENESS) });
    const { worker, metrics } = await startPipeline(config);
    const ordered = await readAll(kafka, config.topics.ordered, workload.accepted.size, { timeoutMs: 240_000, settleMs: 3_000 });
    const late = await readAll(kafka, config.topics.late, workload.late.size, { settleMs: 1_000 });
    const dlq = await readAll(kafka, config.topics.dlq, workload.bad.size, { settleMs: 1_000 });

    // Every accepted event exactly once downstream; late and bad ones on their topics with the reason.
    const keysOf = (records: typeof ordered) => records.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
    const orderedKeys = keysOf(ordered);
    expect(new Set(orderedKeys).size).toBe(orderedKeys.length);
    expect(new Set(orderedKeys)).toEqual(workload.accepted);
    expect(new Set(keysOf(late))).toEqual(workload.late);
    expect(late.every((r) => header(r, 'ordo-late-reason') === 'too-late')).toBe(true);
    expect(new Set(dlq.map((r) => header(r, 'test-id')))).toEqual(workload.bad);
    expect(dlq.every((r) => header(r, 'ordo-dlq-reason') === 'invalid-value')).toBe(true);
    const duplicates = (await metrics.registry.getSingleMetric('ordo_events_duplicate_total')?.get())?.values[0]?.value;
    expect(duplicates).toBe(workload.duplicates);

    // Every aggregate in the topic equals a plain recomputation from the accepted events.
    const events = oracleEvents(ordered);
    const expected = expectedAggregates(TEST_METERS, events);
    const actual = await readLatestAggregates(kafka, config.topics.aggregates, expected.size);
    expectAggregatesExact(actual, expected);
    await worker.stop();

    // The API (a read model over the aggregates topic) answers the same, to the last digit.
    api = await startApiRole({ ...config, apiPort: 0 }, { logger: noopLogger, metrics: new OrdoMetrics() });
    await api.caughtUp();
    const base = `http://127.0.0.1:${api.port}/v1/meters`;
    const listed = (await (await fetch(base)).json()) as { meters: { slug: string }[] };
    expect(listed.meters.map((m) => m.slug)).toEqual(TEST_METERS.map((m) => m.slug));

    const from = utcWindow(now - 8 * DAY, 'DAY').start;
    const to = utcWindow(now, 'DAY').end;
    const iso = (ms: number) => new Date(ms).toISOString();
    for (const subject of ['cust-0', 'cust-7', 'cust-42', 'cust-149']) {
      // Daily SUM per subject: each row is one DAY aggregate.
      const daily = (await (await fetch(`${base}/api-spend/usage?subject=${subject}&from=${iso(from)}&to=${iso(to)}&windowSize=DAY`)).json()) as {
        data: { windowStart: string; value: string; count: number }[];
        totals: { value: string; count: number }[];
        freshness: { caughtUp: boolean; lagRecords: number };
      };
      expect(daily.freshness).toMatchObject({ caughtUp: true, lagRecords: 0 });
      const mine = events.filter((e) => e.event.subject === subject && e.event.type === 'api.request');
      const byDay = new Map<string, { units: bigint; count: number }>();
      for (const e of mine) {
        const day = iso(utcWindow(e.event.time, 'DAY').start);
        const cell = byDay.get(day) ?? { units: 0n, count: 0 };
        byDay.set(day, { units: cell.units + toUnits(e.event.value), count: cell.count + 1 });
      }
      expect(daily.data.map((r) => [r.windowStart, r.value, r.count])).toEqual(
        [...byDay].sort(([a], [b]) => a.localeCompare(b)).map(([day, c]) => [day, fromUnits(c.units), c.count]),
      );
      const total = mine.reduce((sum, e) => sum + toUnits(e.event.value), 0n);
      expect(daily.totals).toEqual([expect.objectContaining({ value: fromUnits(total), count: mine.length })]);

      // Unique users per DAY (answered from single maintained windows only).
      const users = (await (await fetch(`${base}/active-users/usage?subject=${subject}&from=${iso(from)}&to=${iso(to)}&windowSize=DAY`)).json()) as {
        data: { windowStart: string; value: string }[];
      };
      const distinct = new Map<string, Set<string>>();
      for (const e of events.filter((x) => x.event.subject === subject)) {
        const day = iso(utcWindow(e.event.time, 'DAY').start);
        distinct.set(day, (distinct.get(day) ?? new Set()).add(e.event.dimensions.user as string));
      }
      expect(users.data.map((r) => [r.windowStart, r.value])).toEqual(
        [...distinct].sort(([a], [b]) => a.localeCompare(b)).map(([day, s]) => [day, String(s.size)]),
      );
    }
    const bad = await fetch(`${base}/api-spend/usage?from=${iso(to)}&to=${iso(from)}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { kind: string } }).error.kind).toBe('bad-parameter');
    expect((await fetch(`${base}/no-such-meter/usage?from=${iso(from)}&to=${iso(to)}`)).status).toBe(404);
  }, 400_000);
});
