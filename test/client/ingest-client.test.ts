import type { ServerResponse } from 'node:http';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AcceptedEvent,
  type CloudEventJson,
  HybridClock,
  OrdoIngestClient,
  OrdoIngestError,
  encodeConsistencyToken,
  formatServiceTime,
  makeServiceTime,
  parseServiceTime,
} from '../../src/client/index.js';
import { type LocalServer, type SeenRequest, json, localServer } from '../support/local-http.js';

const servers: LocalServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

type Script = (res: ServerResponse, seen: SeenRequest, index: number) => void | Promise<void>;

/** A local server standing in for the ingest role: `script` answers, `accept` is the 202 it would give. */
async function ingest(script: Script): Promise<LocalServer> {
  const server = await localServer((_req, res, seen, index) => script(res, seen, index));
  servers.push(server);
  return server;
}

let offset = 0;
function accept(res: ServerResponse, seen: SeenRequest, headers: Record<string, string> = {}): void {
  const events = JSON.parse(seen.body) as CloudEventJson[];
  json(
    res,
    202,
    {
      events: events.map((e) => {
        const position = { topic: 'usage-events', partition: 0, offset: String((offset += 1)) };
        return { id: e.id, source: e.source, serviceTime: formatServiceTime(makeServiceTime(Date.now(), 0)), ...position, token: encodeConsistencyToken(position) };
      }),
    },
    headers,
  );
}

const event = (subject = 'acme', extra: object = {}) => ({ source: '//test', type: 'api-call', subject, data: { value: '1' }, ...extra });
const sentEvents = (seen: SeenRequest) => JSON.parse(seen.body) as CloudEventJson[];
const fast = { maxAttempts: 4, initialDelayMs: 5, maxDelayMs: 20 };

describe('OrdoIngestClient.send', () => {
  it('posts one CloudEvents batch to /v1/events with ids and times filled in, the bearer token, and returns the accepted events', async () => {
    const server = await ingest((res, seen) => accept(res, seen));
    const client = new OrdoIngestClient({ url: `${server.url}/base`, token: () => 'tok-1' });
    const at = new Date('2026-11-30T10:00:00.000Z');
    const { events } = await client.send([event('acme', { id: 'e-1', time: at }), event('globex')]);
    expect(server.requests).toHaveLength(1);
    const [req] = server.requests;
    expect(req!.method).toBe('POST');
    expect(req!.path).toBe('/base/v1/events');
    expect(req!.headers['content-type']).toBe('application/cloudevents-batch+json');
    expect(req!.headers.authorization).toBe('Bearer tok-1');
    expect(req!.headers['service-time']).toBeUndefined(); // no clock: the ingest role stamps on arrival
    const sent = sentEvents(req!);
    expect(sent[0]).toEqual({ specversion: '1.0', id: 'e-1', source: '//test', type: 'api-call', subject: 'acme', time: at.toISOString(), datacontenttype: 'application/json', data: { value: '1' } });
    expect(sent[1]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Date.parse(sent[1]!.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(events.map((e) => e.id)).toEqual(['e-1', sent[1]!.id]);
    expect(events[0]!.token).toMatch(/^c1\./);
  });

  it('sends no request for no events', async () => {
    const server = await ingest((res, seen) => accept(res, seen));
    await expect(new OrdoIngestClient({ url: server.url }).send([])).resolves.toEqual({ events: [] });
    expect(server.requests).toHaveLength(0);
  });

  it.each([400, 401, 403, 408, 409, 413, 415, 429])('never retries a %i, and types the error', async (status) => {
    const server = await ingest((res) =>
      json(res, status, { error: { kind: `kind-${status}`, message: 'no', items: status === 400 ? [{ index: 1, kind: 'invalid-value', message: 'value "1e3" has an exponent' }] : undefined } }, { 'retry-after': '0' }),
    );
    const client = new OrdoIngestClient({ url: server.url, retry: fast });
    const error = await client.send([event('a', { id: 'x' }), event('b', { id: 'y' })]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrdoIngestError);
    expect(error).toMatchObject({ status, kind: `kind-${status}`, attempts: 1, retriable: false, code: 'ORDO_INGEST' });
    expect((error as OrdoIngestError).items).toEqual(status === 400 ? [{ index: 1, id: 'y', kind: 'invalid-value', message: 'value "1e3" has an exponent' }] : []);
    expect(server.requests).toHaveLength(1);
  });

  it('retries 5xx answers with the same body, ids and service-time, then returns the 202', async () => {
    const server = await ingest((res, seen, index) => (index < 3 ? json(res, [500, 502, 503][index]!, { error: { kind: 'unavailable', message: 'broker down' } }) : accept(res, seen)));
    const clock = new HybridClock({ node: 'svc-a' });
    const client = new OrdoIngestClient({ url: server.url, clock, retry: fast });
    const { events } = await client.send([event('a'), event('b')]);
    expect(server.requests).toHaveLength(4);
    const bodies = new Set(server.requests.map((r) => r.body));
    expect(bodies.size).toBe(1);
    expect(new Set(server.requests.map((r) => r.headers['service-time'])).size).toBe(1);
    expect(server.requests[0]!.headers['service-node']).toBe('svc-a');
    expect(events.map((e) => e.id)).toEqual(sentEvents(server.requests[0]!).map((e) => e.id));
  });

  it('for any sequence of answers: retries exactly the 5xx, up to maxAttempts, always with the same body; ends as the first other answer says', async () => {
    let script: number[] = [];
    let firstOfRun = 0;
    const server = await ingest((res, seen, index) => {
      const status = script[index - firstOfRun] ?? 202;
      if (status === 202) accept(res, seen);
      else json(res, status, { error: { kind: `k${status}`, message: 'scripted' } });
    });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom(500, 502, 503, 504, 400, 404, 409, 202), { maxLength: 6 }), fc.integer({ min: 1, max: 5 }), async (statuses, maxAttempts) => {
        script = statuses;
        firstOfRun = server.requests.length;
        const client = new OrdoIngestClient({ url: server.url, retry: { maxAttempts, initialDelayMs: 1, maxDelayMs: 2 } });
        const outcome = await client.send([event('a'), event('b')]).then(
          (answer) => ({ status: 202, ids: answer.events.map((e) => e.id) }),
          (error: OrdoIngestError) => ({ status: error.status, retriable: error.retriable, attempts: error.attempts }),
        );
        const seen = server.requests.slice(firstOfRun);
        const final = [...statuses, 202].findIndex((s) => s < 500); // the first answer that is not a 5xx
        const attempts = Math.min(final + 1, maxAttempts);
        expect(seen).toHaveLength(attempts);
        expect(new Set(seen.map((r) => r.body)).size).toBe(1);
        const last = [...statuses, 202][attempts - 1]!;
        if (last === 202) expect(outcome).toEqual({ status: 202, ids: sentEvents(seen[0]!).map((e) => e.id) });
        else expect(outcome).toEqual({ status: last, retriable: last >= 500, attempts });
      }),
      { numRuns: 40 },
    );
  });

  it('honours Retry-After on a 503 instead of its short backoff', async () => {
    const server = await ingest((res, seen, index) => (index === 0 ? json(res, 503, { error: { kind: 'unavailable', message: 'registry down' } }, { 'retry-after': '1' }) : accept(res, seen)));
    const client = new OrdoIngestClient({ url: server.url, retry: { initialDelayMs: 1, maxDelayMs: 1 } });
    await client.send(event());
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(990);
    expect(second!.at - first!.at).toBeLessThan(3_000);
  });

  it('gives up after maxAttempts with a retriable error carrying the last status', async () => {
    const server = await ingest((res) => json(res, 503, { error: { kind: 'unavailable', message: 'broker down' } }));
    const client = new OrdoIngestClient({ url: server.url, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 } });
    await expect(client.send(event())).rejects.toMatchObject({ status: 503, kind: 'unavailable', attempts: 3, retriable: true });
    expect(server.requests).toHaveLength(3);
  });

  it('retries a dropped connection and an attempt that timed out, with the same ids', async () => {
    const server = await ingest((res, seen, index) => {
      if (index === 0) res.socket?.destroy(); // no answer at all
      else if (index === 1) return; // never answers: the attempt times out
      else accept(res, seen);
    });
    const client = new OrdoIngestClient({ url: server.url, timeoutMs: 300, retry: fast });
    const { events } = await client.send([event()]);
    expect(server.requests).toHaveLength(3);
    expect(new Set(server.requests.map((r) => r.body)).size).toBe(1);
    expect(events[0]!.id).toBe(sentEvents(server.requests[0]!)[0]!.id);
  });

  it('reports a connection refused after the retries as kind network', async () => {
    const server = await ingest(() => undefined);
    await server.close();
    servers.length = 0;
    const client = new OrdoIngestClient({ url: server.url, retry: { maxAttempts: 2, initialDelayMs: 1 } });
    await expect(client.send(event())).rejects.toMatchObject({ kind: 'network', status: undefined, attempts: 2, retriable: true });
  });

  it('an answer that is not the accepted events is bad-response, not retried', async () => {
    const server = await ingest((res) => json(res, 202, { events: [{ id: 'someone-else', source: '//x', serviceTime: '0000000000000001', partition: 0, offset: '1', token: 't' }] }));
    const client = new OrdoIngestClient({ url: server.url, retry: fast });
    await expect(client.send(event())).rejects.toMatchObject({ kind: 'bad-response', status: 202, attempts: 1 });
    expect(server.requests).toHaveLength(1);
  });

  it('stops retrying when the caller aborts', async () => {
    const server = await ingest((res) => json(res, 503, { error: { kind: 'unavailable', message: 'x' } }, { 'retry-after': '30' }));
    const client = new OrdoIngestClient({ url: server.url });
    const controller = new AbortController();
    const sending = client.send(event(), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller gave up')), 200);
    await expect(sending).rejects.toThrow('caller gave up');
    expect(server.requests).toHaveLength(1);
  });

  it('with a clock: sends a stamp above what the clock saw, and receives the answer', async () => {
    const answer = makeServiceTime(Date.now() + 200, 42);
    const server = await ingest((res, seen) => accept(res, seen, { 'service-time': formatServiceTime(answer), 'service-node': 'ordo-ingest' }));
    const clock = new HybridClock({ node: 'svc-a' });
    const before = clock.now();
    const client = new OrdoIngestClient({ url: server.url, clock });
    await client.send(event());
    expect(parseServiceTime(server.requests[0]!.headers['service-time'] as string)).toBeGreaterThan(before);
    expect(clock.last).toBe(answer + 1n);
  });
});

describe('OrdoIngestClient.enqueue / flush', () => {
  it('batches by maxBatchEvents, in enqueue order, one request at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const server = await ingest(async (res, seen) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight -= 1;
      accept(res, seen);
    });
    const client = new OrdoIngestClient({ url: server.url, maxBatchEvents: 3, maxDelayMs: 10_000 });
    const promises = Array.from({ length: 7 }, (_, i) => client.enqueue(event(`s${i}`, { id: `e${i}` })));
    await client.flush();
    const accepted: AcceptedEvent[] = await Promise.all(promises);
    expect(accepted.map((a) => a.id)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
    expect(server.requests.map((r) => sentEvents(r).map((e) => e.id))).toEqual([['e0', 'e1', 'e2'], ['e3', 'e4', 'e5'], ['e6']]);
    expect(maxInFlight).toBe(1);
  });

  it('splits by maxBatchBytes', async () => {
    const server = await ingest((res, seen) => accept(res, seen));
    const client = new OrdoIngestClient({ url: server.url, maxBatchBytes: 600, maxDelayMs: 10_000 });
    const big = { dimensions: { pad: 'x'.repeat(200) }, value: '1' };
    for (let i = 0; i < 5; i += 1) void client.enqueue(event('s', { data: big }));
    await client.flush();
    for (const r of server.requests) expect(Buffer.byteLength(r.body)).toBeLessThanOrEqual(600);
    expect(server.requests.flatMap(sentEvents)).toHaveLength(5);
    expect(server.requests.length).toBeGreaterThan(1);
  });

  it('sends a lone event after maxDelayMs without a flush', async () => {
    const server = await ingest((res, seen) => accept(res, seen));
    const client = new OrdoIngestClient({ url: server.url, maxDelayMs: 30 });
    const started = performance.now();
    const accepted = await client.enqueue(event('s', { id: 'alone' }));
    expect(accepted.id).toBe('alone');
    expect(server.requests[0]!.at - started).toBeGreaterThanOrEqual(25);
  });

  it('refuses only the events a 400 names and sends the rest of the batch again; flush reports the refusal', async () => {
    const server = await ingest((res, seen) => {
      const events = sentEvents(seen);
      const bad = events.flatMap((e, index) => (e.subject === 'bad' ? [{ index, kind: 'invalid-event', message: 'subject is bad' }] : []));
      if (bad.length > 0) json(res, 400, { error: { kind: 'invalid-event', message: `${bad.length} invalid`, items: bad } });
      else accept(res, seen);
    });
    const client = new OrdoIngestClient({ url: server.url, maxDelayMs: 10_000 });
    const ok1 = client.enqueue(event('good', { id: 'g1' }));
    const bad = client.enqueue(event('bad', { id: 'b1' }));
    const ok2 = client.enqueue(event('good', { id: 'g2' }));
    const flushed = await client.flush().catch((e: unknown) => e);
    expect(flushed).toBeInstanceOf(OrdoIngestError);
    expect(await bad.catch((e: unknown) => e)).toMatchObject({ status: 400, kind: 'invalid-event', items: [{ index: 1, id: 'b1', kind: 'invalid-event' }] });
    expect((await ok1).id).toBe('g1');
    expect((await ok2).id).toBe('g2');
    expect(server.requests.map((r) => sentEvents(r).map((e) => e.id))).toEqual([['g1', 'b1', 'g2'], ['g1', 'g2']]);
    await expect(client.flush()).resolves.toBeUndefined(); // reported once
  });

  it('close() flushes, then refuses new events', async () => {
    const server = await ingest((res, seen) => accept(res, seen));
    const client = new OrdoIngestClient({ url: server.url, maxDelayMs: 10_000 });
    const pending = client.enqueue(event());
    await client.close();
    expect((await pending).token).toMatch(/^c1\./);
    await expect(client.enqueue(event())).rejects.toMatchObject({ kind: 'closed' });
  });

  it('validates its options', () => {
    expect(() => new OrdoIngestClient({ url: 'http://x', maxBatchEvents: 0 })).toThrow(/maxBatchEvents/);
    expect(() => new OrdoIngestClient({ url: 'http://x', timeoutMs: 1.5 })).toThrow(/timeoutMs/);
    expect(() => new OrdoIngestClient({ url: 'not a url' })).toThrow();
  });
});

describe('OrdoIngestClient.enqueue backpressure', () => {
  it('refuses at once (queue-full, retriable) beyond maxPendingEvents while the ingest does not answer, and takes events again once they settle', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const server = await ingest(async (res, seen) => {
      await held;
      accept(res, seen);
    });
    const client = new OrdoIngestClient({ url: server.url, maxBatchEvents: 1, maxDelayMs: 0, maxPendingEvents: 3 });
    const pending = [client.enqueue(event('a')), client.enqueue(event('b')), client.enqueue(event('c'))];
    const refused = await client.enqueue(event('d')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OrdoIngestError);
    expect(refused).toMatchObject({ kind: 'queue-full', retriable: true, attempts: 0 });
    release!();
    expect(await Promise.all(pending)).toHaveLength(3);
    await expect(client.enqueue(event('e'))).resolves.toMatchObject({ source: '//test' });
    await client.close();
  });
});
