// The api role itself (src/roles/api.ts) with ORDO_API_AUTH=token, over aggregates the real
// pipeline wrote: refusals, a subject-scoped portal token narrowed to its own subjects, and a
// token added to the tokens file while the role runs.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { ConfigError } from '../../src/errors.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import { createTopics, deleteTopicsWithPrefix, produce, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { startPipeline, testConfig } from '../support/worker.js';

const kafka = testKafka();
const prefix = uniqueName('api-auth');
const ADMIN = 'ordo_it_admin_6fQm2Zc9VxTn1Lb8RkWd3PsY0hGa7uJe';
const PORTAL = 'ordo_it_portal_Xk2Vb9nQ4cZm7Lr1TsWd8PyH0eGa3uJf';
const LATER = 'ordo_it_later_Bn5Xq2Vc8Zm1Lk7RtWs4PdY9hEa0uGj';
const COUNTS: Record<string, number> = { 'acme': 4, 'globex': 3, 'acme-eu/1': 2 };
let producer: Producer;
let api: ApiRole | undefined;

function tokensFile(entries: [name: string, token: string, subjects?: string[]][]): string {
  return `tokens:\n${entries.map(([name, token, subjects]) => `  - {name: ${name}, sha256: ${sha256Hex(token)}, scopes: [read]${subjects ? `, subjects: ${JSON.stringify(subjects)}` : ''}}\n`).join('')}`;
}

describe('api role with ORDO_API_AUTH=token', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-in`], 2);
  });

  afterAll(async () => {
    await api?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('refuses to start on an invalid tokens file, naming ORDO_API_TOKENS_FILE', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-it-tokens-')), 'tokens.yaml');
    writeFileSync(file, 'tokens:\n  - {name: a, sha256: not-a-hash, scopes: [read]}\n');
    const config = testConfig(prefix, { ORDO_METERS_FILE: 'docs/meters.example.yaml', ORDO_API_AUTH: 'token', ORDO_API_TOKENS_FILE: file, ORDO_API_PORT: '0' });
    const error = await startApiRole(config, { logger: noopLogger, metrics: new OrdoMetrics() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('ORDO_API_TOKENS_FILE');
  });

  it('warns at start when ORDO_API_AUTH=none listens beyond loopback, and not on 127.0.0.1', async () => {
    for (const [host, warned] of [['0.0.0.0', true], ['127.0.0.1', false]] as const) {
      const warnings: string[] = [];
      const logger = { ...noopLogger, warn: (message: string) => void warnings.push(message), child: () => logger };
      const role = await startApiRole(testConfig(`${prefix}-none`, { ORDO_API_HOST: host, ORDO_API_PORT: '0' }), { logger, metrics: new OrdoMetrics() });
      await role.stop();
      expect(warnings.some((w) => w.startsWith('the usage API answers anyone who can reach it')), host).toBe(warned);
    }
  });

  it('answers only with a token, narrows a portal token to its subjects, and takes a new token without a restart', async () => {
    const encode = await usageEventEncoder(`${prefix}-in`);
    const time = Date.now() - 60_000;
    const messages = Object.entries(COUNTS).flatMap(([subject, n]) =>
      Array.from({ length: n }, (_, i) => ({
        key: subject,
        value: encode({ id: `${subject}-${i}`, source: 'gw', type: 'api.request', subject, time, value: '1', dimensions: { http_method: 'GET', route: '/x', user_id: `u${i}` } }),
      })),
    );
    await produce(producer, `${prefix}-in`, messages);
    const settings = { ORDO_METERS_FILE: 'docs/meters.example.yaml', ORDO_ALLOWED_LATENESS_MS: '86400000' };
    const { worker } = await startPipeline(testConfig(prefix, settings));
    await readAll(kafka, `${prefix}-ordered`, messages.length, { timeoutMs: 60_000, settleMs: 500 });
    await worker.stop();

    const file = join(mkdtempSync(join(tmpdir(), 'ordo-it-tokens-')), 'tokens.yaml');
    writeFileSync(file, tokensFile([['admin', ADMIN], ['portal-acme', PORTAL, ['acme', 'acme-eu/*']]]));
    const config = testConfig(prefix, { ...settings, ORDO_API_AUTH: 'token', ORDO_API_TOKENS_FILE: file, ORDO_API_HOST: '127.0.0.1', ORDO_API_PORT: '0' });
    const metrics = new OrdoMetrics();
    api = await startApiRole(config, { logger: noopLogger, metrics });
    await api.caughtUp();
    const day = Math.floor(time / 86_400_000) * 86_400_000;
    const from = new Date(day - 86_400_000).toISOString();
    const to = new Date(day + 2 * 86_400_000).toISOString();
    const url = (query = ''): string => `http://127.0.0.1:${api?.port}/v1/meters/api-requests/usage?from=${from}&to=${to}${query}`;
    const get = async (query: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> => {
      const res = await fetch(url(query), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const totals = (body: Record<string, unknown>): [string | null, number][] => ((body.totals ?? expect.fail(JSON.stringify(body))) as { subject: string | null; count: number }[]).map((r) => [r.subject, r.count]);

    const anonymous = await get('');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ error: { kind: 'unauthenticated' } });
    expect((await get('', LATER)).status).toBe(401);

    expect(totals((await get('&groupBy=subject', ADMIN)).body)).toEqual([['acme', 4], ['acme-eu/1', 2], ['globex', 3]]);
    expect(totals((await get('&groupBy=subject', PORTAL)).body)).toEqual([['acme', 4], ['acme-eu/1', 2]]);
    expect(totals((await get('', PORTAL)).body)).toEqual([[null, 6]]);
    const other = await get('&subject=globex', PORTAL);
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ error: { kind: 'forbidden-subject' } });
    const refused = (await metrics.registry.getSingleMetric('ordo_api_requests_refused_total')?.get())?.values ?? [];
    expect(Object.fromEntries(refused.map((v) => [v.labels.kind, v.value]))).toEqual({ 'unauthenticated': 1, 'invalid-token': 1, 'forbidden-subject': 1 });

    // A token added to the file is accepted within the reload interval (1 s), no restart.
    writeFileSync(file, tokensFile([['admin', ADMIN], ['portal-acme', PORTAL, ['acme', 'acme-eu/*']], ['later', LATER, ['globex']]]));
    const deadline = Date.now() + 10_000;
    let later = await get('', LATER);
    while (later.status === 401 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      later = await get('', LATER);
    }
    expect(later.status).toBe(200);
    expect(totals(later.body)).toEqual([[null, 3]]);
  });
});
