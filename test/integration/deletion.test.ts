import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import type { Worker } from '../../src/engine/worker.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { createTopics, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { sleep } from '../support/process.js';

const kafka = testKafka();
const prefix = uniqueName('deletion');
let producer: Producer;
let api: ApiRole | undefined;
let worker: Worker | undefined;

/** The subject of an aggregate key (`[meter, subject, groupBy, size, start]`). */
const subjectOf = (key: string): string => (JSON.parse(key) as unknown[])[1] as string;
const isAcme = (subject: string): boolean => subject === 'acme' || subject.startsWith('acme/');

/** The latest value per key of a compacted topic, read to its end (null: a tombstone). */
async function latest(topic: string, atLeast: number): Promise<Map<string, Buffer | null>> {
  const records = await readAll(kafka, topic, atLeast, { timeoutMs: 60_000, settleMs: 1_500 });
  const out = new Map<string, Buffer | null>();
  for (const r of records) out.set(r.key!.toString(), r.value);
  return out;
}

describe('subject deletion through the real pipeline and api', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 2);
  });

  afterAll(async () => {
    await api?.stop();
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('one write answers 202, the replica answers 410 at once, the pipeline tombstones the aggregates, later events are dead-lettered', async () => {
    const config = testConfig(prefix, { ORDO_METERS_FILE: writeTestMeters(), ORDO_DELETION_SWEEP_BATCH: '3', ORDO_REORDER_WINDOW_MS: '200' });
    const encode = await usageEventEncoder(config.topics.input);
    const now = Date.now();
    let n = 0;
    const event = (subject: string, at = now - 60_000): { key: string; value: Buffer } => {
      const e: UsageEvent = { id: `e-${++n}`, source: 'test', type: 'api.request', subject, time: at - n, value: String(n), dimensions: { region: n % 2 === 0 ? 'eu' : 'us', user: `u${n % 3}` } };
      return { key: subject, value: encode(e) };
    };
    const subjects = ['acme', 'acme/team-1', 'acme/team-2', 'beta', 'acmecorp'];
    await produce(producer, config.topics.input, subjects.flatMap((s) => Array.from({ length: 8 }, () => event(s))));
    worker = (await startPipeline(config)).worker;
    await readAll(kafka, config.topics.ordered, 40, { timeoutMs: 120_000, settleMs: 500 });
    const before = await latest(config.topics.aggregates, 1);
    const acmeKeys = [...before.keys()].filter((k) => isAcme(subjectOf(k)));
    const otherKeys = [...before.keys()].filter((k) => !isAcme(subjectOf(k)));
    expect(acmeKeys.length).toBeGreaterThan(20);
    expect(otherKeys.length).toBeGreaterThan(10);

    api = await startApiRole({ ...config, apiPort: 0 }, { logger: noopLogger, metrics: new OrdoMetrics() });
    await api.caughtUp();
    const base = `http://127.0.0.1:${api.port}`;
    const day = Math.floor(now / 86_400_000) * 86_400_000; // whole days: the windows a query tiles
    const window = `from=${new Date(day - 86_400_000).toISOString()}&to=${new Date(day + 86_400_000).toISOString()}`;
    const usage = (query: string) => fetch(`${base}/v1/meters/api-spend/usage?${window}&${query}`);
    expect((await usage('subject=acme')).status).toBe(200);

    // DELETE: one record, 202 with an id; the replica that took it answers 410 at once.
    const deleted = await fetch(`${base}/v1/subjects/acme?children=true`, { method: 'DELETE' });
    expect(deleted.status).toBe(202);
    const body = (await deleted.json()) as { id: string; subject: string; children: boolean; requestedAt: string };
    expect(body).toMatchObject({ subject: 'acme', children: true });
    expect(body.id).toMatch(/^del-[0-9a-f]{32}$/);
    for (const subject of ['acme', 'acme/team-1', 'acme/team-9']) {
      const gone = await usage(`subject=${encodeURIComponent(subject)}`);
      expect(gone.status).toBe(410);
      expect(((await gone.json()) as { error: { kind: string } }).error.kind).toBe('subject-deleted');
    }
    expect((await usage('subject=beta')).status).toBe(200);
    expect((await usage('subject=acmecorp')).status).toBe(200);
    const across = (await (await usage('groupBy=subject')).json()) as { data: { subject: string }[] };
    expect(new Set(across.data.map((r) => r.subject))).toEqual(new Set(['beta', 'acmecorp']));

    // A repeat, and concurrent deletes of one subject: the same id, never a 5xx.
    const again = await fetch(`${base}/v1/subjects/acme?children=true`, { method: 'DELETE' });
    expect(again.status).toBe(202);
    expect(((await again.json()) as { id: string }).id).toBe(body.id);
    const both = await Promise.all([1, 2].map(() => fetch(`${base}/v1/subjects/gamma`, { method: 'DELETE' })));
    expect(both.map((r) => r.status)).toEqual([202, 202]);
    const ids = await Promise.all(both.map(async (r) => ((await r.json()) as { id: string }).id));
    expect(ids[0]).toBe(ids[1]);

    // Bad input: 4xx with a kind, never 5xx.
    for (const [path, status] of [
      ['/v1/subjects/a*b', 400],
      ['/v1/subjects/%20acme', 400],
      ['/v1/subjects/acme?children=maybe', 400],
      ['/v1/subjects/acme?other=1', 400],
      [`/v1/subjects/${'x'.repeat(1_100)}`, 400],
      ['/v1/subjects/%E0%A4%A', 400],
      ['/v1/subjects/', 404],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method: 'DELETE' });
      expect([path, res.status]).toEqual([path, status]);
      expect(((await res.json()) as { error: { kind: string } }).error.kind).toBeTypeOf('string');
    }
    expect((await fetch(`${base}/v1/deletions/no-such-id`)).status).toBe(404);

    // The sweep: every task of the input topic marks it swept; GET /v1/deletions/{id} says complete.
    let status: { status: string; sweep: { partitionsSwept: number; partitions: number; removed: number } } | undefined;
    for (let i = 0; i < 240; i++) {
      status = (await (await fetch(`${base}/v1/deletions/${body.id}`)).json()) as typeof status;
      if (status?.status === 'complete') break;
      await sleep(250);
    }
    expect(status).toMatchObject({ status: 'complete', sweep: { partitionsSwept: 2, partitions: 2 } });
    expect(status!.sweep.removed).toBeGreaterThanOrEqual(acmeKeys.length);

    // The aggregates topic: every acme* aggregate tombstoned, the others untouched.
    const after = await latest(config.topics.aggregates, before.size + acmeKeys.length);
    for (const key of acmeKeys) expect(after.get(key)).toBeNull();
    for (const key of otherKeys) expect(after.get(key)).toEqual(before.get(key));

    // Later events of a deleted subject (or child) go to the DLQ; others are counted.
    await produce(producer, config.topics.input, [event('acme/team-3', Date.now()), event('acme', Date.now()), event('beta', Date.now())]);
    const dlq = await readAll(kafka, config.topics.dlq, 2, { timeoutMs: 60_000, settleMs: 1_000 });
    expect(dlq.map((r) => [r.key!.toString(), header(r, 'ordo-dlq-reason')]).sort()).toEqual([
      ['acme', 'subject-deleted'],
      ['acme/team-3', 'subject-deleted'],
    ]);
    const ordered = await readAll(kafka, config.topics.ordered, 41, { timeoutMs: 60_000, settleMs: 1_000 });
    expect(ordered.filter((r) => r.key!.toString() === 'beta')).toHaveLength(9);
    const final = await latest(config.topics.aggregates, 1);
    expect([...final].filter(([k, v]) => v !== null && isAcme(subjectOf(k)))).toEqual([]);
  }, 300_000);
});
