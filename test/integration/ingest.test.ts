import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime, parseServiceTime } from '../../src/clock/service-time.js';
import type { OrdoConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { decodeConsistencyToken } from '../../src/model/consistency-token.js';
import { noopLogger } from '../../src/observability/logger.js';
import type { AcceptedEvent } from '../../src/ingest/server.js';
import { type IngestRole, startIngestRole } from '../../src/roles/ingest.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, header, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { faultyCommits } from '../support/faulty-kafka.js';
import { testConfig } from '../support/worker.js';

// The ingest role against the real broker and registry: what a 202 says is what the input
// topic holds (read_committed), and every refused request writes nothing.

const kafka = testKafka();
const prefix = uniqueName('it-ingest');
const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const roles: IngestRole[] = [];
/** Every event a 202 accepted: id -> its answer. The topic must hold exactly these at the end. */
const accepted = new Map<string, { partition: number; offset: string; serviceTime: string }>();

type AcceptedView = AcceptedEvent;

interface Answer {
  events: AcceptedView[];
  error: { kind: string; message: string; items?: { index: number; kind: string; message: string }[] };
}

function ce(id: string, subject: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { specversion: '1.0', id, source: 'it-ingest', type: 'api.request', subject, time: '2026-11-30T12:00:00Z', data: { value: '1.25', dimensions: { region: 'eu' } }, ...extra };
}

async function post(role: IngestRole, body: unknown, headers: Record<string, string> = {}, batch = true): Promise<{ status: number; headers: Headers; json: Answer }> {
  const res = await fetch(`http://127.0.0.1:${role.port}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': batch ? 'application/cloudevents-batch+json' : 'application/cloudevents+json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const json = (await res.json()) as Answer;
  if (res.status === 202 && role === main) for (const e of json.events) accepted.set(e.id, e);
  return { status: res.status, headers: res.headers, json };
}

async function startIngest(config: OrdoConfig, deps: Partial<Parameters<typeof startIngestRole>[1]> = {}): Promise<IngestRole> {
  const role = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics(), ...deps });
  roles.push(role);
  return role;
}

let main: IngestRole;
let config: OrdoConfig;
let metrics: OrdoMetrics;

beforeAll(async () => {
  config = testConfig(prefix, { ORDO_NODE_ID: 'ingest-it', ORDO_INGEST_REQUEST_TIMEOUT_MS: '1000', ORDO_INGEST_MAX_EVENTS: '10000', ORDO_INGEST_MAX_BYTES: String(8 * 1_048_576) });
  await createTopics(kafka, [config.topics.input], 3);
  metrics = new OrdoMetrics();
  main = await startIngest(config, { metrics });
});

afterAll(async () => {
  await Promise.all(roles.map((r) => r.stop()));
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('POST /v1/events', () => {
  it('writes a batch in one transaction: each answer names the record that holds the event, stamped and keyed by subject', async () => {
    const events = Array.from({ length: 30 }, (_, i) => ce(`batch-${i}`, `subject-${i % 7}`, i === 3 ? { traceparent: TRACE } : {}));
    const res = await post(main, events);
    expect(res.status).toBe(202);
    const answer = res.json.events;
    expect(answer.map((e) => e.id)).toEqual(events.map((e) => e.id));
    // Stamps strictly increase through the request; the response carries the last one for the next hop.
    const stamps = answer.map((e) => parseServiceTime(e.serviceTime));
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]! > stamps[i - 1]!).toBe(true);
    expect(res.headers.get('service-time')).toBe(answer.at(-1)!.serviceTime);
    expect(res.headers.get('service-node')).toBe('ingest-it');
    for (const e of answer) expect(decodeConsistencyToken(e.token)).toEqual({ topic: config.topics.input, partition: e.partition, offset: e.offset });

    const records = await readAll(kafka, config.topics.input, 30, { settleMs: 500 });
    const at = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
    for (const [i, e] of answer.entries()) {
      const record = at.get(`${e.partition}/${e.offset}`);
      expect(record, e.id).toBeDefined();
      const event = decodeEvent(record!.value);
      expect(event).toEqual({ id: e.id, source: 'it-ingest', type: 'api.request', subject: `subject-${i % 7}`, time: Date.parse('2026-11-30T12:00:00Z'), value: '1.25', dimensions: { region: 'eu' } });
      expect(record!.key?.toString()).toBe(event.subject);
      expect(header(record!, 'service-time')).toBe(e.serviceTime);
      expect(header(record!, 'service-node')).toBe('ingest-it');
      expect(header(record!, 'traceparent')).toBe(i === 3 ? TRACE : undefined);
    }
  });

  it('receives the caller\'s service time: every stamp is above it; the traceparent header applies to events without their own', async () => {
    const upstream = makeServiceTime(Date.now() + 200, 7); // ahead, within the 500 ms bound
    const res = await post(main, ce('ctx-1', 'acme'), { 'service-time': formatServiceTime(upstream), 'service-node': 'svc-b', traceparent: TRACE }, false);
    expect(res.status).toBe(202);
    expect(parseServiceTime(res.json.events[0]!.serviceTime) > upstream).toBe(true);
    const records = await readAll(kafka, config.topics.input, accepted.size, { settleMs: 300 });
    const record = records.find((r) => decodeEvent(r.value).id === 'ctx-1')!;
    expect(header(record, 'traceparent')).toBe(TRACE);
  });

  it('refuses bad input with a clear 4xx and writes nothing', async () => {
    const bad = async (body: unknown, status: number, kind: string, headers: Record<string, string> = {}, batch = true): Promise<Answer['error']> => {
      const res = await post(main, body, headers, batch);
      expect({ status: res.status, kind: res.json.error?.kind }, JSON.stringify(res.json)).toEqual({ status, kind });
      return res.json.error;
    };
    // One invalid item refuses the request; every item's error is listed with its index.
    const error = await bad(
      [ce('ok-but-refused', 'acme'), ce('x'.repeat(1025), 'acme'), ce('exp', 'acme', { data: { value: '1e3' } }), ce('dim', 'acme', { data: { value: '1', dimensions: { n: 5 } } }), ce('num', 'acme', { data: { value: 12.5 } })],
      400,
      'invalid-events',
    );
    expect(error.items!.map((i) => [i.index, i.kind])).toEqual([
      [1, 'invalid-event'],
      [2, 'invalid-value'],
      [3, 'invalid-event'],
      [4, 'invalid-value'],
    ]);
    expect(error.items![0]!.message).toMatch(/id is longer than 1024/);
    await bad('{"specversion": "1.0",', 400, 'malformed-json');
    await bad({ not: 'an array' }, 400, 'invalid-body');
    await bad([], 400, 'empty-batch');
    await bad(Array.from({ length: 10_001 }, (_, i) => ce(`many-${i}`, 'acme')), 413, 'too-many-events');
    await bad(ce('skew', 'acme'), 400, 'clock-skew', { 'service-time': formatServiceTime(makeServiceTime(Date.now() + 60_000, 0)) }, false);
    await bad(ce('hex', 'acme'), 400, 'bad-service-time', { 'service-time': '0x1234' }, false);
    await bad(ce('node', 'acme'), 400, 'bad-service-time', { 'service-node': 'svc-b' }, false);
    const unsupported = await fetch(`http://127.0.0.1:${main.port}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' });
    expect(unsupported.status).toBe(415);
    expect(((await unsupported.json()) as Answer).error.kind).toBe('unsupported-media-type');
    expect((await fetch(`http://127.0.0.1:${main.port}/v1/events`)).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${main.port}/v1/nothing`, { method: 'POST' })).status).toBe(404);
  });

  it('answers 413 from the declared length of an oversized body, and 408 to a body that never finishes', async () => {
    const small = await startIngest({ ...config, ingest: { ...config.ingest, maxBytes: 2_048 } });
    const big = JSON.stringify(Array.from({ length: 40 }, (_, i) => ce(`big-${i}`, 'acme')));
    const res = await fetch(`http://127.0.0.1:${small.port}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body: big });
    expect(res.status).toBe(413);
    expect(((await res.json()) as Answer).error.kind).toBe('too-large');
    // Chunked (no declared length): cut while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: small.port, method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/cloudevents-batch+json', 'transfer-encoding': 'chunked' } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(big.slice(0, 1500));
      req.end(big.slice(1500));
    });
    expect(chunked).toBe(413);

    // Slow loris: headers and half a body, then nothing. The server answers 408 and closes.
    const started = Date.now();
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(main.port, '127.0.0.1', () => {
        socket.write(`POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/cloudevents+json\r\ncontent-length: 500\r\n\r\n{"specversion":`);
      });
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('answers 503 with Retry-After when the transaction does not commit, and writes nothing; the same request retried is accepted', async () => {
    const faultPrefix = uniqueName('it-ingest-fault');
    const faultConfig = testConfig(faultPrefix, { ORDO_NODE_ID: 'ingest-fault' });
    await createTopics(kafka, [faultConfig.topics.input], 2);
    try {
      const { kafka: faulty, injected } = faultyCommits(testKafka(), new Map([[1, 'coordinator-gone']]));
      const role = await startIngest(faultConfig, { kafka: faulty });
      const body = [ce('fault-1', 'acme'), ce('fault-2', 'beta'), ce('fault-3', 'gamma')];
      const first = await post(role, body);
      expect(first.status).toBe(503);
      expect(first.json.error.kind).toBe('unavailable');
      expect(first.headers.get('retry-after')).toBe('1');
      expect(injected()).toBe(1);
      const second = await post(role, body);
      expect(second.status).toBe(202);
      const records = await readAll(kafka, faultConfig.topics.input, 3, { settleMs: 500 });
      expect(records.map((r) => decodeEvent(r.value).id).sort()).toEqual(['fault-1', 'fault-2', 'fault-3']);
    } finally {
      await deleteTopicsWithPrefix(kafka, faultPrefix);
    }
  });

  it('counts requests and events by outcome', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^ordo_ingest_requests_total\{outcome="accepted"\} [1-9]/m);
    expect(text).toMatch(/^ordo_ingest_requests_total\{outcome="invalid-events"\} 1$/m);
    expect(text).toMatch(/^ordo_ingest_events_total\{outcome="accepted"\} 31$/m);
    expect(text).toMatch(/^ordo_ingest_request_duration_seconds_count\{outcome="accepted"\} 2$/m);
  });

  it('the input topic holds exactly the accepted events: nothing of a refused request', async () => {
    const records = await readAll(kafka, config.topics.input, accepted.size, { settleMs: 1_000 });
    expect(records.map((r) => decodeEvent(r.value).id).sort()).toEqual([...accepted.keys()].sort());
  });
});

describe('ingest start', () => {
  it('refuses an unreadable connectors directory before connecting, naming ORDO_CONNECTORS_DIR (exit 78)', async () => {
    const error = await startIngest({ ...config, ingest: { ...config.ingest, connectorsDir: '/nonexistent/connectors' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/ORDO_CONNECTORS_DIR: cannot read connector directory "\/nonexistent\/connectors"/);
  });
});

describe('ingest auth', () => {
  const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
  it('needs scope ingest; a subject-scoped token writes only its subjects', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-it-ingest-')), 'tokens.yaml');
    writeFileSync(
      file,
      `tokens:\n  - {name: reader, sha256: ${sha('reader-token-0123456789')}, scopes: [read]}\n  - {name: acme-svc, sha256: ${sha('acme-token-0123456789')}, scopes: [ingest], subjects: [acme]}\n`,
    );
    const role = await startIngest(testConfig(prefix, { ORDO_NODE_ID: 'ingest-auth', ORDO_API_AUTH: 'token', ORDO_API_TOKENS_FILE: file }));
    const as = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
    expect((await post(role, [ce('auth-0', 'acme')], as())).status).toBe(401);
    expect((await post(role, [ce('auth-1', 'acme')], as('reader-token-0123456789'))).json.error.kind).toBe('forbidden-scope');
    const other = await post(role, [ce('auth-2', 'acme'), ce('auth-3', 'globex')], as('acme-token-0123456789'));
    expect([other.status, other.json.error.kind]).toEqual([403, 'forbidden-subject']);
    expect((await post(role, [ce('auth-4', 'acme')], as('acme-token-0123456789'))).status).toBe(202);
  });
});
