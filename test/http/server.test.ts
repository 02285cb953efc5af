import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HealthSource, startHttpServer } from '../../src/http/server.js';

class FakeHealth implements HealthSource {
  current = 'starting';
  isReady = false;
  isLive = true;
  stuck: { what: string; forMs: number } | undefined;
  state(): string {
    return this.current;
  }
  ready(): boolean {
    return this.isReady;
  }
  live(): boolean {
    return this.isLive;
  }
  detail(): Record<string, unknown> | undefined {
    return this.stuck === undefined ? undefined : { stuck: this.stuck };
  }
}

describe('startHttpServer', () => {
  const health = new FakeHealth();
  const registry = new Registry();
  const counter = new Counter({ name: 'ordo_test_events_total', help: 'Test events.', labelNames: ['topic'], registers: [registry] });
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = await startHttpServer({ port: 0, host: '127.0.0.1', registry, health });
    const { port } = server.address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  });

  it('serves /metrics as Prometheus text', async () => {
    counter.inc({ topic: 'usage-events' }, 3);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(registry.contentType);
    const text = await res.text();
    expect(text).toContain('# HELP ordo_test_events_total Test events.');
    expect(text).toContain('# TYPE ordo_test_events_total counter');
    expect(text).toContain('ordo_test_events_total{topic="usage-events"} 3');
  });

  it('ignores the query string', async () => {
    const res = await fetch(`${base}/metrics?name[]=x`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('ordo_test_events_total');
  });

  it('answers /healthz and /readyz 200 or 503 from the health source, with the state', async () => {
    health.current = 'restoring';
    health.isLive = true;
    health.isReady = false;
    let res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ state: 'restoring' });
    res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ state: 'restoring' });

    health.current = 'running';
    health.isReady = true;
    res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ state: 'running' });

    health.current = 'failed';
    health.isLive = false;
    health.isReady = false;
    res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ state: 'failed' });
  });

  it('fails /healthz of a role that is stuck and says what is stuck', async () => {
    health.current = 'running';
    health.isLive = false;
    health.stuck = { what: 'merge batch (partition 0)', forMs: 130_000 };
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ state: 'running', stuck: { what: 'merge batch (partition 0)', forMs: 130_000 } });
    health.stuck = undefined;
    health.isLive = true;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ state: 'running' });
  });

  it('answers 404 on an unknown path', async () => {
    const res = await fetch(`${base}/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'no route /nope' });
    expect((await fetch(`${base}/`)).status).toBe(404);
  });

  it('answers 405 with Allow: GET to other methods', async () => {
    for (const path of ['/metrics', '/healthz', '/nope']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', body: 'x' });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET');
    }
  });

  it('answers 500 when collecting metrics fails', async () => {
    const failing = new Registry();
    new Counter({
      name: 'ordo_broken_total',
      help: 'Broken collector.',
      registers: [failing],
      collect() {
        throw new Error('collector exploded');
      },
    });
    const other = await startHttpServer({ port: 0, host: '127.0.0.1', registry: failing, health });
    try {
      const { port } = other.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(500);
      expect(await res.text()).toContain('collector exploded');
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it('rejects when the port is taken', async () => {
    const { port } = server.address() as AddressInfo;
    await expect(startHttpServer({ port, host: '127.0.0.1', registry, health })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
