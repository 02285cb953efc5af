// The monitoring as it runs: a real Prometheus (the `prometheus` binary, scraping every
// second, with deploy/prometheus/rules/ordo.rules.yml loaded) scrapes a real `ordo pipeline`
// process that works through events on the real broker. Then every query of the Grafana
// dashboard (deploy/grafana/dashboards/ordo.json) must return data, every alert rule must
// evaluate cleanly, and the alerts this workload should trip must be pending or firing.
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime } from '../../src/clock/service-time.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { type TestMessage, createTopics, deleteTopicsWithPrefix, produce, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { WorkerProcess, sleep } from '../support/process.js';
import {
  PrometheusServer,
  RULES_FILE,
  alertRules,
  dashboardQueries,
  freePort,
  loadDashboard,
  loadRules,
  metricNames,
  substituteVariables,
  variableQueries,
} from '../support/prometheus.js';
import { makeUsageWorkload, writeTestMeters } from '../support/usage-workload.js';
import { childEnv } from '../support/worker.js';

const DAY = 86_400_000;
const LATENESS = 7 * DAY;
const JOB = 'ordo-pipeline';
const INGEST_JOB = 'ordo-ingest';
const DELIVER_JOB = 'ordo-deliver';
const PARTITIONS = 3;
const prefix = uniqueName('prom');
const group = `${prefix}-g`;
const input = `${prefix}-in`;
const kafka = testKafka();

let producer: Producer | undefined;
let worker: WorkerProcess | undefined;
let ingest: WorkerProcess | undefined;
let deliver: WorkerProcess | undefined;
/** An SSE stream kept open through the scrapes (the Delivery row's streams, records and delay). */
const stream = new AbortController();
let prometheus: PrometheusServer | undefined;
let metersFile: string | undefined;
let produced = 0;

/** Upstream events with a time context: adopted ones (a little ahead), rejected ones (far ahead), and two sharing one key. */
function timedEvents(encode: (e: UsageEvent) => Buffer): TestMessage[] {
  const now = Date.now();
  const event = (id: string, subject: string): Buffer => encode({ id, source: 'upstream', type: 'api.request', subject, time: now, value: '1', dimensions: { region: 'r1', user: 'u1' } });
  const context = (ms: number) => ({ 'service-time': formatServiceTime(makeServiceTime(ms, 0)), 'service-node': 'upstream-a' });
  const messages: TestMessage[] = [];
  for (let i = 0; i < 30; i++) messages.push({ key: `svc-${i % 6}`, value: event(`timed-${i}`, `svc-${i % 6}`), headers: context(now - 50 + i) });
  // More than ORDO_MAX_SKEW_MS (500 ms) ahead: dead-lettered as clock-skew.
  for (let i = 0; i < 3; i++) messages.push({ key: `skew-${i}`, value: event(`skewed-${i}`, `skew-${i}`), headers: context(now + 60_000) });
  // Two events of one subject with the same (service-time, node): a duplicate-key violation.
  for (const id of ['twin-a', 'twin-b']) messages.push({ key: 'twins', value: event(id, 'twins'), headers: context(now - 10) });
  return messages;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${prometheus ? `\nprometheus log:\n${prometheus.log()}` : ''}`);
    if (worker !== undefined && worker.child.exitCode !== null) throw new Error(`the worker exited (${worker.child.exitCode}):\n${worker.stderr.slice(-15).join('\n')}`);
    await sleep(250);
  }
}

async function scalar(expr: string): Promise<number | undefined> {
  const { result } = await prometheus!.query(expr);
  return result.length > 0 ? Number(result[0]!.value[1]) : undefined;
}

describe('Prometheus rules and the Grafana dashboard against a real worker', () => {
  beforeAll(async () => {
    await createTopics(kafka, [input], PARTITIONS);
    const encode = await usageEventEncoder(input);
    producer = kafka.producer();
    await producer.connect();

    const metricsPort = await freePort();
    metersFile = writeTestMeters();
    worker = new WorkerProcess(
      'pipeline',
      childEnv(prefix, 'prom-n1', { ORDO_METRICS_PORT: String(metricsPort), ORDO_METERS_FILE: metersFile, ORDO_ALLOWED_LATENESS_MS: String(LATENESS) }),
      'prom-worker',
    );
    // The ingest role beside it, for the dashboard's ingest panels: a few requests, one refused.
    const ingestMetricsPort = await freePort();
    const ingestPort = await freePort();
    ingest = new WorkerProcess(
      'ingest',
      childEnv(prefix, 'prom-ingest', { ORDO_METRICS_PORT: String(ingestMetricsPort), ORDO_INGEST_PORT: String(ingestPort), ORDO_INGEST_HOST: '127.0.0.1' }),
      'prom-ingest',
    );
    // The deliver role beside them, for the Delivery row: one SSE stream open at the tail while
    // the events flow, and one receiver session created, read and acknowledged.
    const deliverMetricsPort = await freePort();
    const deliverPort = await freePort();
    deliver = new WorkerProcess(
      'deliver',
      childEnv(prefix, 'prom-deliver', { ORDO_METRICS_PORT: String(deliverMetricsPort), ORDO_DELIVER_PORT: String(deliverPort), ORDO_DELIVER_HOST: '127.0.0.1' }),
      'prom-deliver',
    );
    prometheus = await PrometheusServer.start({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [RULES_FILE],
      scrape_configs: [
        { job_name: JOB, static_configs: [{ targets: [`127.0.0.1:${metricsPort}`] }] },
        { job_name: INGEST_JOB, static_configs: [{ targets: [`127.0.0.1:${ingestMetricsPort}`] }] },
        { job_name: DELIVER_JOB, static_configs: [{ targets: [`127.0.0.1:${deliverMetricsPort}`] }] },
      ],
    });
    await worker.waitFor((l) => l.msg === 'lifecycle' && l.to === 'running', 40_000);
    await ingest.waitFor((l) => l.msg === 'lifecycle' && l.to === 'running', 40_000);
    await until('the first scrape of the running ingest', 10_000, () => scalar(`ordo_lifecycle_state{job="${INGEST_JOB}", state="running"} == 1`));
    // Counters must be scraped at their starting value before they move, or rate() misses the move.
    await until('the first scrape of the running worker', 10_000, () => scalar(`ordo_lifecycle_state{job="${JOB}", state="running"} == 1`));
    await deliver.waitFor((l) => l.msg === 'stream source following' && l.stream === 'ordered', 60_000);
    await until('the first scrape of the running deliver', 10_000, () => scalar(`ordo_lifecycle_state{job="${DELIVER_JOB}", state="running"} == 1`));
    const sse = await fetch(`http://127.0.0.1:${deliverPort}/v1/streams/ordered/events`, { headers: { accept: 'text/event-stream' }, signal: stream.signal });
    expect(sse.status).toBe(200);
    void sse.body!.pipeTo(new WritableStream()).catch(() => undefined);
    await until('the open stream scraped', 10_000, () => scalar(`ordo_deliver_streams{job="${DELIVER_JOB}", stream="ordered"} == 1`));

    // Valid usage, ~2 % exact re-sends, ~1 % too late, ~0.5 % with a bad metered value,
    // plus undecodable bytes and upstream time contexts.
    const usage = makeUsageWorkload(encode, { count: 600, subjects: 40, now: Date.now(), latenessMs: LATENESS, spreadDays: 3, idPrefix: prefix });
    expect(usage.late.size).toBeGreaterThan(0);
    expect(usage.bad.size).toBeGreaterThan(0);
    const messages = [...usage.messages, ...timedEvents(encode), { key: 'garbage', value: Buffer.from('not avro') }];
    await produce(producer, input, messages);
    produced = messages.length;
    for (let i = 0; i < 5; i++) {
      const body = Array.from({ length: 4 }, (_, j) => ({ specversion: '1.0', id: `${prefix}-http-${i}-${j}`, source: 'prom-test', type: 'api.request', subject: `http-${j}`, data: { value: '1', dimensions: { region: 'r1', user: 'u1' } } }));
      if (i === 4) body.push({ specversion: '1.0', id: 'bad', source: 'prom-test', type: 'api.request', subject: 'http', data: { value: '1e3', dimensions: { region: 'r1', user: 'u1' } } });
      const res = await fetch(`http://127.0.0.1:${ingestPort}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(i === 4 ? 400 : 202);
      if (res.status === 202) produced += body.length;
    }

    await until(`${produced} input records processed`, 25_000, async () => {
      const processed = await scalar(`sum(ordo_events_in_total{job="${JOB}"})`);
      return processed !== undefined && processed >= produced ? processed : undefined;
    });
    const session = (await (await fetch(`http://127.0.0.1:${deliverPort}/v1/streams/ordered/sessions`, { method: 'POST', body: JSON.stringify({ from: 'earliest' }) })).json()) as { sessionId: string };
    const read = (await (await fetch(`http://127.0.0.1:${deliverPort}/v1/sessions/${session.sessionId}/records?max=10&waitMs=5000`)).json()) as { records: unknown[]; cursor: string };
    expect(read.records.length).toBeGreaterThan(0); // a read answers what its first fetch brought, up to max
    const ack = await fetch(`http://127.0.0.1:${deliverPort}/v1/sessions/${session.sessionId}/ack`, { method: 'POST', body: JSON.stringify({ cursor: read.cursor }) });
    expect(ack.status).toBe(200);
    await until('records delivered over SSE scraped', 10_000, () => scalar(`ordo_deliver_records_total{job="${DELIVER_JOB}", via="sse"} > 0`));
    await until('delivery delays at the tail scraped', 10_000, () => scalar(`sum(ordo_deliver_delay_seconds_count{job="${DELIVER_JOB}"}) > 0`));
    // The lag gauges report the owned partitions once their end offsets were fetched.
    await until('consumer lag of every partition', 10_000, async () => {
      const partitions = await scalar(`count(ordo_consumer_lag_records{group="${group}"})`);
      return partitions === PARTITIONS ? partitions : undefined;
    }).catch((error: unknown) => console.warn(String(error)));
    // A few more scrapes and rule evaluations after the last change.
    await sleep(3_000);
  });

  afterAll(async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ['prometheus', async () => prometheus?.stop()],
      ['worker', async () => worker?.stop(30_000)],
      ['ingest', async () => ingest?.stop(30_000)],
      ['stream', () => Promise.resolve(stream.abort())],
      ['deliver', async () => deliver?.stop(30_000)],
      ['producer', async () => producer?.disconnect()],
      ['topics', () => deleteTopicsWithPrefix(kafka, prefix)],
      ['meters file', () => Promise.resolve(metersFile && rmSync(dirname(metersFile), { recursive: true, force: true }))],
    ];
    for (const [name, step] of steps) await step().catch((error: unknown) => console.warn(`cleanup of ${name} failed: ${String(error)}`));
  });

  it('answers every dashboard query with data', async () => {
    const dashboard = loadDashboard();
    // $job as Grafana expands a multi-value selection of the three jobs.
    const values = { job: `(${JOB}|${INGEST_JOB}|${DELIVER_JOB})`, group, topic: input, __rate_interval: '1m', __interval: '5s', __range: '5m' };

    const failures: string[] = [];
    const nanOnly: string[] = [];
    for (const q of dashboardQueries(dashboard)) {
      const expr = substituteVariables(q.expr, values);
      const { status, result, error } = await prometheus!.query(expr);
      if (status !== 'success') failures.push(`${q.panel} [${q.refId}]: ${error}\n    ${expr}`);
      else if (result.length === 0) failures.push(`${q.panel} [${q.refId}]: no data\n    ${expr}`);
      else if (!result.some((s) => Number.isFinite(Number(s.value[1])))) nanOnly.push(`${q.panel} [${q.refId}]`);
    }
    for (const v of variableQueries(dashboard)) {
      const selector = substituteVariables(v.selector, values);
      const body = await prometheus!.api<string[]>(`label/${v.label}/values`, { 'match[]': selector });
      const expected = { job: JOB, group, topic: input }[v.name];
      if (body.status !== 'success') failures.push(`variable $${v.name}: ${body.error}`);
      else if (expected !== undefined && !(body.data ?? []).includes(expected)) failures.push(`variable $${v.name}: ${JSON.stringify(body.data)} lacks ${expected}\n    ${selector}`);
    }
    expect(failures, `dashboard queries without data:\n  ${failures.join('\n  ')}`).toEqual([]);
    // The workload exercises every panel, so each has at least one real number, not only NaN
    // (a quantile over a window without observations).
    expect(nanOnly, `dashboard queries with only NaN values:\n  ${nanOnly.join('\n  ')}`).toEqual([]);
    expect(dashboardQueries(dashboard).filter((q) => metricNames(q.expr).some((m) => m.startsWith('ordo_deliver_'))).length, 'Delivery row queries').toBeGreaterThanOrEqual(12);
  });

  it('evaluates every alert rule without error, and the alerts this workload trips are active', async () => {
    const expected = loadRules().flatMap((g) => g.rules.map((r) => ('alert' in r ? r.alert : r.record)));
    const started = Date.now();
    // Each rule evaluated once since the data arrived.
    const rules = await until('every rule evaluated', 15_000, async () => {
      const all = await prometheus!.rules();
      return all.length === expected.length && all.every((r) => Date.parse(r.lastEvaluation) > started - 2_000) ? all : undefined;
    });
    expect(rules.map((r) => r.name).sort()).toEqual([...expected].sort());
    const unhealthy = rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
    expect(unhealthy, unhealthy.join('\n')).toEqual([]);

    for (const rule of alertRules()) {
      const { status, error } = await prometheus!.query(rule.expr);
      expect(status, `${rule.alert}: ${error}`).toBe('success');
    }

    // Dead letters (bad values, undecodable bytes, clock skew), a rejected time context and a
    // duplicate order key happened: those alerts are pending (their `for` is 1 m) or firing.
    const active = ['OrdoDeadLetters', 'OrdoClockSkewRejections', 'OrdoOrderingViolations'];
    await until(`${active.join(', ')} active`, 15_000, async () => {
      const now = await prometheus!.rules();
      return active.every((name) => now.find((r) => r.name === name)?.state !== 'inactive') ? true : undefined;
    }).catch(() => undefined);
    const states = new Map((await prometheus!.rules()).map((r) => [r.name, r.state]));
    for (const name of active) expect(states.get(name), `${name} should be active`).not.toBe('inactive');
    const deadLetters = (await prometheus!.rules()).find((r) => r.name === 'OrdoDeadLetters')?.alerts ?? [];
    expect(new Set(deadLetters.map((a) => a.labels.reason))).toEqual(new Set(['invalid-value', 'undecodable', 'clock-skew']));
    // A healthy, caught-up worker: none of these. The deliver alerts stay quiet although the
    // pipeline and the ingest export every ordo_deliver_* gauge at 0 (live nodes included).
    const quiet = ['OrdoTargetDown', 'OrdoJobDown', 'OrdoTargetsAbsent', 'OrdoWorkerNotRunning', 'OrdoStateRestoreSlow', 'OrdoConsumerLagHigh', 'OrdoConsumerLagCritical', 'OrdoIngestFailing'];
    quiet.push('OrdoDeliverOverflowing', 'OrdoDeliverAtCapacity', 'OrdoDeliverForwardsFailing', 'OrdoDeliverNodesUnseen', 'OrdoDeliverTakeoversFrequent');
    for (const name of quiet) {
      expect(states.get(name), `${name} should be inactive`).toBe('inactive');
    }
  });
});
