import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { createTopics, deleteTopicsWithPrefix, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { sleep } from '../support/process.js';
import { tempDirs } from '../support/temp-dirs.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { startPipeline, testConfig } from '../support/worker.js';

const kafka = testKafka();
const HOUR = 3_600_000;
const STALL_MS = 2_000;
const prefix = uniqueName('receipts');
const tempDir = tempDirs('ordo-receipts-it-');
let producer: Producer;
let worker: Worker | undefined;
let api: ApiRole | undefined;
let encode: (event: UsageEvent) => Buffer;
const TRACE_DONE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACE_STUCK = '0af7651916cd43dd8448eb211c80319c';
const traceparent = (trace: string): string => `00-${trace}-00f067aa0ba902b7-01`;

function event(source: string, id: string, over: Partial<UsageEvent> = {}): UsageEvent {
  return { source, id, type: 'api.request', subject: 'acme', time: Date.now(), value: '1.5', dimensions: { user: 'u1', region: 'eu-west-1' }, ...over };
}

async function send(events: { event: UsageEvent | Buffer; trace?: string }[]): Promise<void> {
  await producer.send({
    topic: `${prefix}-in`,
    acks: -1,
    messages: events.map(({ event: e, trace }) => ({
      key: Buffer.isBuffer(e) ? 'junk' : e.subject,
      value: Buffer.isBuffer(e) ? e : encode(e),
      headers: trace === undefined ? {} : { traceparent: traceparent(trace) },
    })),
  });
}

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${api!.port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function indexed(metrics: OrdoMetrics, outcome: string): Promise<number> {
  const values = (await metrics.registry.getSingleMetric('ordo_receipts_indexed_total')?.get())?.values ?? [];
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('receipts and trails through the real pipeline and api role', () => {
  const receiptsDir = tempDir();
  const config = testConfig(prefix, {
    ORDO_METERS_FILE: writeTestMeters(),
    ORDO_ALLOWED_LATENESS_MS: String(HOUR),
    ORDO_RECEIPTS_DIR: receiptsDir,
    ORDO_TRAIL_TERMINAL_TYPES: 'job.done',
    ORDO_TRAIL_STALL_MS: String(STALL_MS),
  });

  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 2);
    encode = await usageEventEncoder(`${prefix}-in`);
  });

  afterAll(async () => {
    await api?.stop();
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('answers accepted, duplicate, dead-lettered, late and not-seen; trails completed and stalled; resumes after a restart', async () => {
    const now = Date.now();
    await send([
      { event: event('svc-a', 'acc-1') },
      { event: event('svc-a', 'dup-1') },
      { event: event('svc-a', 'dup-1') },
      { event: event('svc-a', 'bad-1', { value: 'NaN' }) },
      { event: event('svc-a', 'late-1', { time: now - 2 * HOUR }) },
      { event: Buffer.from('not an event at all') },
      { event: event('svc-a', 'job-1', { type: 'job.start', time: now - 1_000 }), trace: TRACE_DONE },
      { event: event('svc-b', 'job-2', { type: 'job.done', subject: 'acme/team', time: now }), trace: TRACE_DONE },
      { event: event('svc-a', 'stuck-1', { type: 'job.start' }), trace: TRACE_STUCK },
    ]);
    ({ worker } = await startPipeline(config));
    // acc-1, dup-1, job-1, job-2, stuck-1 accepted; then a re-send of dup-1 in a later transaction.
    await readAll(kafka, config.topics.ordered, 5, { timeoutMs: 60_000, settleMs: 500 });
    await send([{ event: event('svc-a', 'dup-1') }]);
    await readAll(kafka, config.topics.duplicates, 2, { timeoutMs: 30_000, settleMs: 500 });

    const metrics = new OrdoMetrics();
    api = await startApiRole({ ...config, apiPort: 0 }, { logger: noopLogger, metrics });
    await api.receipts.caughtUp();

    const accepted = await get('/v1/events/svc-a/acc-1');
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ source: 'svc-a', id: 'acc-1', status: 'accepted', subject: 'acme', duplicates: null, deadLetters: [] });
    const view = accepted.body.accepted as { seq: string; serviceTime: string; partition: number; offset: string; aggregates: string[]; orderKey: { time: string } };
    expect(view.seq).toMatch(/^\d+$/);
    expect(view.serviceTime).toMatch(/^[0-9a-f]{16}$/);
    expect(view.aggregates.some((k) => k.startsWith('["api-spend","acme"'))).toBe(true);
    // The position is where the event really is on the ordered topic.
    const ordered = await readAll(kafka, config.topics.ordered, 5, { settleMs: 200 });
    const copy = ordered.find((r) => r.partition === view.partition && r.offset === view.offset);
    expect(copy).toBeDefined();

    const dup = await get('/v1/events/svc-a/dup-1');
    expect(dup.body).toMatchObject({ status: 'accepted', duplicates: { count: 2 } });
    const duplicates = dup.body.duplicates as { drops: { offset: string }[]; acceptedCopy: { partition: number; offset: string } };
    expect(duplicates.acceptedCopy).toEqual({ partition: (dup.body.accepted as { partition: number }).partition, offset: (dup.body.accepted as { offset: string }).offset });
    expect(new Set(duplicates.drops.map((d) => d.offset)).size).toBe(2);

    const bad = await get('/v1/events/svc-a/bad-1');
    expect(bad.body).toMatchObject({ status: 'dead-lettered', accepted: null, deadLetters: [{ reason: 'invalid-value' }] });
    expect((bad.body.deadLetters as { error: string }[])[0]!.error).toContain('NaN');

    const late = await get('/v1/events/svc-a/late-1');
    expect(late.body).toMatchObject({ status: 'late', late: [{ reason: 'too-late' }] });

    const unseen = await get('/v1/events/svc-a/never-sent');
    expect(unseen.status).toBe(404);
    const error = unseen.body.error as { kind: string; status: string; freshness: { caughtUp: boolean; retentionMs: number; retentionHorizon: string; topics: Record<string, { lagRecords: number }> } };
    expect(error).toMatchObject({ kind: 'not-seen', status: 'not-seen', freshness: { caughtUp: true, lagRecords: 0, retentionMs: config.receipts.retentionMs } });
    expect(Object.keys(error.freshness.topics).sort()).toEqual(['dlq', 'duplicates', 'late', 'ordered']);
    expect(Date.parse(error.freshness.retentionHorizon)).toBeLessThan(Date.now() - config.receipts.retentionMs + 60_000);
    expect((await get(`/v1/events/svc-a/${'x'.repeat(1_100)}`)).status).toBe(400);
    expect(await indexed(metrics, 'dead-lettered')).toBe(2); // bad-1 and the undecodable record (by DLQ position)

    const done = await get(`/v1/trails/${TRACE_DONE}`);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: TRACE_DONE, status: 'completed', counts: { total: 2, bySource: { 'svc-a': 1, 'svc-b': 1 }, byOutcome: { accepted: 2 } } });
    expect((done.body.events as { id: string }[]).map((e) => e.id)).toEqual(['job-1', 'job-2']);
    expect(done.body.durationMs as number).toBeGreaterThanOrEqual(0);
    const durations = (await metrics.registry.getSingleMetric('ordo_trail_duration_seconds')?.get())?.values ?? [];
    expect(durations.find((v) => (v as { metricName?: string }).metricName === 'ordo_trail_duration_seconds_count')?.value).toBe(1);

    // The pipeline created the duplicates topic with the receipts' retention.
    const admin = kafka.admin();
    await admin.connect();
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: config.topics.duplicates, configNames: ['retention.ms'] }] });
    await admin.disconnect();
    expect(described.resources[0]?.configEntries.find((c) => c.configName === 'retention.ms')?.configValue).toBe(String(config.receipts.retentionMs));

    // No event for STALL_MS: stalled, on the trail and in the gauge.
    for (let i = 0; ; i++) {
      const stuck = await get(`/v1/trails/${TRACE_STUCK}`);
      const gauge = (await metrics.registry.getSingleMetric('ordo_trails_stalled')?.get())?.values[0]?.value;
      if (stuck.body.status === 'stalled' && gauge === 1) break;
      expect(['open', 'stalled']).toContain(stuck.body.status);
      if (i > 40) throw new Error(`trail not stalled: ${JSON.stringify(stuck.body)}, gauge ${gauge}`);
      await sleep(250);
    }
    expect((await get('/v1/trails/no-such-trail')).status).toBe(404);
    expect((await get(`/v1/trails/${TRACE_DONE}?limit=0`)).status).toBe(400);

    // Restart: the index resumes from its lmdb checkpoint, reading only what came after.
    await api.stop();
    api = undefined;
    await send([{ event: event('svc-c', 'after-restart') }]);
    await readAll(kafka, config.topics.ordered, 6, { timeoutMs: 30_000, settleMs: 200 });
    const again = new OrdoMetrics();
    api = await startApiRole({ ...config, apiPort: 0 }, { logger: noopLogger, metrics: again });
    await api.receipts.caughtUp();
    expect(api.receipts.index.rebuilt).toBe(false);
    expect(await indexed(again, 'accepted')).toBe(1);
    expect((await get('/v1/events/svc-c/after-restart')).body).toMatchObject({ status: 'accepted' });
    expect((await get('/v1/events/svc-a/acc-1')).body).toMatchObject({ status: 'accepted' });
  }, 180_000);
});
