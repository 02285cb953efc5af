import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { startApiRole } from '../../src/roles/api.js';
import type { UsageAggregate } from '../../src/usage/aggregation.js';
import { createTopics, deleteTopicsWithPrefix, produce, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { WorkerProcess } from '../support/process.js';
import { childEnv, testConfig } from '../support/worker.js';
import { waitForOutput, producePaced } from '../support/workload.js';
import { makeUsageWorkload, writeTestMeters } from '../support/usage-workload.js';
import { expectUsageOutputsExact } from '../support/usage-checks.js';

const kafka = testKafka();
const DAY = 86_400_000;
const LATENESS = 7 * DAY;
const EVENTS = 30_000;
const workers: WorkerProcess[] = [];
const prefixes: string[] = [];
const metersFile = writeTestMeters();
let producer: Producer;

async function setUp(name: string) {
  const prefix = uniqueName(name);
  prefixes.push(prefix);
  await createTopics(kafka, [`${prefix}-in`], 3);
  const encode = await usageEventEncoder(`${prefix}-in`);
  const overrides = { ORDO_MAX_BATCH_RECORDS: '300', ORDO_METERS_FILE: metersFile, ORDO_ALLOWED_LATENESS_MS: String(LATENESS) };
  const spawnWorker = (node: string) => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, node, overrides), node);
    workers.push(w);
    return w;
  };
  /** Reads everything the workers wrote and checks it against a recomputation from the accepted events. */
  const verify = (accepted: Set<string>) => expectUsageOutputsExact(kafka, prefix, accepted);
  return { prefix, encode, overrides, spawnWorker, verify };
}

describe('usage aggregates stay exact under process failure (real broker, real worker processes)', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('SIGKILL mid-stream, restart, then a full restart from the changelogs: aggregates exact, the API answers the same', async () => {
    const { prefix, encode, spawnWorker, verify } = await setUp('usage-kill');
    const now = Date.now();
    const first = makeUsageWorkload(encode, { count: EVENTS, subjects: 80, now, latenessMs: LATENESS, spreadDays: 5 });
    const a = spawnWorker('node-a');
    await a.waitFor((l) => l.msg === 'task restored');
    const producing = producePaced(producer, `${prefix}-in`, first.messages, 10_000);
    await waitForOutput(kafka, `${prefix}-aggregates`, 5_000);
    a.signal('SIGKILL');
    expect(await a.exited).toBe(-1);
    const b = spawnWorker('node-b');
    await producing;
    await verify(first.accepted);
    expect(await b.stop()).toBe(0);

    // Every worker gone: the next one has nothing but the changelogs. A second wave on top
    // of restored state (same subjects, windows and ids: duplicates of wave one must be caught).
    const second = makeUsageWorkload(encode, { count: 6_000, subjects: 80, now, latenessMs: LATENESS, spreadDays: 5, seed: 7, idPrefix: 'wave2' });
    const resent = first.messages.slice(0, 500); // re-sends of wave one: the restored dedupe store drops the accepted ones
    const c = spawnWorker('node-c');
    await c.waitFor((l) => l.msg === 'task restored');
    expect(c.lines.some((l) => l.msg === 'task restored' && Number(l.records) > 0)).toBe(true);
    await produce(producer, `${prefix}-in`, [...second.messages, ...resent]);
    const all = new Set([...first.accepted, ...second.accepted]);
    const aggregates = await verify(all);
    expect(await c.stop()).toBe(0);

    // A fresh API replica builds its read model from the topic alone and answers the same.
    const config = testConfig(prefix, { ORDO_METERS_FILE: metersFile, ORDO_API_PORT: '0' });
    const api = await startApiRole(config, { logger: noopLogger, metrics: new OrdoMetrics() });
    try {
      await api.caughtUp();
      const someMonth = [...aggregates.values()].find((x): x is UsageAggregate => x.meter === 'api-spend' && x.windowSize === 'MONTH') as UsageAggregate;
      const url = `http://127.0.0.1:${api.port}/v1/meters/api-spend/usage?subject=${someMonth.subject}&from=${new Date(someMonth.windowStart).toISOString()}&to=${new Date(someMonth.windowEnd).toISOString()}`;
      const answer = (await (await fetch(url)).json()) as { totals: { value: string; count: number }[] };
      expect(answer.totals).toEqual([expect.objectContaining({ value: someMonth.value, count: someMonth.count })]);
    } finally {
      await api.stop();
    }
  });

  it('a second worker joining mid-stream (rebalance): aggregates exact, nothing counted twice or lost', async () => {
    const { prefix, encode, spawnWorker, verify } = await setUp('usage-join');
    const workload = makeUsageWorkload(encode, { count: EVENTS, subjects: 80, now: Date.now(), latenessMs: LATENESS, spreadDays: 5, seed: 3 });
    const a = spawnWorker('node-a');
    await a.waitFor((l) => l.msg === 'task restored');
    const producing = producePaced(producer, `${prefix}-in`, workload.messages, 12_000);
    await waitForOutput(kafka, `${prefix}-aggregates`, 4_000);
    const b = spawnWorker('node-b');
    await b.waitFor((l) => l.msg === 'task restored', 60_000);
    await producing;
    await verify(workload.accepted);
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
  });
});
