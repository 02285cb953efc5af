import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { encodeConsistencyToken } from '../../src/model/consistency-token.js';
import { decodePositionMetadata } from '../../src/model/position-metadata.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import { startIngestRole } from '../../src/roles/ingest.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { sleep } from '../support/process.js';
import { utcWindow } from '../support/usage-oracle.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { startPipeline, testConfig } from '../support/worker.js';

const kafka = testKafka();
const DAY = 86_400_000;
const TRIALS = 200;
const CONCURRENCY = 8;
const WAIT_MS = 3_000;
const prefix = uniqueName('ryw');
const config = testConfig(prefix, { ORDO_METERS_FILE: writeTestMeters(), ORDO_API_CONSISTENCY_WAIT_MS: String(WAIT_MS) });
let producer: Producer;
let worker: Worker | undefined;
let api: ApiRole | undefined;
let encode: (event: UsageEvent) => Buffer;
const apiMetrics = new OrdoMetrics();

/** Queries answered after a wait, by outcome (ordo_api_consistency_wait_seconds). */
async function waits(outcome: 'consistent' | 'timeout'): Promise<number> {
  const values = (await apiMetrics.registry.getSingleMetric('ordo_api_consistency_wait_seconds')?.get())?.values ?? [];
  return values.find((v) => (v as { metricName?: string }).metricName === 'ordo_api_consistency_wait_seconds_count' && v.labels.outcome === outcome)?.value ?? 0;
}

interface Usage {
  totals: { value: string; count: number }[];
  consistentWith?: string[];
}

/** Produces one event straight to the input topic (no ingest role) and builds its token from the record metadata. */
async function send(subject: string, value: string, raw?: Buffer): Promise<string> {
  const event: UsageEvent = { id: `${subject}-1`, source: 'ryw-test', type: 'api.request', subject, time: Date.now(), value, dimensions: { user: 'user-1', region: 'eu-west-1' } };
  const [meta] = await producer.send({ topic: config.topics.input, messages: [{ key: subject, value: raw ?? encode(event) }], acks: -1 });
  return encodeConsistencyToken({ topic: meta!.topicName, partition: meta!.partition, offset: meta!.baseOffset! });
}

function usageUrl(subject: string, tokens: string[]): string {
  const now = Date.now();
  const params = new URLSearchParams({ subject, from: new Date(utcWindow(now - DAY, 'DAY').start).toISOString(), to: new Date(utcWindow(now + DAY, 'DAY').end).toISOString() });
  for (const token of tokens) params.append('consistentWith', token);
  return `http://127.0.0.1:${api!.port}/v1/meters/api-spend/usage?${params.toString()}`;
}

async function query(subject: string, tokens: string[]): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
  const res = await fetch(usageUrl(subject, tokens));
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
}

describe('read-your-writes: a usage query with the consistency token of an event always includes it', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [config.topics.input], 3);
    encode = await usageEventEncoder(config.topics.input);
    // The default reorder window (1 s): events are held in the reorder buffer past their batch.
    expect(config.reorderWindowMs).toBe(1_000);
    ({ worker } = await startPipeline(config));
    api = await startApiRole({ ...config, apiPort: 0, apiHost: '127.0.0.1' }, { logger: noopLogger, metrics: apiMetrics });
    await api.caughtUp();
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it(`${TRIALS} produce-then-query trials: each answer counts its event exactly once`, async () => {
    const latencies: number[] = [];
    let missedWithoutToken = 0;
    const failures: string[] = [];
    let next = 0;
    const trial = async (i: number): Promise<void> => {
      const subject = `ryw-${i}`;
      const value = `${i}.25`;
      const token = await send(subject, value);
      // The same query without the token, at once: what a client would see without read-your-writes.
      const plain = (await query(subject, [])).body as unknown as Usage;
      if (plain.totals.length === 0) missedWithoutToken += 1;
      const started = Date.now();
      const answer = await query(subject, [token]);
      latencies.push(Date.now() - started);
      const usage = answer.body as unknown as Usage;
      if (answer.status !== 200 || usage.totals.length !== 1 || usage.totals[0]!.value !== value || usage.totals[0]!.count !== 1 || usage.consistentWith?.[0] !== token) {
        failures.push(`trial ${i}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
      }
    };
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < TRIALS; i = next++) await trial(i);
      }),
    );
    expect(failures).toEqual([]);
    expect(await waits('consistent')).toBe(TRIALS);
    // Without the token the event was (nearly always) not in the answer yet: the wait is what makes it exact.
    expect(missedWithoutToken).toBeGreaterThan(TRIALS / 2);
    // Each task committed, with its position, where its aggregates partition ended: at most the end offset.
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId: config.groupId, topics: [config.topics.input] });
      const ends = new Map((await admin.fetchTopicOffsets(config.topics.aggregates)).map((o) => [o.partition, BigInt(o.high)]));
      expect(committed!.partitions).toHaveLength(3);
      for (const p of committed!.partitions) {
        const written = decodePositionMetadata(p.metadata)?.ends.get(config.topics.aggregates);
        expect(written, `partition ${p.partition}: ${p.metadata}`).toBeGreaterThan(0n);
        expect(written).toBeLessThanOrEqual(ends.get(p.partition)!);
      }
    } finally {
      await admin.disconnect();
    }
    latencies.sort((a, b) => a - b);
    console.info(`read-your-writes: ${TRIALS} trials, ${missedWithoutToken} missed without the token; wait p50 ${latencies[TRIALS / 2]} ms, p99 ${latencies[Math.floor(TRIALS * 0.99)]} ms`);
  }, 120_000);

  it('a record the pipeline dead-letters does not hold the query up: its token is answered', async () => {
    const token = await send('ryw-bad', '1', Buffer.from('not an Avro record'));
    const answer = await query('ryw-bad', [token]);
    expect(answer.status).toBe(200);
    expect((answer.body as unknown as Usage).totals).toEqual([]);
  }, 30_000);

  it('end to end through the ingest role: the tokens of a posted batch give answers that count it exactly', async () => {
    const ingest = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics() });
    try {
      const events = Array.from({ length: 20 }, (_, i) => ({
        specversion: '1.0',
        id: `http-${i}`,
        source: 'ryw-http',
        type: 'api.request',
        subject: `ryw-http-${i % 4}`,
        data: { value: `${i}.5`, dimensions: { user: `u-${i}`, region: 'eu-west-1' } },
      }));
      const posted = await fetch(`http://127.0.0.1:${ingest.port}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(events),
      });
      expect(posted.status).toBe(202);
      const { events: accepted } = (await posted.json()) as { events: { id: string; token: string }[] };
      expect(accepted).toHaveLength(events.length);
      for (let s = 0; s < 4; s++) {
        const subject = `ryw-http-${s}`;
        const mine = events.filter((e) => e.subject === subject);
        const tokens = accepted.filter((a) => mine.some((e) => e.id === a.id)).map((a) => a.token);
        const answer = await query(subject, tokens);
        expect(answer.status).toBe(200);
        const sum = mine.reduce((total, e) => total + Number(e.data.value), 0);
        expect((answer.body as unknown as Usage).totals).toEqual([expect.objectContaining({ value: String(sum), count: mine.length })]);
      }
    } finally {
      await ingest.stop();
    }
  }, 60_000);

  it('with the pipeline stopped the query answers 503 not-yet-consistent within the bound, and succeeds once it runs again', async () => {
    await worker!.stop();
    worker = undefined;
    const token = await send('ryw-stopped', '7.5');
    const started = Date.now();
    const refused = await query('ryw-stopped', [token]);
    const waited = Date.now() - started;
    expect(refused.status).toBe(503);
    expect(refused.retryAfter).toBe('1');
    expect(waited).toBeGreaterThanOrEqual(WAIT_MS - 50);
    expect(waited).toBeLessThan(WAIT_MS + 2_000);
    const error = (refused.body as { error: { kind: string; freshness: unknown; awaiting: { waitingFor: string; offset: string }[] } }).error;
    expect(error.kind).toBe('not-yet-consistent');
    expect(error.freshness).toMatchObject({ partitions: expect.any(Array) });
    expect(error.awaiting).toEqual([expect.objectContaining({ waitingFor: 'pipeline' })]);
    expect(await waits('timeout')).toBe(1);

    ({ worker } = await startPipeline(config));
    const deadline = Date.now() + 60_000;
    let answer = await query('ryw-stopped', [token]);
    while (answer.status === 503 && Date.now() < deadline) {
      await sleep(Number(answer.retryAfter ?? '1') * 1000);
      answer = await query('ryw-stopped', [token]);
    }
    expect(answer.status).toBe(200);
    expect((answer.body as unknown as Usage).totals).toEqual([expect.objectContaining({ value: '7.5', count: 1 })]);
  }, 90_000);
});
