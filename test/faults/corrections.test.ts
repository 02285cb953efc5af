import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import type { UsageAggregate } from '../../src/usage/aggregation.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { expectGaplessSeq } from '../support/exactly-once.js';
import { WorkerProcess } from '../support/process.js';
import { expectAggregatesExact, readLatestAggregates } from '../support/usage-checks.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { producePaced, waitForOutput } from '../support/workload.js';
import { childEnv } from '../support/worker.js';
import { correctedOracle, expectCorrectionsAfterOriginals, makeCorrectionWorkload } from '../corrections/workload.js';

// The ground truth of issue 14 part 4: events with ~2 % voids and ~2 % amends, a quarter of
// the corrections before their originals, some re-sent, and a SIGKILL of the pipeline process
// mid-stream: every aggregate equals an oracle that applies the corrections. The issue's
// 100,000 events by default (78 s on the 2-core development machine; 20,000: 36-42 s);
// ORDO_TEST_CORRECTION_FAULT_EVENTS sets another count.

const kafka = testKafka();
const EVENTS = Number(process.env.ORDO_TEST_CORRECTION_FAULT_EVENTS ?? 100_000);
const workers: WorkerProcess[] = [];
const prefix = uniqueName('corr-kill');
let producer: Producer;

describe('corrections stay exact under process failure (real broker, real worker processes)', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 3);
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it(`SIGKILL while ${EVENTS} events and their corrections stream in: every aggregate equals the oracle`, async () => {
    const encode = await usageEventEncoder(`${prefix}-in`);
    const workload = makeCorrectionWorkload(encode, { count: EVENTS, subjects: 80, now: Date.now() });
    expect(workload.early).toBeGreaterThan(0);
    const overrides = { ORDO_MAX_BATCH_RECORDS: '300', ORDO_METERS_FILE: writeTestMeters(), ORDO_ALLOWED_LATENESS_MS: String(7 * 86_400_000) };
    const spawn = (node: string): WorkerProcess => {
      const w = new WorkerProcess('pipeline', childEnv(prefix, node, overrides), node);
      workers.push(w);
      return w;
    };
    const a = spawn('node-a');
    await a.waitFor((l) => l.msg === 'task restored');
    const producing = producePaced(producer, `${prefix}-in`, workload.messages, 12_000);
    // Killed once corrections have been applied (and some are waiting for their originals).
    await waitForOutput(kafka, `${prefix}-ordered`, Math.floor(EVENTS / 3));
    a.signal('SIGKILL');
    expect(await a.exited).toBe(-1);
    const b = spawn('node-b');
    await producing;

    const ordered = await readAll(kafka, `${prefix}-ordered`, workload.accepted.size, { timeoutMs: 240_000, settleMs: 3_000 });
    expectGaplessSeq(ordered);
    const keys = ordered.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
    expect(keys.length - new Set(keys).size).toBe(0);
    expect(new Set(keys)).toEqual(workload.accepted);
    expect(expectCorrectionsAfterOriginals(ordered)).toEqual([]);
    expect(await readAll(kafka, `${prefix}-dlq`, 0, { settleMs: 500 })).toEqual([]);
    expect(await readAll(kafka, `${prefix}-late`, 0, { settleMs: 500 })).toEqual([]);

    const expected = correctedOracle(ordered, workload.corrections);
    const actual = await readLatestAggregates(kafka, `${prefix}-aggregates`, expected.size);
    const counted = new Map([...actual].filter(([, x]) => x.count > 0));
    expect([...counted.values()].some((x) => x.corrections > 0)).toBe(true);
    // A corrected aggregate's version counts its folds and corrections, not its events.
    expectAggregatesExact(new Map([...counted].map(([k, x]): [string, UsageAggregate] => [k, { ...x, version: x.corrections > 0 ? x.count : x.version }])), expected);
    expect(await b.stop()).toBe(0);
  });
});
