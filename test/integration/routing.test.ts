// Node-addressed routing against the real broker: the registry of live deliver replicas
// (heartbeats in a compacted topic, a clean leave, a silent death) and the forwarding of
// requests to the node that owns a session, answered through the reply topic.
import type { Kafka, Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { principalFromWire, type DeliverRequest } from '../../src/deliver/delivery.js';
import { Forwarder, type ForwarderOptions } from '../../src/engine/forwarder.js';
import { encodeForwardedRequest } from '../../src/engine/forwarder-wire.js';
import { NodeRegistry } from '../../src/engine/node-registry.js';
import { QueryError } from '../../src/errors.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { type RecordedLine, recordingLogger } from '../support/logs.js';

const HEARTBEAT_MS = 250;
const TTL_MS = 2_000;
const TIMEOUT_MS = 1_500;

const principal = principalFromWire({ name: 'alice', method: 'token', scopes: ['deliver'], subjects: ['acme', 'team-a/*'] });
const request = (body = '', path = '/v1/sessions/s1/records'): DeliverRequest => ({ method: 'GET', path, query: 'max=10', body, principal });

async function eventually(check: () => boolean, withinMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > withinMs) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('node-addressed routing', () => {
  const kafka: Kafka = testKafka();
  const prefix = uniqueName('it-routing');
  const topics = { nodes: `${prefix}-nodes`, forward: `${prefix}-forward`, replies: `${prefix}-replies` };
  const running: { stop(): Promise<void> }[] = [];
  let producer: Producer;

  beforeAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(
        admin,
        [
          { topic: topics.nodes, partitions: 1, compacted: true },
          { topic: topics.forward, partitions: 1 },
          { topic: topics.replies, partitions: 1 },
        ],
        { create: true, replicationFactor: 1 },
      );
    } finally {
      await admin.disconnect();
    }
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  async function registry(nodeId: string, lines: RecordedLine[] = [], onLiveNodes?: (n: number) => void): Promise<NodeRegistry> {
    const r = new NodeRegistry({ kafka, topic: topics.nodes, nodeId, heartbeatMs: HEARTBEAT_MS, ttlMs: TTL_MS, groupId: `${prefix}-nodes-${nodeId}`, logger: recordingLogger(lines), onLiveNodes });
    running.push(r);
    await r.start();
    return r;
  }

  async function forwarder(nodeId: string, serve: ForwarderOptions['serve'], extra: Partial<ForwarderOptions> = {}): Promise<Forwarder> {
    const f = new Forwarder({ kafka, forwardTopic: topics.forward, replyTopic: topics.replies, nodeId, groupId: `${prefix}-fwd-${nodeId}`, timeoutMs: TIMEOUT_MS, logger: noopLogger, serve, ...extra });
    running.push(f);
    await f.start();
    return f;
  }

  describe('NodeRegistry', () => {
    it('two registries see each other live within a heartbeat; a clean stop is gone at once', async () => {
      const a = await registry('reg-a');
      const lines: RecordedLine[] = [];
      const counts: number[] = [];
      const b = await registry('reg-b', lines, (n) => counts.push(n));
      // b read the topic from the beginning: a's heartbeat is known as b starts.
      expect(b.isLive('reg-a')).toBe(true);
      expect(b.liveNodes()).toEqual(['reg-a', 'reg-b']);
      expect(counts.at(-1)).toBe(2);
      // b wrote its first heartbeat in start(): a reads it within a heartbeat (plus a fetch, on a busy machine).
      await eventually(() => a.isLive('reg-b'), HEARTBEAT_MS + 250, 'a sees b');
      expect(a.liveNodes()).toEqual(['reg-a', 'reg-b']);
      expect(a.goneFor('reg-b')).toBeLessThan(HEARTBEAT_MS * 2);
      // Live past the TTL while the heartbeats go on.
      await new Promise((r) => setTimeout(r, TTL_MS + HEARTBEAT_MS));
      expect(a.isLive('reg-b')).toBe(true);
      expect(b.isLive('reg-a')).toBe(true);

      await b.stop();
      expect(b.isLive('reg-b')).toBe(false);
      const tookMs = await eventually(() => !a.isLive('reg-b'), TTL_MS / 2, 'a sees b leave');
      expect(tookMs).toBeLessThan(TTL_MS / 2);
      expect(a.goneFor('reg-b')).toBeDefined();
      expect(a.liveNodes()).toEqual(['reg-a']);

      // Restarted with the same node id: live again after its leave.
      const again = await registry('reg-b');
      await eventually(() => a.isLive('reg-b'), HEARTBEAT_MS + 250, 'a sees b back');
      expect(again.liveNodes()).toEqual(['reg-a', 'reg-b']);
      await Promise.all([a.stop(), again.stop()]);
    });

    it('a killed registry (silent, no leaving record) stays live until the TTL, then is gone; a later reader knows it too', async () => {
      const watcher = await registry('kill-w');
      const victim = await registry('kill-v');
      await eventually(() => watcher.isLive('kill-v'), HEARTBEAT_MS * 4, 'watcher sees victim');
      await victim.stop({ leave: false });
      const killedAt = Date.now();
      // Not gone before the TTL from its last heartbeat.
      await new Promise((r) => setTimeout(r, TTL_MS / 2));
      expect(watcher.isLive('kill-v')).toBe(true);
      const late = await registry('kill-late');
      expect(late.isLive('kill-v')).toBe(true); // its heartbeat, read from the beginning, is younger than the TTL
      await eventually(() => !watcher.isLive('kill-v'), TTL_MS, 'watcher sees victim gone');
      const goneAfter = Date.now() - killedAt;
      expect(goneAfter).toBeGreaterThanOrEqual(TTL_MS - HEARTBEAT_MS - 50);
      expect(goneAfter).toBeLessThan(TTL_MS + 500);
      expect(watcher.goneFor('kill-v')).toBeGreaterThanOrEqual(TTL_MS);
      expect(late.isLive('kill-v')).toBe(false);
      expect(late.goneFor('never-seen')).toBeUndefined();
      await Promise.all([watcher.stop(), late.stop()]);
    });

    it('skips unreadable records of the nodes topic with a log line, and keeps following', async () => {
      const lines: RecordedLine[] = [];
      const r = await registry('bad-reader', lines);
      await producer.send({ topic: topics.nodes, messages: [{ key: 'bad-1', value: 'not json' }, { key: 'bad-2', value: JSON.stringify({ node: 'other', at: Date.now() }) }, { key: 'good-1', value: JSON.stringify({ node: 'good-1', at: Date.now() }) }] });
      await eventually(() => r.isLive('good-1'), 5_000, 'the good heartbeat is read');
      expect(r.isLive('bad-1')).toBe(false);
      expect(r.isLive('bad-2')).toBe(false);
      const skipped = lines.filter((l) => l.msg === 'unreadable nodes topic record skipped').map((l) => l.meta?.node);
      expect(skipped).toEqual(expect.arrayContaining(['bad-1', 'bad-2']));
      await r.stop();
    });
  });

  describe('Forwarder', () => {
    it('a forward from a to b is served by b and answered with who served and who forwarded', async () => {
      const seen: { request: DeliverRequest; from: string }[] = [];
      const metricsA = new OrdoMetrics();
      const metricsB = new OrdoMetrics();
      const a = await forwarder('fa', () => Promise.reject(new Error('a serves nothing here')), { metrics: metricsA });
      const b = await forwarder(
        'fb',
        (req, from) => {
          seen.push({ request: req, from });
          return Promise.resolve({ status: 200, headers: { 'content-type': 'application/json' }, body: { served: 'fb', echo: req.body } });
        },
        { metrics: metricsB },
      );
      const answer = await a.forward('fb', request('{"cursor":"g.1.2"}'));
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ served: 'fb', echo: '{"cursor":"g.1.2"}' });
      expect(answer.headers).toMatchObject({ 'ordo-served-by': 'fb', 'ordo-forwarded-by': 'fa', 'content-type': 'application/json' });
      expect(seen).toHaveLength(1);
      expect(seen[0]!.from).toBe('fa');
      const got = seen[0]!.request;
      expect({ method: got.method, path: got.path, query: got.query, name: got.principal.name, method2: got.principal.method }).toEqual({ method: 'GET', path: '/v1/sessions/s1/records', query: 'max=10', name: 'alice', method2: 'token' });
      expect([...got.principal.scopes]).toEqual(['deliver']);
      expect(got.principal.subjects.allows('acme') && got.principal.subjects.allows('team-a/x') && !got.principal.subjects.allows('other')).toBe(true);
      // A QueryError on the serving node comes back as its error answer.
      const refused = await b.forward('fa', request());
      expect(refused.status).toBe(500);
      expect(refused.headers).toMatchObject({ 'ordo-served-by': 'fa', 'ordo-forwarded-by': 'fb' });
      expect((await metricsA.deliverForwards.get()).values).toEqual([{ labels: { outcome: 'answered' }, value: 1 }]);
      // Counted once the broker took the answer: the origin may have read it a moment before.
      const served = async (m: OrdoMetrics): Promise<number | undefined> => (await m.deliverForwardedServed.get()).values[0]?.value;
      for (let i = 0; i < 100 && ((await served(metricsA)) !== 1 || (await served(metricsB)) !== 1); i++) await new Promise((r) => setTimeout(r, 10));
      expect([await served(metricsA), await served(metricsB)]).toEqual([1, 1]);
    });

    it('a forward to a node that does not serve answers 504 forward-timeout after timeout + extra', async () => {
      const metrics = new OrdoMetrics();
      const a = await forwarder('ta', () => Promise.reject(new Error('unused')), { metrics });
      const started = Date.now();
      const error = await a.forward('nobody-serves-this', request(), 300).catch((e: unknown) => e);
      const tookMs = Date.now() - started;
      expect(error).toBeInstanceOf(QueryError);
      expect(error).toMatchObject({ kind: 'forward-timeout', status: 504, details: { node: 'nobody-serves-this' } });
      expect(tookMs).toBeGreaterThanOrEqual(TIMEOUT_MS + 300 - 5);
      expect(tookMs).toBeLessThan(TIMEOUT_MS + 300 + 500);
      expect((await metrics.deliverForwards.get()).values).toEqual([{ labels: { outcome: 'timeout' }, value: 1 }]);
    });

    it('50 concurrent forwards are all answered, each with its own answer', async () => {
      const a = await forwarder('ca', () => Promise.reject(new Error('unused')));
      await forwarder('cb', async (req) => {
        // Answers out of order: later requests may be answered first.
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50)));
        return { status: 200, headers: {}, body: { echo: req.body } };
      });
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => a.forward('cb', request(`request-${i}`))));
      expect(answers.map((x) => (x.body as { echo: string }).echo)).toEqual(Array.from({ length: 50 }, (_, i) => `request-${i}`));
      expect(answers.every((x) => x.headers['ordo-served-by'] === 'cb')).toBe(true);
    });

    it('does not serve a request past its deadline, skips malformed records with a log line, drops a late answer', async () => {
      const lines: RecordedLine[] = [];
      const served: string[] = [];
      const a = await forwarder('da', () => Promise.reject(new Error('unused')));
      await forwarder(
        'db',
        async (req) => {
          served.push(req.body);
          if (req.body === 'slow') await new Promise((r) => setTimeout(r, TIMEOUT_MS + 300));
          return { status: 200, headers: {}, body: req.body };
        },
        { logger: recordingLogger(lines) },
      );
      const past = encodeForwardedRequest({ id: 'expired-1', from: 'da', to: 'db', deadline: Date.now() - 1_000, request: request('expired') });
      await producer.send({ topic: topics.forward, messages: [{ key: 'db', value: past }, { key: 'db', value: '{"v":1,"id":"x"' }, { key: 'db', value: null }] });
      // The slow one times out at a; its answer comes later and is dropped without harm.
      const slow = await a.forward('db', request('slow')).catch((e: unknown) => e);
      expect(slow).toMatchObject({ kind: 'forward-timeout', status: 504 });
      await new Promise((r) => setTimeout(r, 500));
      const after = await a.forward('db', request('after'));
      expect(after.body).toBe('after');
      expect(served).toEqual(['slow', 'after']);
      expect(lines.filter((l) => l.msg === 'forwarded request past its deadline not served')).toHaveLength(1);
      expect(lines.filter((l) => l.msg === 'unreadable forwarded request skipped')).toHaveLength(2);
    });

    it('stop() rejects the forwards still waiting with 503', async () => {
      const a = new Forwarder({ kafka, forwardTopic: topics.forward, replyTopic: topics.replies, nodeId: 'sa', groupId: `${prefix}-fwd-sa`, timeoutMs: 30_000, logger: noopLogger, serve: () => Promise.reject(new Error('unused')) });
      running.push(a);
      await a.start();
      const waiting = a.forward('nobody', request()).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      await a.stop();
      expect(await waiting).toMatchObject({ kind: 'node-stopping', status: 503 });
      expect(Date.now() - started).toBeLessThan(3_000); // the consumer's fetch wait (1 s) bounds it
      expect(await a.forward('nobody', request()).catch((e: unknown) => e)).toMatchObject({ status: 503 });
    });

    it('a stopping node still answers the requests it is serving', async () => {
      const a = await forwarder('ga', () => Promise.reject(new Error('unused')));
      let started!: () => void;
      const serving = new Promise<void>((resolve) => (started = resolve));
      const b = await forwarder('gb', async (req) => {
        started();
        await new Promise((r) => setTimeout(r, 500));
        return { status: 200, headers: {}, body: req.body };
      });
      const answer = a.forward('gb', request('finish me'));
      await serving;
      await b.stop();
      expect((await answer).body).toBe('finish me');
      // Stopped: it reads no more requests.
      expect(await a.forward('gb', request('too late')).catch((e: unknown) => e)).toMatchObject({ kind: 'forward-timeout' });
    });

    it('measures the forward round trip (200 forwards, one at a time)', async () => {
      const a = await forwarder('la', () => Promise.reject(new Error('unused')));
      await forwarder('lb', (req) => Promise.resolve({ status: 200, headers: {}, body: req.body }));
      for (let i = 0; i < 10; i++) await a.forward('lb', request('warm-up'));
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const started = performance.now();
        const answer = await a.forward('lb', request(`n${i}`));
        times.push(performance.now() - started);
        expect(answer.body).toBe(`n${i}`);
      }
      times.sort((x, y) => x - y);
      const p50 = percentile(times, 50);
      const p99 = percentile(times, 99);
      console.log(`forward round trip over the local broker: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms`);
      expect(p99).toBeLessThan(TIMEOUT_MS);
    });
  });
});

