import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  HybridClock,
  type NextFunction,
  formatServiceTime,
  makeServiceTime,
  parseServiceTime,
  receivedTimeContext,
  serviceTimeMiddleware,
  withServiceTime,
  withServiceTimeHandler,
} from '../../src/client/index.js';
import { type LocalServer, listen } from '../support/local-http.js';

const servers: LocalServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => unknown): Promise<LocalServer> {
  const server = await listen((req, res) => void handler(req, res));
  servers.push(server);
  return server;
}

function skewedClock(node: string, offsetMs: number): HybridClock {
  return new HybridClock({ node, physical: { now: () => Date.now() + offsetMs } });
}

describe('withServiceTimeHandler / serviceTimeMiddleware', () => {
  it('receives the inbound time before the handler runs and answers with a stamp above it', async () => {
    const clock = skewedClock('svc-b', 0);
    const remote = makeServiceTime(Date.now() + 300, 9); // ahead, within the 500 ms bound
    let inHandler: bigint | undefined;
    const server = await serve(
      withServiceTimeHandler(clock, (req, res) => {
        inHandler = clock.last;
        res.end(JSON.stringify({ node: receivedTimeContext(req)?.node }));
      }),
    );
    const response = await fetch(server.url, { headers: { 'service-time': formatServiceTime(remote), 'service-node': 'svc-a' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ node: 'svc-a' });
    expect(inHandler).toBe(remote + 1n);
    expect(parseServiceTime(response.headers.get('service-time')!)).toBeGreaterThan(remote + 1n);
    expect(response.headers.get('service-node')).toBe('svc-b');
  });

  it('stamps the answer when its headers are written: above what the handler received from its own downstream calls', async () => {
    const downstream = skewedClock('svc-c', 400); // runs 400 ms ahead
    const c = await serve(withServiceTimeHandler(downstream, (_req, res) => res.end('c')));
    const clock = skewedClock('svc-b', 0);
    const fetchT = withServiceTime(fetch, clock);
    let fromC = 0n;
    const b = await serve(
      withServiceTimeHandler(clock, async (_req, res) => {
        const answer = await fetchT(c.url);
        fromC = parseServiceTime(answer.headers.get('service-time')!);
        res.writeHead(201, { 'x-from-c': await answer.text() });
        res.end();
      }),
    );
    const response = await fetch(b.url);
    expect(response.status).toBe(201);
    expect(response.headers.get('x-from-c')).toBe('c');
    expect(fromC).toBeGreaterThan(0n);
    expect(parseServiceTime(response.headers.get('service-time')!)).toBeGreaterThan(fromC);
  });

  it('answers 400 bad-service-time for a malformed context, without running the handler or moving the clock', async () => {
    const clock = skewedClock('svc-b', 0);
    let ran = 0;
    const server = await serve(
      withServiceTimeHandler(clock, (_req, res) => {
        ran += 1;
        res.end();
      }),
    );
    const cases: [string, string][][] = [
      [['service-time', 'ABCDEF0123456789']],
      [['service-time', '123']],
      [['service-node', 'only-a-node']],
      [
        ['service-time', formatServiceTime(makeServiceTime(Date.now(), 0))],
        ['service-time', formatServiceTime(makeServiceTime(Date.now(), 1))],
      ],
    ];
    for (const headers of cases) {
      const before = clock.last;
      const response = await fetch(server.url, { method: 'POST', headers, body: 'ignored' });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toBe('application/json');
      const body = (await response.json()) as { error: { kind: string; message: string } };
      expect(body.error.kind).toBe('bad-service-time');
      expect(body.error.message).toMatch(/service-(time|node)/);
      // The refusal's own stamp is the only thing that moved the clock: a send event, nothing adopted.
      expect(parseServiceTime(response.headers.get('service-time')!)).toBe(clock.last);
      expect(clock.last).toBeGreaterThan(before);
    }
    expect(ran).toBe(0);
  });

  it('answers 400 clock-skew for a time beyond the bound, and does not adopt it', async () => {
    const clock = skewedClock('svc-b', 0);
    const server = await serve(withServiceTimeHandler(clock, (_req, res) => res.end()));
    const ahead = makeServiceTime(Date.now() + 5_000, 0);
    const response = await fetch(server.url, { headers: { 'service-time': formatServiceTime(ahead), 'service-node': 'fast' } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { kind: string } }).error.kind).toBe('clock-skew');
    expect(clock.last).toBeLessThan(ahead);
  });

  it('works as (req, res, next) in a chain, and passes an unexpected error to next', async () => {
    const clock = skewedClock('svc-b', 0);
    const middleware = serviceTimeMiddleware(clock);
    const chain = (req: IncomingMessage, res: ServerResponse): void => {
      const next: NextFunction = (error) => {
        if (error !== undefined) {
          res.statusCode = 500;
          res.end((error as Error).message);
        } else res.end(`after ${formatServiceTime(receivedTimeContext(req)?.time ?? 0n)}`);
      };
      middleware(req, res, next);
    };
    const server = await serve(chain);
    const t = makeServiceTime(Date.now() - 1_000, 3);
    const response = await fetch(server.url, { headers: { 'service-time': formatServiceTime(t) } });
    expect(await response.text()).toBe(`after ${formatServiceTime(t)}`);

    // A clock that cannot issue (exhausted) is a programmer error: next(error), not a 400.
    const broken = new HybridClock({ node: 'x', initial: (1n << 64n) - 1n });
    const next: unknown[] = [];
    const fakeRes = { writeHead: () => undefined, headersSent: false } as unknown as ServerResponse;
    serviceTimeMiddleware(broken)({ headers: { 'service-time': formatServiceTime(t) } } as unknown as IncomingMessage, fakeRes, (e) => next.push(e));
    expect(next[0]).toBeInstanceOf(RangeError);
  });
});
