import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  /** Lifecycle state name, e.g. "running". */
  state(): string;
  ready(): boolean;
  /** False when the role failed or is stuck (src/engine/liveness.ts): Kubernetes restarts it. */
  live(): boolean;
  /** What is stuck, added to the /healthz and /readyz body, e.g. {"stuck":{"what":"batch (partition 3)","forMs":130000}}. */
  detail?(): Record<string, unknown> | undefined;
}

/** /metrics (Prometheus text), /healthz (liveness), /readyz (readiness). */
export function startHttpServer(options: { port: number; host?: string; registry: Registry; health: HealthSource }): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error)),
      );
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? options.health.live() : options.health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ state: options.health.state(), ...options.health.detail?.() }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${path}` }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve(server));
  });
}
