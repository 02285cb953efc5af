import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { CORRECTION_HEADER } from '../../src/corrections/correction.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type IngestRole, startIngestRole } from '../../src/roles/ingest.js';
import type { UsageAggregate } from '../../src/usage/aggregation.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { expectAggregatesExact, readLatestAggregates } from '../support/usage-checks.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { correctedOracle, expectCorrectionsAfterOriginals, makeCorrectionWorkload } from '../corrections/workload.js';

// Corrections through the real pipeline and broker: voids and amends (some before their
// originals, some re-sent) end in aggregates equal to an oracle that applies them; the
// ordered topic carries each correction after its original; the ingest role's
// POST /v1/events/{source}/{id}/void reaches the aggregates too.

const kafka = testKafka();
const EVENTS = Number(process.env.ORDO_TEST_CORRECTION_EVENTS ?? 5_000);
const prefix = uniqueName('corr');
let producer: Producer;
let ingest: IngestRole | undefined;

/** Aggregates of windows every event of which was voided stay with count 0 (the oracle has no such window). */
const counted = (aggregates: Map<string, UsageAggregate>): Map<string, UsageAggregate> => new Map([...aggregates].filter(([, a]) => a.count > 0));

describe('corrections through the real pipeline', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 3);
  });

  afterAll(async () => {
    await ingest?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it(`${EVENTS} events with ~2 % voids and ~2 % amends end as the oracle says, and a void posted to the ingest role is applied`, async () => {
    const now = Date.now();
    const encode = await usageEventEncoder(`${prefix}-in`);
    const workload = makeCorrectionWorkload(encode, { count: EVENTS, subjects: 40, now });
    expect(workload.voids).toBeGreaterThan(EVENTS / 100);
    expect(workload.amends).toBeGreaterThan(EVENTS / 100);
    expect(workload.early).toBeGreaterThan(0);
    expect(workload.resent).toBeGreaterThan(0);
    await produce(producer, `${prefix}-in`, workload.messages);

    const config = testConfig(prefix, { ORDO_METERS_FILE: writeTestMeters(), ORDO_ALLOWED_LATENESS_MS: String(7 * 86_400_000) });
    const { worker, metrics } = await startPipeline(config);
    try {
      const ordered = await readAll(kafka, config.topics.ordered, workload.accepted.size, { timeoutMs: 180_000, settleMs: 3_000 });
      const keys = ordered.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
      expect(keys.length - new Set(keys).size).toBe(0); // re-sent corrections are dropped as duplicates
      expect(new Set(keys)).toEqual(workload.accepted);
      expect(expectCorrectionsAfterOriginals(ordered)).toEqual([]);
      expect(await readAll(kafka, config.topics.dlq, 0, { settleMs: 500 })).toEqual([]);
      expect(await readAll(kafka, config.topics.late, 0, { settleMs: 500 })).toEqual([]);

      const expected = correctedOracle(ordered, workload.corrections);
      const actual = await readLatestAggregates(kafka, config.topics.aggregates, expected.size);
      expectCorrected(counted(actual), expected);
      const applied = (await metrics.registry.getSingleMetric('ordo_corrections_total')?.get())?.values.filter((v) => v.labels.outcome === 'applied');
      expect(applied?.find((v) => v.labels.kind === 'void')?.value).toBe(workload.voids);
      expect(applied?.find((v) => v.labels.kind === 'amend')?.value).toBe(workload.amends);

      // Through the ingest role: void one more original that is still counted.
      ingest = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics() });
      const target = ordered.map((r) => decodeEvent(r.value)).find((e) => e.type === 'api.request' && !workload.corrections.has(`${e.source}/${e.id}`) && !e.id.startsWith('fix-'))!;
      const res = await fetch(`http://127.0.0.1:${ingest.port}/v1/events/${encodeURIComponent(target.source)}/${encodeURIComponent(target.id)}/void`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ subject: target.subject }),
      });
      expect(res.status).toBe(202);
      const posted = ((await res.json()) as { events: { id: string; source: string }[] }).events[0]!;
      const after = await readAll(kafka, config.topics.ordered, workload.accepted.size + 1, { timeoutMs: 60_000, settleMs: 2_000 });
      const last = after.find((r) => decodeEvent(r.value).id === posted.id)!;
      expect(header(last, CORRECTION_HEADER.kind)).toBe('void');
      expect(header(last, CORRECTION_HEADER.id)).toBe(target.id);
      const corrections = new Map(workload.corrections).set(`${target.source}/${target.id}`, { kind: 'void', event: decodeEvent(last.value) });
      const expectedAfter = correctedOracle(after, corrections);
      expectCorrected(counted(await readLatestAggregates(kafka, config.topics.aggregates, expectedAfter.size)), expectedAfter);
    } finally {
      await worker.stop();
    }
  });
});

/**
 * expectAggregatesExact, whose version check is "one version per event folded": a corrected
 * aggregate's version counts its folds and its corrections (each one more version), which
 * is not its count (an event voided away was folded; one amended into it was not).
 */
function expectCorrected(actual: Map<string, UsageAggregate>, expected: Parameters<typeof expectAggregatesExact>[1]): void {
  expect([...actual.values()].some((a) => a.corrections > 0)).toBe(true);
  expectAggregatesExact(new Map([...actual].map(([k, a]) => [k, { ...a, version: a.corrections > 0 ? a.count : a.version }])), expected);
}
