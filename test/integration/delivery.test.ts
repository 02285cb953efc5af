import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type MergeWorker } from '../../src/engine/merge-worker.js';
import { createMergeWorker } from '../../src/roles/merge.js';
import { type ReadRecord, createTopics, deleteTopicsWithPrefix, header, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { sleep } from '../support/process.js';
import { type RunningRole, spawnRole, waitAllReady } from '../support/roles.js';
import { readSse } from '../support/sse-client.js';
import { makeWorkload, producePaced } from '../support/workload.js';
import { startPipeline, testConfig } from '../support/worker.js';

// Delivery end to end (issue 13), through real processes: the pipeline and the merge write
// the ordered and global topics; two `ordo deliver` replicas (A and B) serve them over HTTP.
// Every check compares what a client received with the topic itself, read by kafkajs.

const kafka = testKafka();
const prefix = uniqueName('it-deliver');
const SEEDED = 1_200;
const LIVE = 600;
const SUBJECTS = 6;
const TTL_MS = 4_000;
let worker: Worker | undefined;
let merge: MergeWorker | undefined;
let producer: Producer | undefined;
const replicas: Record<string, RunningRole> = {};
const config = testConfig(prefix, { ORDO_REORDER_WINDOW_MS: '100', ORDO_WATERMARK_INTERVAL_MS: '100' });

function deliverEnv(node: string): Record<string, string> {
  return {
    ORDO_NODE_ID: node,
    // A small tail, so resumes also go through catch-up readers.
    ORDO_DELIVER_TAIL_RECORDS: '100',
    ORDO_DELIVER_HEARTBEAT_MS: '500',
    ORDO_DELIVER_NODE_HEARTBEAT_MS: '500',
    ORDO_DELIVER_NODE_TTL_MS: String(TTL_MS),
    ORDO_DELIVER_FORWARD_TIMEOUT_MS: '2000',
  };
}

async function startReplica(name: string, port?: number): Promise<RunningRole> {
  const role = await spawnRole('deliver', prefix, name, { ...deliverEnv(name), ...(port === undefined ? {} : { ORDO_DELIVER_PORT: String(port) }) });
  replicas[name] = role;
  await waitAllReady([role], 90_000);
  return role;
}

function base(name: string): string {
  return `http://127.0.0.1:${replicas[name]!.process.env.ORDO_DELIVER_PORT}`;
}

interface Delivered {
  offset: string;
  partition: number;
  key: string | null;
  cursor: string;
  headers: Record<string, string>;
}

async function request(name: string, method: string, path: string, body?: unknown): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(`${base(name)}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

beforeAll(async () => {
  await createTopics(kafka, [config.topics.input], 3);
  ({ worker } = await startPipeline(config));
  merge = createMergeWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() });
  await merge.start();
  const encode = await usageEventEncoder(config.topics.input);
  producer = kafka.producer();
  await producer.connect();
  await producePaced(producer, config.topics.input, makeWorkload(encode, SEEDED, SUBJECTS).messages, 500);
  await readAll(kafka, config.topics.global, SEEDED, { timeoutMs: 120_000, settleMs: 0 });
  await Promise.all([startReplica('deliver-a'), startReplica('deliver-b')]);
}, 240_000);

afterAll(async () => {
  for (const role of Object.values(replicas)) await role.process.stop().catch(() => undefined);
  await producer?.disconnect();
  await merge?.stop();
  await worker?.stop();
  await deleteTopicsWithPrefix(kafka, prefix);
}, 120_000);

describe('delivery, end to end', () => {
  it('an SSE client that reconnects five times, alternating between two replicas, receives every global record exactly once, in ordo-global-seq order', async () => {
    // Live traffic while the client reconnects.
    const encode = await usageEventEncoder(config.topics.input);
    const live = makeWorkload((e) => encode({ ...e, id: `live-${e.id}` }), LIVE, SUBJECTS);
    const producing = producePaced(producer!, config.topics.input, live.messages, 4_000, 50);
    const received: Delivered[] = [];
    let last: string | undefined;
    for (let connection = 0; connection < 6; connection++) {
      const name = connection % 2 === 0 ? 'deliver-a' : 'deliver-b';
      const take = connection < 5 ? 150 + connection * 37 : SEEDED + LIVE - received.length;
      let got = 0;
      const result = await readSse(`${base(name)}/v1/streams/global/events${last === undefined ? '?from=earliest' : ''}`, {
        headers: last === undefined ? {} : { 'last-event-id': last },
        timeoutMs: 60_000,
        onEvent: (event) => {
          if (event.event !== 'record') return true;
          const record = JSON.parse(event.data) as Delivered;
          expect(record.cursor).toBe(event.id);
          received.push(record);
          last = event.id;
          return ++got < take;
        },
      });
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      expect(result.ended, `connection ${connection} to ${name}`).toBe('client');
    }
    await producing;
    const truth = await readAll(kafka, config.topics.global, SEEDED + LIVE, { timeoutMs: 60_000, settleMs: 0 });
    expect(received.map((r) => r.offset)).toEqual(truth.map((r) => r.offset));
    const seqs = received.map((r) => Number(r.headers['ordo-global-seq']));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(received.every((r) => /^g\.\d+\.\d+$/.test(r.cursor))).toBe(true);
  }, 180_000);

  it('a stream filtered to one subject shows its gapless ordo-seq, with s. cursors', async () => {
    const truth = (await readAll(kafka, config.topics.ordered, SEEDED + LIVE, { timeoutMs: 60_000, settleMs: 0 })).filter((r) => r.key?.toString() === 'cust-2');
    expect(truth.length).toBeGreaterThan(100);
    const received: Delivered[] = [];
    const result = await readSse(`${base('deliver-b')}/v1/streams/ordered/events?subject=cust-2&from=earliest`, {
      timeoutMs: 60_000,
      onEvent: (event) => {
        if (event.event === 'record') received.push(JSON.parse(event.data) as Delivered);
        return received.length < truth.length;
      },
    });
    expect(result.ended).toBe('client');
    expect(received.map((r) => r.key)).toEqual(truth.map(() => 'cust-2'));
    expect(received.map((r) => Number(r.headers['ordo-seq']))).toEqual(truth.map((_, i) => i + 1));
    expect(received.map((r) => r.offset)).toEqual(truth.map((r: ReadRecord) => r.offset));
    expect(received.every((r) => /^s\.\d+\.\d+\.\d+$/.test(r.cursor))).toBe(true);
    expect(received.map((r) => Number(r.cursor.split('.')[1]))).toEqual(truth.map((r) => Number(header(r, 'ordo-seq'))));
  }, 120_000);

  it('a pull client that drops every third response receives every record exactly once, in order', async () => {
    const created = await request('deliver-a', 'POST', '/v1/streams/global/sessions', { from: 'earliest' });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const id = created.json.sessionId as string;
    const received: Delivered[] = [];
    for (let call = 1; received.length < SEEDED + LIVE; call++) {
      const read = await request(call % 2 === 0 ? 'deliver-a' : 'deliver-b', 'GET', `/v1/sessions/${id}/records?max=97&waitMs=2000`);
      expect(read.status, JSON.stringify(read.json)).toBe(200);
      if (call % 3 === 0) continue; // the response is lost: no processing, no ack
      const records = read.json.records as Delivered[];
      received.push(...records);
      if (records.length > 0) {
        const ack = await request('deliver-b', 'POST', `/v1/sessions/${id}/ack`, { cursor: records[records.length - 1]!.cursor });
        expect(ack.status, JSON.stringify(ack.json)).toBe(200);
      }
      expect(call).toBeLessThan(200);
    }
    const truth = await readAll(kafka, config.topics.global, SEEDED + LIVE, { timeoutMs: 60_000, settleMs: 0 });
    expect(received.map((r) => r.offset)).toEqual(truth.map((r) => r.offset));
  }, 180_000);

  it('a session lives on its owner: B forwards to A; A killed, B takes over within the TTL and nothing acked is lost or repeated; A back with the same node id does not serve it', async () => {
    const created = await request('deliver-a', 'POST', '/v1/streams/ordered/sessions', { filter: { subjects: ['cust-1', 'cust-4'] }, from: 'earliest' });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const id = created.json.sessionId as string;
    const truth = (await readAll(kafka, config.topics.ordered, SEEDED + LIVE, { timeoutMs: 60_000, settleMs: 0 })).filter((r) => ['cust-1', 'cust-4'].includes(r.key?.toString() ?? ''));
    const received: Delivered[] = [];
    const readAndAck = async (name: string): Promise<Delivered[]> => {
      const read = await request(name, 'GET', `/v1/sessions/${id}/records?max=40`);
      expect(read.status, JSON.stringify(read.json)).toBe(200);
      const records = read.json.records as Delivered[];
      const ack = await request(name, 'POST', `/v1/sessions/${id}/ack`, { cursor: read.json.cursor });
      expect(ack.status, JSON.stringify(ack.json)).toBe(200);
      received.push(...records);
      return records;
    };
    // Through B, served by A.
    const viaB = await request('deliver-b', 'GET', `/v1/sessions/${id}/records?max=40`);
    expect(viaB.status).toBe(200);
    expect(viaB.headers.get('ordo-served-by')).toBe('deliver-a');
    expect(viaB.headers.get('ordo-forwarded-by')).toBe('deliver-b');
    received.push(...(viaB.json.records as Delivered[]));
    expect((await request('deliver-b', 'POST', `/v1/sessions/${id}/ack`, { cursor: viaB.json.cursor })).status).toBe(200);
    await readAndAck('deliver-a');
    // A batch in flight (read, not acked) when A dies.
    const inflight = await request('deliver-a', 'GET', `/v1/sessions/${id}/records?max=40`);
    expect(inflight.status).toBe(200);
    const port = Number(replicas['deliver-a']!.process.env.ORDO_DELIVER_PORT);
    replicas['deliver-a']!.process.child.kill('SIGKILL');
    const killedAt = Date.now();
    let again;
    for (;;) {
      again = await request('deliver-b', 'GET', `/v1/sessions/${id}/records?max=40`);
      if (again.status === 200) break;
      expect([503, 504]).toContain(again.status);
      expect(Date.now() - killedAt).toBeLessThan(TTL_MS + 10_000);
      await sleep(250);
    }
    expect(again.headers.get('ordo-served-by')).toBe('deliver-b');
    // The batch in flight again, as it was.
    expect((again.json.records as Delivered[]).map((r) => r.cursor)).toEqual((inflight.json.records as Delivered[]).map((r) => r.cursor));
    received.push(...(again.json.records as Delivered[]));
    expect((await request('deliver-b', 'POST', `/v1/sessions/${id}/ack`, { cursor: again.json.cursor })).status).toBe(200);
    // A comes back with the same node id: it forwards to B rather than serving.
    await startReplica('deliver-a', port);
    const afterRevival = await request('deliver-a', 'GET', `/v1/sessions/${id}/records?max=40`);
    expect(afterRevival.status, JSON.stringify(afterRevival.json)).toBe(200);
    expect(afterRevival.headers.get('ordo-served-by')).toBe('deliver-b');
    received.push(...(afterRevival.json.records as Delivered[]));
    expect((await request('deliver-a', 'POST', `/v1/sessions/${id}/ack`, { cursor: afterRevival.json.cursor })).status).toBe(200);
    while (received.length < truth.length) {
      if ((await readAndAck('deliver-b')).length === 0) break;
    }
    // Exactly once, and in offset order within each partition (partitions interleave as the session merges them).
    const byPartition = (records: { partition: number; offset: string }[]): Record<number, string[]> => {
      const out: Record<number, string[]> = {};
      for (const r of records) (out[r.partition] ??= []).push(r.offset);
      return out;
    };
    expect(byPartition(received)).toEqual(byPartition(truth));
    expect(received).toHaveLength(truth.length);
  }, 180_000);

  it('bad input gets a clear 4xx, never a 5xx', async () => {
    const cases: [string, string, unknown, number, string][] = [
      ['GET', '/v1/streams/global/events?from=g.x', undefined, 400, 'bad-cursor'],
      ['GET', '/v1/streams/ordered/events?from=g.1.1', undefined, 400, 'bad-cursor'],
      ['GET', '/v1/streams/sideways/events', undefined, 404, 'not-found'],
      ['GET', '/v1/sessions/nope/records', undefined, 400, 'bad-session-id'],
      ['POST', '/v1/streams/global/sessions', { from: 'yesterday' }, 400, 'bad-cursor'],
    ];
    for (const [method, path, body, status, kind] of cases) {
      const answer = await request('deliver-b', method, path, body);
      expect({ path, status: answer.status, kind: (answer.json.error as { kind?: string } | undefined)?.kind }).toEqual({ path, status, kind });
    }
    const created = await request('deliver-b', 'POST', '/v1/streams/global/sessions', { from: 'latest' });
    const id = created.json.sessionId as string;
    for (const query of ['max=0', 'max=100001', 'waitMs=-1', 'waitMs=999999', 'max=abc']) {
      const answer = await request('deliver-b', 'GET', `/v1/sessions/${id}/records?${query}`);
      expect({ query, status: answer.status, kind: (answer.json.error as { kind?: string }).kind }).toEqual({ query, status: 400, kind: 'bad-parameter' });
    }
  }, 60_000);
});
