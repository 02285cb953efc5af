import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { newDeletion } from '../../src/deletion/deletions.js';
import { unframe } from '../../src/schema/wire-format.js';
import { type UsageAggregate, usageAggregateType } from '../../src/usage/aggregation.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { WorkerProcess, sleep } from '../support/process.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { childEnv } from '../support/worker.js';
import { freePort } from '../support/prometheus.js';

/**
 * A deletion's sweep is resumable: a pipeline worker SIGKILLed while it tombstones a deleted
 * subject's aggregates (a few per transaction) and sends its held events to the late topic,
 * then restarted, ends in the same state as a run that was never interrupted: the same live
 * aggregates, every one of the subject's tombstoned, each held event late exactly once.
 */
const kafka = testKafka();
const PARTITIONS = 3;
const workers: WorkerProcess[] = [];
const prefixes: string[] = [];
const metersFile = writeTestMeters();
let producer: Producer;

const isAcme = (subject: string): boolean => subject === 'acme' || subject.startsWith('acme/');
const subjectOf = (key: string): string => (JSON.parse(key) as unknown[])[1] as string;

interface FinalState {
  /** Live aggregates: key -> value/count (what billing reads). */
  live: Map<string, string>;
  tombstoned: Set<string>;
  /** Held events sent late for the deletion, by event id (with repeats, if any). */
  late: string[];
}

async function run(name: string, crash: boolean, now: number): Promise<FinalState> {
  const prefix = uniqueName(name);
  prefixes.push(prefix);
  await createTopics(kafka, [`${prefix}-in`], PARTITIONS);
  const encode = await usageEventEncoder(`${prefix}-in`);
  // Held 60 s in the reorder buffer; ticks every 100 ms; 4 entries swept per transaction.
  const env = { ORDO_METERS_FILE: metersFile, ORDO_REORDER_WINDOW_MS: '60000', ORDO_WATERMARK_INTERVAL_MS: '200', ORDO_DELETION_SWEEP_BATCH: '4' };
  const start = async (node: string): Promise<{ w: WorkerProcess; metricsPort: number }> => {
    const metricsPort = await freePort();
    const w = new WorkerProcess('pipeline', childEnv(prefix, node, { ...env, ORDO_METRICS_PORT: String(metricsPort) }), node);
    workers.push(w);
    await w.waitFor(() => w.lines.filter((l) => l.msg === 'task restored').length >= PARTITIONS, 120_000);
    return { w, metricsPort };
  };
  const messages: { key: string; value: Buffer }[] = [];
  const subjects = ['acme', ...Array.from({ length: 8 }, (_, i) => `acme/t${i}`), 'beta', 'gamma', 'acmecorp'];
  for (let i = 0; i < 480; i++) {
    const subject = subjects[i % subjects.length]!;
    // Minutes over the last two hours: many MINUTE windows, so many aggregates to sweep.
    const e: UsageEvent = { id: `e-${i}`, source: 'fault', type: 'api.request', subject, time: now - 7_200_000 + ((i * 7_919) % 7_000_000), value: String(1 + (i % 17)), dimensions: { region: i % 3 === 0 ? 'eu' : 'us', user: `u${i % 5}` } };
    messages.push({ key: subject, value: encode(e) });
  }
  const { w: a, metricsPort } = await start(`${name}-a`);
  await produce(producer, `${prefix}-in`, messages);
  // Everything aggregated (held events are aggregated on arrival): the aggregates topic settles.
  const counted = await readAll(kafka, `${prefix}-aggregates`, 300, { timeoutMs: 120_000, settleMs: 5_000 });
  const acmeKeys = new Set(counted.map((r) => r.key!.toString()).filter((k) => isAcme(subjectOf(k))));
  expect(acmeKeys.size).toBeGreaterThan(100);

  // The deletion: one record, as the api writes it.
  const { key, value } = newDeletion('acme', true, '/', Date.now(), 'fault-test');
  await producer.send({ topic: `${prefix}-deletions`, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });

  let b: WorkerProcess | undefined;
  if (crash) {
    // Mid-sweep: some held events sent late (the sweep's first phase), far from all (read from its metrics, polled fast).
    for (let i = 0; ; i++) {
      const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text(), () => '');
      const sent = Number(/ordo_events_late_total\{reason="subject-deleted"\} (\d+)/.exec(text)?.[1] ?? 0);
      if (sent >= 20) {
        expect(sent).toBeLessThan(300); // of the 360 acme events held: killed mid-sweep
        break;
      }
      if (i > 20_000) throw new Error('the sweep did not start');
      await sleep(10);
    }
    a.signal('SIGKILL');
    await a.exited;
    b = (await start(`${name}-b`)).w;
  }
  // Done when every task marked the deletion swept.
  const deadline = Date.now() + 240_000;
  for (;;) {
    const markers = await readAll(kafka, `${prefix}-deletions`, 1 + PARTITIONS, { timeoutMs: 5_000, settleMs: 0 });
    if (markers.filter((r) => r.key!.toString().startsWith(`*swept/${value.id}/`)).length >= PARTITIONS) break;
    if (Date.now() > deadline) throw new Error(`the sweep did not finish; last lines:\n${(b ?? a).stderr.slice(-10).join('\n')}`);
    await sleep(500);
  }
  const records = await readAll(kafka, `${prefix}-aggregates`, counted.length + acmeKeys.size, { timeoutMs: 60_000, settleMs: 2_000 });
  const latest = new Map<string, Buffer | null>();
  for (const r of records) latest.set(r.key!.toString(), r.value);
  const live = new Map<string, string>();
  const tombstoned = new Set<string>();
  for (const [k, v] of latest) {
    if (v === null) tombstoned.add(k);
    else {
      const agg = usageAggregateType.fromBuffer(unframe(v).body) as UsageAggregate;
      live.set(k, `${agg.value}/${agg.count}`);
    }
  }
  const lateRecords = await readAll(kafka, `${prefix}-late`, 1, { timeoutMs: 10_000, settleMs: 1_000 });
  const late = lateRecords.filter((r) => header(r, 'ordo-late-reason') === 'subject-deleted').map((r) => decodeEvent(r.value).id);
  // The restarted worker resumed the sweep and finished it.
  if (b !== undefined) expect(b.lines.filter((l) => l.msg === 'deletion swept').length).toBeGreaterThan(0);
  for (const w of [a, b]) await w?.stop(10_000);
  return { live, tombstoned, late };
}

describe('deletion sweep under SIGKILL (real broker, real worker processes)', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('a worker killed mid-sweep and restarted ends in the same state as an uninterrupted sweep', async () => {
    // One clock for both runs: the same events fall in the same windows.
    const now = Date.now();
    const reference = await run('del-sweep-ref', false, now);
    const crashed = await run('del-sweep-kill', true, now);
    for (const state of [reference, crashed]) {
      expect([...state.live.keys()].filter((k) => isAcme(subjectOf(k)))).toEqual([]);
      expect([...state.tombstoned].every((k) => isAcme(subjectOf(k)))).toBe(true);
      expect(new Set(state.late).size).toBe(state.late.length); // each held event late exactly once
    }
    expect(crashed.live).toEqual(reference.live);
    expect(crashed.tombstoned).toEqual(reference.tombstoned);
    expect(crashed.late.length).toBeGreaterThan(0);
    expect(crashed.late.sort()).toEqual(reference.late.sort());
  }, 600_000);
});
