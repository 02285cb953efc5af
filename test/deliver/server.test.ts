// The deliver server's HTTP edge over real HTTP on 127.0.0.1: authentication (tokens file),
// scope `deliver`, subject-scoped tokens, refusals before a stream starts (JSON errors),
// the stream limit, the session routes passed to the sessions, and the heap under 1,000
// idle streams.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type Authenticator, createAuthenticator, noAuthentication } from '../../src/auth/authenticator.js';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { readSpec } from '../../src/connectors/openapi.js';
import type { DeliverAnswer, DeliverRequest } from '../../src/deliver/delivery.js';
import { DELIVER_ROUTES, type DeliverServer, type DeliverServerOptions, startDeliverServer } from '../../src/deliver/server.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { MemorySource, SseClient, fakeViews } from './sse-fixtures.js';

const TOKENS = {
  deliverer: 'ordo_deliverer_4m7TzVq2cXKp0aE9sLrW1yHbN8uGdF3o',
  reader: 'ordo_reader_Qh2Kx9vB1nZr6TcW3sLp0mYdE8aJfU4g',
  admin: 'ordo_admin_V0bN7sXq3cLk9ZpR2tWm6yHd1eGa5uFx',
  acme: 'ordo_portal_acme_J8dK2mQx5vZb1nLr7tWc0sYp4eHa9uG',
  team: 'ordo_portal_team_P3nX8bV1cZq6mL0kR9tW2sYd7eHa5uJf',
  unknown: 'ordo_unknown_Z3nX8bV1cZq6mL0kR9tW2sYd7eHa5uJf',
};

interface Setup {
  server: DeliverServer;
  ordered: MemorySource;
  global: MemorySource;
  metrics: OrdoMetrics;
  requests: DeliverRequest[];
}

const servers: DeliverServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(auth: Authenticator, extra: Partial<DeliverServerOptions> = {}, limits: Partial<DeliverServerOptions['limits']> = {}): Promise<Setup> {
  const ordered = new MemorySource('ordered', 3);
  const global = new MemorySource('global', 1);
  const metrics = new OrdoMetrics();
  const requests: DeliverRequest[] = [];
  const server = await startDeliverServer({
    port: 0,
    host: '127.0.0.1',
    auth,
    nodeId: 'node-a',
    sources: { ordered, global },
    views: fakeViews,
    sessions: {
      handle: (request) => {
        requests.push(request);
        const answer: DeliverAnswer =
          request.method === 'DELETE' ? { status: 204, headers: { 'ordo-served-by': 'node-a' }, body: undefined } : { status: 201, headers: { 'ordo-served-by': 'node-b', 'ordo-forwarded-by': 'node-a' }, body: { echo: request.body } };
        return Promise.resolve(answer);
      },
    },
    limits: { maxStreams: 100, heartbeatMs: 10_000, bufferBytes: 1 << 20, ...limits },
    metrics,
    ...extra,
  });
  servers.push(server);
  return { server, ordered, global, metrics, requests };
}

async function counted(metrics: OrdoMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const json = await metrics.registry.getMetricsAsJSON();
  const values = json.find((m) => m.name === name)?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

async function refused(port: number, path: string, headers: Record<string, string>, status: number, kind: string): Promise<SseClient> {
  const client = await SseClient.open(port, path, headers);
  expect(client.status, client.body).toBe(status);
  expect(client.headers['content-type']).toBe('application/json');
  expect(client.error().kind).toBe(kind);
  expect(client.error().message).toEqual(expect.any(String));
  await client.close();
  return client;
}

describe('deliver server with ORDO_API_AUTH=token', () => {
  let auth: Authenticator;

  beforeAll(() => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-deliver-tokens-')), 'tokens.yaml');
    writeFileSync(
      file,
      [
        'tokens:',
        `  - {name: deliverer, sha256: ${sha256Hex(TOKENS.deliverer)}, scopes: [deliver]}`,
        `  - {name: reader, sha256: ${sha256Hex(TOKENS.reader)}, scopes: [read]}`,
        `  - {name: admin, sha256: ${sha256Hex(TOKENS.admin)}, scopes: [admin]}`,
        `  - {name: portal-acme, sha256: ${sha256Hex(TOKENS.acme)}, scopes: [deliver], subjects: [acme]}`,
        `  - {name: portal-team, sha256: ${sha256Hex(TOKENS.team)}, scopes: [deliver], subjects: ["team/*"]}`,
        '',
      ].join('\n'),
    );
    auth = createAuthenticator({ mode: 'token', tokensFile: file }, { reloadIntervalMs: 0 });
  });
  afterAll(() => auth.close());

  const paths: [string, string][] = [
    ['GET', '/v1/streams/ordered/events'],
    ['GET', '/v1/streams/global/events?from=earliest'],
    ['POST', '/v1/streams/ordered/sessions'],
    ['GET', '/v1/sessions/abc/records'],
    ['POST', '/v1/sessions/abc/ack'],
    ['DELETE', '/v1/sessions/abc'],
  ];

  it('every route: no token or a wrong one is 401, a token without scope deliver is 403; deliver and admin pass', async () => {
    const { server, requests, metrics } = await serve(auth);
    expect([...new Set(paths.map(([method, path]) => `${method} ${path.split('?')[0]!.replace(/ordered|global/, '{stream}').replace('abc', '{sessionId}')}`))].sort()).toEqual(
      Object.entries(DELIVER_ROUTES)
        .map(([template, method]) => `${method} ${template}`)
        .sort(),
    );
    const base = `http://127.0.0.1:${server.port}`;
    for (const [method, path] of paths) {
      const cases: [Record<string, string>, number, string][] = [
        [{}, 401, 'unauthenticated'],
        [bearer(TOKENS.unknown), 401, 'invalid-token'],
        [bearer(TOKENS.reader), 403, 'forbidden-scope'],
      ];
      for (const [headers, status, kind] of cases) {
        const res = await fetch(`${base}${path}`, { method, headers, body: method === 'POST' ? '{}' : undefined });
        const body = (await res.json()) as { error: { kind: string } };
        expect([res.status, body.error.kind], `${method} ${path} ${JSON.stringify(headers)}`).toEqual([status, kind]);
        if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="ordo"/);
        if (kind === 'forbidden-scope') expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ordo", error="insufficient_scope", scope="deliver"');
      }
    }
    expect(requests).toHaveLength(0);
    expect(await counted(metrics, 'ordo_deliver_stream_requests_total', { stream: 'ordered', outcome: 'unauthenticated' })).toBe(1);
    expect(await counted(metrics, 'ordo_deliver_stream_requests_total', { stream: 'global', outcome: 'forbidden-scope' })).toBe(1);
    for (const token of [TOKENS.deliverer, TOKENS.admin]) {
      const client = await SseClient.open(server.port, '/v1/streams/ordered/events', bearer(token));
      expect(client.status).toBe(200);
      await client.close();
      const res = await fetch(`${base}/v1/streams/global/sessions`, { method: 'POST', headers: bearer(token), body: '{"from":"earliest"}' });
      expect(res.status).toBe(201);
    }
    expect(requests.map((r) => r.principal.name)).toEqual(['deliverer', 'admin']);
  });

  it('a one-subject token asking no subject gets its subject with s. ids; asking another is 403 forbidden-subject', async () => {
    const { server, ordered } = await serve(auth);
    for (let i = 0; i < 30; i++) ordered.append(['acme', 'globex', 'team/1'][i % 3]!);
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest', bearer(TOKENS.acme));
    await client.until(() => client.records().length === 10);
    expect(client.records().every((r) => r.key === 'acme')).toBe(true);
    expect(client.events.map((e) => e.id)).toEqual(client.records().map((r) => `s.${r.headers['ordo-seq']}.${r.partition}.${r.offset}`));
    await client.close();
    for (const query of ['subject=globex', 'subject=acme&subject=globex', 'subject=team%2F1']) {
      const answer = await refused(server.port, `/v1/streams/ordered/events?${query}`, bearer(TOKENS.acme), 403, 'forbidden-subject');
      expect(answer.body).not.toContain('globex"'.repeat(2));
    }
    await refused(server.port, '/v1/streams/global/events?subject=teamster', bearer(TOKENS.team), 403, 'forbidden-subject');
  });

  it('a prefix-scoped token sees only its subjects (never records without a key), with v. ids', async () => {
    const { server, ordered } = await serve(auth);
    for (let i = 0; i < 40; i++) ordered.append(['team/1', 'teamster', 'team/2', null][i % 4]!);
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest', bearer(TOKENS.team));
    await client.until(() => client.records().length === 20);
    await new Promise((r) => setTimeout(r, 50));
    expect(client.records()).toHaveLength(20);
    expect(new Set(client.records().map((r) => r.key))).toEqual(new Set(['team/1', 'team/2']));
    expect(client.events.every((e) => /^v\.\d+\.\d+\.\d+$/.test(e.id!))).toBe(true);
    await client.close();
  });
});

describe('deliver server refusals before a stream starts', () => {
  it('malformed cursors and parameters are 400, expired cursors 410 with the earliest, unknown streams and routes 404, wrong methods 405', async () => {
    const { server, ordered, global, metrics } = await serve(noAuthentication);
    for (let i = 0; i < 30; i++) ordered.append(`s${i % 4}`);
    for (let i = 0; i < 10; i++) global.append(`s${i % 4}`);
    ordered.expire(0, ordered.earliest[0]! + 1n);
    global.expire(0, 4n);
    const port = server.port;
    for (const path of ['/v1/streams/ordered/events?from=x.1', '/v1/streams/ordered/events?from=g.1.2', '/v1/streams/ordered/events?from=v.1.2', '/v1/streams/global/events?from=s.1.0.0', '/v1/streams/ordered/events?from=s.1.3.0', '/v1/streams/global/events?from=g.-1.2']) {
      await refused(port, path, {}, 400, 'bad-cursor');
    }
    for (const id of ['v.1', 'garbage', 'g.1.2.3', `v.${'9'.repeat(30)}.0.0`]) {
      const client = await refused(port, '/v1/streams/ordered/events?from=earliest', { 'last-event-id': id }, 400, 'bad-cursor');
      expect(client.error().message).toMatch(/^Last-Event-ID: /);
    }
    for (const path of ['/v1/streams/ordered/events?from=', '/v1/streams/ordered/events?subject=', '/v1/streams/ordered/events?limit=3', '/v1/streams/ordered/events?from=earliest&from=latest']) {
      await refused(port, path, {}, 400, 'bad-parameter');
    }
    const expired = await refused(port, '/v1/streams/global/events?from=g.2.2', {}, 410, 'cursor-expired');
    expect(expired.error().earliest).toBe('v.4');
    await refused(port, '/v1/streams/ordered/events', { 'last-event-id': 'v.0.0.0' }, 410, 'cursor-expired');
    await refused(port, '/v1/streams/global/events?from=g.99.99', {}, 400, 'cursor-ahead');
    // The earliest cursor a 410 gives starts a stream.
    const resumed = await SseClient.open(port, '/v1/streams/global/events', { 'last-event-id': expired.error().earliest as string });
    await resumed.until(() => resumed.records().length === 6);
    expect(resumed.records()[0]!.offset).toBe('4');
    await resumed.close();
    for (const path of ['/v1/streams/input/events', '/v1/streams/ordered', '/v1/streams//events', '/v1/streams/ordered/events/x', '/v2/streams/ordered/events', '/', '/v1/sessions', '/v1/sessions/x/other']) {
      await refused(port, path, {}, 404, 'not-found');
    }
    const res = await fetch(`http://127.0.0.1:${port}/v1/streams/ordered/events`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
    expect(((await res.json()) as { error: { kind: string } }).error.kind).toBe('method-not-allowed');
    expect(await counted(metrics, 'ordo_deliver_stream_requests_total', { stream: 'global', outcome: 'cursor-expired' })).toBe(1);
    expect(await counted(metrics, 'ordo_deliver_stream_requests_total', { stream: 'ordered', outcome: 'bad-cursor' })).toBe(8);
    expect(server.openStreams()).toBe(0);
    expect(ordered.openReaders + global.openReaders).toBe(0);
  });

  it('a source without readers to spare is 503 too-many-readers with Retry-After; a subject cursor on a stream filtered to another subject is accepted', async () => {
    const { server, ordered } = await serve(noAuthentication);
    for (let i = 0; i < 12; i++) ordered.append(['acme', 'globex'][i % 2]!);
    const acme = ordered.logs.flat().find((r) => r.key?.toString() === 'acme')!;
    const client = await SseClient.open(server.port, `/v1/streams/ordered/events?subject=globex&from=s.1.${acme.partition}.${acme.offset}`);
    expect(client.status, client.body).toBe(200);
    await client.close();
    ordered.maxReaders = 0;
    const busy = await refused(server.port, '/v1/streams/ordered/events', {}, 503, 'too-many-readers');
    expect(busy.headers['retry-after']).toBe('1');
  });

  it('more than maxStreams open (both streams counted) is 503 too-many-streams with Retry-After; a closed stream frees its place', async () => {
    const { server, metrics } = await serve(noAuthentication, {}, { maxStreams: 3 });
    const clients = [
      await SseClient.open(server.port, '/v1/streams/ordered/events'),
      await SseClient.open(server.port, '/v1/streams/global/events'),
      await SseClient.open(server.port, '/v1/streams/ordered/events?subject=a'),
    ];
    expect(clients.map((c) => c.status)).toEqual([200, 200, 200]);
    expect(server.openStreams()).toBe(3);
    for (const stream of ['ordered', 'global']) {
      const full = await refused(server.port, `/v1/streams/${stream}/events`, {}, 503, 'too-many-streams');
      expect(full.headers['retry-after']).toBe('1');
    }
    expect(await counted(metrics, 'ordo_deliver_stream_requests_total', { outcome: 'too-many-streams' })).toBe(2);
    await clients[0]!.close();
    await expect.poll(() => server.openStreams()).toBe(2);
    const again = await SseClient.open(server.port, '/v1/streams/global/events');
    expect(again.status).toBe(200);
    await Promise.all([again, ...clients].map((c) => c.close()));
  });
});

describe('deliver server session routes', () => {
  it('passes each session request whole to the sessions and sends their answer; bodies over 64 KiB are 413', async () => {
    const { server, requests } = await serve(noAuthentication);
    const base = `http://127.0.0.1:${server.port}`;
    const created = await fetch(`${base}/v1/streams/global/sessions`, { method: 'POST', body: '{"from":"earliest"}' });
    expect(created.status).toBe(201);
    expect(created.headers.get('ordo-served-by')).toBe('node-b');
    expect(created.headers.get('ordo-forwarded-by')).toBe('node-a');
    expect(await created.json()).toEqual({ echo: '{"from":"earliest"}' });
    const read = await fetch(`${base}/v1/sessions/s-1/records?max=5&waitMs=0`);
    expect(read.status).toBe(201);
    await fetch(`${base}/v1/sessions/s-1/ack`, { method: 'POST', body: '{"cursor":"g.1.0"}' });
    const deleted = await fetch(`${base}/v1/sessions/s-1`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe('');
    expect(requests.map(({ method, path, query, body, principal }) => ({ method, path, query, body, principal: principal.name }))).toEqual([
      { method: 'POST', path: '/v1/streams/global/sessions', query: '', body: '{"from":"earliest"}', principal: 'anonymous' },
      { method: 'GET', path: '/v1/sessions/s-1/records', query: 'max=5&waitMs=0', body: '', principal: 'anonymous' },
      { method: 'POST', path: '/v1/sessions/s-1/ack', query: '', body: '{"cursor":"g.1.0"}', principal: 'anonymous' },
      { method: 'DELETE', path: '/v1/sessions/s-1', query: '', body: '', principal: 'anonymous' },
    ]);
    const large = await fetch(`${base}/v1/streams/ordered/sessions`, { method: 'POST', body: 'x'.repeat(64 * 1024 + 1) });
    expect(large.status).toBe(413);
    expect(((await large.json()) as { error: { kind: string } }).error.kind).toBe('too-large');
    for (const [method, path, allow] of [['GET', '/v1/streams/ordered/sessions', 'POST'], ['POST', '/v1/sessions/s-1', 'DELETE'], ['GET', '/v1/sessions/s-1/ack', 'POST'], ['DELETE', '/v1/sessions/s-1/records', 'GET']] as const) {
      const res = await fetch(`${base}${path}`, { method });
      expect([res.status, res.headers.get('allow')], `${method} ${path}`).toEqual([405, allow]);
    }
    const unknown = await fetch(`${base}/v1/streams/input/sessions`, { method: 'POST', body: '{}' });
    expect(unknown.status).toBe(404);
    expect(requests).toHaveLength(4);
  });

  it('without sessions, their routes are 404 not-found and the streams still work', async () => {
    const { server } = await serve(noAuthentication, { sessions: undefined });
    const base = `http://127.0.0.1:${server.port}`;
    for (const [method, path] of [['POST', '/v1/streams/ordered/sessions'], ['GET', '/v1/sessions/x/records'], ['DELETE', '/v1/sessions/x']] as const) {
      const res = await fetch(`${base}${path}`, { method });
      const body = (await res.json()) as { error: { kind: string; message: string } };
      expect([res.status, body.error.kind]).toEqual([404, 'not-found']);
      expect(body.error.message).not.toMatch(/sessionId/);
    }
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events');
    expect(client.status).toBe(200);
    await client.close();
  });
});

describe('deliver server memory', () => {
  it('1,000 idle streams at the tail keep the heap bounded (no per-stream buffer, no growth while they idle)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const { server, ordered, global } = await serve(noAuthentication, {}, { maxStreams: 2_000, heartbeatMs: 200, bufferBytes: 1 << 20 });
    // A tail that holds records: a stream that read ahead or copied them would show.
    for (let i = 0; i < 2_000; i++) ordered.append(`s${i % 50}`, 'api.call', 'z'.repeat(500));
    const before = heap();
    const clients: SseClient[] = [];
    for (let i = 0; i < 1_000; i++) {
      const stream = i % 2 === 0 ? 'ordered' : 'global';
      clients.push(await SseClient.open(server.port, `/v1/streams/${stream}/events${i % 4 === 0 ? '?subject=s1' : ''}`));
    }
    expect(server.openStreams()).toBe(1_000);
    expect(ordered.openReaders + global.openReaders).toBe(1_000);
    await Promise.all(clients.map((c) => c.until(() => c.comments.includes('heartbeat'), 5_000)));
    const open = heap();
    // Several heartbeat intervals more: idle streams do not grow.
    await new Promise((r) => setTimeout(r, 1_000));
    const idle = heap();
    const perStream = (open - before) / 1_000;
    // Each stream costs its two sockets (server and this test's client, both in this process),
    // the request/response objects, a tracker, a reader and a few closures: about 14 KB measured.
    // 32 KiB per stream leaves room for that and is far below what a per-stream copy of data
    // would cost: the 1 MiB a stream may queue (bufferBytes), or one batch of the tail read
    // ahead (256 records of ~0.6 KB = ~150 KB).
    expect(perStream, `heap per idle stream: ${Math.round(perStream)} bytes`).toBeLessThan(32 * 1024);
    // Idle: heartbeats come and go (a few seconds of them), nothing accumulates.
    expect(idle - open, `heap growth while idle: ${idle - open} bytes`).toBeLessThan(8 * 1024 * 1024);
    for (const c of clients) c.socket.destroy();
    await expect.poll(() => server.openStreams(), { timeout: 10_000 }).toBe(0);
    expect(ordered.openReaders + global.openReaders).toBe(0);
  }, 60_000);
});

describe('docs/openapi.yaml: the deliver routes', () => {
  interface Operation {
    security: Record<string, string[]>[];
    responses: Record<string, { $ref?: string }>;
    parameters?: { name: string; in: string }[];
  }
  interface Spec {
    paths: Record<string, { servers?: { url: string }[] } & Record<string, Operation>>;
    components: { responses: Record<string, { description: string }>; schemas: { Error: { properties: { error: { properties: Record<string, unknown> & { kind: { examples: string[] } } } } } } };
  }
  const spec = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8')) as Spec;

  it('is a valid OpenAPI document (as the connectors generator validates specs)', async () => {
    const file = fileURLToPath(new URL('../../docs/openapi.yaml', import.meta.url));
    await expect(readSpec(file)).resolves.toBeDefined();
  });

  it('every deliver route needs scope deliver (tokens or OIDC), is on the deliver port and lists 401/403/404/405/500/503', () => {
    for (const [route, method] of Object.entries(DELIVER_ROUTES)) {
      const path = spec.paths[route]!;
      const operation = path[method.toLowerCase()]!;
      expect(operation.security, route).toEqual([{ tokens: ['deliver'] }, { oidc: ['deliver'] }]);
      expect(path.servers?.[0]?.url, route).toBe('http://localhost:8092');
      expect(Object.keys(operation.responses), route).toEqual(expect.arrayContaining(['401', '403', '404', '405', '500', '503']));
    }
  });

  it('documents the stream parameters the server reads and the error kinds it answers', () => {
    const names = spec.paths['/v1/streams/{stream}/events']!.get!.parameters!.map((p) => p.name);
    expect(names.sort()).toEqual(['Last-Event-ID', 'from', 'subject', 'type']);
    expect(Object.keys(spec.paths['/v1/streams/{stream}/events']!.get!.responses).sort()).toEqual(['200', '400', '401', '403', '404', '405', '410', '500', '503']);
    const kinds = spec.components.schemas.Error.properties.error.properties.kind.examples;
    expect(kinds).toEqual(expect.arrayContaining(['bad-cursor', 'cursor-ahead', 'cursor-expired', 'too-many-streams', 'too-many-readers', 'bad-parameter', 'not-found', 'method-not-allowed', 'too-large']));
    expect(spec.components.schemas.Error.properties.error.properties).toHaveProperty('earliest');
    for (const kind of ['bad-cursor', 'cursor-ahead']) expect(spec.components.responses.DeliverBadRequest!.description).toContain(`\`${kind}\``);
    expect(spec.components.responses.Gone!.description).toContain('`cursor-expired`');
    for (const kind of ['too-many-streams', 'too-many-readers']) expect(spec.components.responses.DeliverUnavailable!.description).toContain(`\`${kind}\``);
  });
});
