import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DELIVER_ROUTES } from '../../src/deliver/server.js';
import { CORRECTION_ROUTES, INGEST_ROUTES } from '../../src/ingest/server.js';
import { receiptRoutes } from '../../src/receipts/routes.js';
import { replayRoutes } from '../../src/replay/replay-routes.js';
import { deletionRoutes } from '../../src/deletion/deletion-api.js';
import { USAGE_PARAMETERS } from '../../src/api/query-params.js';
import { usagePartsRoutes } from '../../src/api/fan-out.js';
import { ReadModel } from '../../src/api/read-model.js';
import { noAuthentication } from '../../src/auth/authenticator.js';
import { API_ROUTES, type ApiServer, type Freshness, type MeterView, type UsageResponse, startApiServer } from '../../src/api/server.js';
import type { LogMeta, Logger } from '../../src/observability/logger.js';
import { type AggregateCoordinates, type UsageAggregate, addMeasurement, aggregateKey } from '../../src/usage/aggregation.js';
import { Decimal } from '../../src/usage/decimal.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { windowEnd, windowStart } from '../../src/usage/windows.js';

const HOUR = 3_600_000;
const NOV_1 = Date.UTC(2026, 10, 1);

const tokens: Meter = {
  slug: 'llm-tokens',
  description: 'Tokens used by LLM completions',
  eventTypes: ['llm.completion'],
  aggregation: 'SUM',
  valueProperty: { kind: 'value' },
  groupBy: { model: 'model' },
  windows: ['HOUR', 'DAY', 'MONTH'],
};
const requests: Meter = {
  slug: 'api-requests',
  description: undefined,
  eventTypes: ['api.request', 'api.batch'],
  aggregation: 'COUNT',
  valueProperty: undefined,
  groupBy: {},
  windows: ['MINUTE', 'HOUR'],
};
const users: Meter = {
  slug: 'active-users',
  description: undefined,
  eventTypes: ['api.request'],
  aggregation: 'UNIQUE_COUNT',
  valueProperty: { kind: 'dimension', name: 'user' },
  groupBy: {},
  windows: ['DAY'],
};
const meters = new MeterCatalog([tokens, requests, users]);

/** 3 events for acme (two models) and one for globex in the first hour of Nov 1, one more an hour later. */
function readModel(): ReadModel {
  const model = new ReadModel(meters);
  const latest = new Map<string, UsageAggregate>();
  const events: [string, string, string, number][] = [
    ['acme', 'gpt', '10.5', NOV_1 + 1_000],
    ['acme', 'claude', '4', NOV_1 + 2_000],
    ['acme', 'gpt', '0.25', NOV_1 + 3_000],
    ['globex', 'gpt', '100', NOV_1 + 4_000],
    ['acme', 'gpt', '1', NOV_1 + HOUR + 1_000],
  ];
  for (const [i, [subject, group, value, time]] of events.entries()) {
    for (const size of tokens.windows) {
      const start = windowStart(time, size);
      const at: AggregateCoordinates = {
        meter: tokens.slug,
        aggregation: 'SUM',
        subject,
        groupBy: { model: group },
        windowSize: size,
        windowStart: start,
        windowEnd: windowEnd(start, size),
      };
      const key = aggregateKey(at);
      const next = addMeasurement(latest.get(key), at, { value: Decimal.parse(value), newMember: false, eventTime: time, orderTime: BigInt(i), orderNode: 'n' });
      latest.set(key, next);
      model.apply(key, next);
    }
  }
  return model;
}

interface ErrorBody {
  error: { kind: string; message: string };
}

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, unknown> & { get?: { parameters: { name: string }[] } }>;
  components: { schemas: Record<string, unknown> };
}

class RecordingLogger implements Logger {
  readonly errors: { message: string; meta: LogMeta | undefined }[] = [];
  debug(): void {}
  info(): void {}
  warn(): void {}
  error(message: string, meta?: LogMeta): void {
    this.errors.push({ message, meta });
  }
  child(): Logger {
    return this;
  }
}

describe('startApiServer', () => {
  const freshness: Freshness = { caughtUp: true, lagRecords: 0, partitions: [{ partition: 0, appliedOffset: '25', endOffset: '25' }] };
  let currentFreshness: () => Freshness = () => freshness;
  const logger = new RecordingLogger();
  const model = readModel();
  let server: ApiServer;
  let base: string;

  beforeAll(async () => {
    server = await startApiServer({ port: 0, host: '127.0.0.1', meters, readModel: model, freshness: () => currentFreshness(), auth: noAuthentication, logger });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.close();
  });

  async function get<T = ErrorBody>(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: T }> {
    const res = await fetch(`${base}${path}`, init);
    expect(res.headers.get('content-type')).toBe('application/json');
    return { status: res.status, headers: res.headers, body: (await res.json()) as T };
  }

  it('listens on the ephemeral port it reports', () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it('lists the meters', async () => {
    const { status, body } = await get<{ meters: MeterView[] }>('/v1/meters');
    expect(status).toBe(200);
    expect(body).toEqual({
      meters: [
        {
          slug: 'llm-tokens',
          description: 'Tokens used by LLM completions',
          eventTypes: ['llm.completion'],
          aggregation: 'SUM',
          valueProperty: 'value',
          groupBy: { model: 'model' },
          windows: ['HOUR', 'DAY', 'MONTH'],
        },
        {
          slug: 'api-requests',
          description: null,
          eventTypes: ['api.request', 'api.batch'],
          aggregation: 'COUNT',
          valueProperty: null,
          groupBy: {},
          windows: ['MINUTE', 'HOUR'],
        },
        {
          slug: 'active-users',
          description: null,
          eventTypes: ['api.request'],
          aggregation: 'UNIQUE_COUNT',
          valueProperty: 'dimensions.user',
          groupBy: {},
          windows: ['DAY'],
        },
      ],
    });
  });

  it('shows one meter, with a URL-encoded slug too', async () => {
    const list = (await get<{ meters: MeterView[] }>('/v1/meters')).body.meters;
    expect((await get<MeterView>('/v1/meters/active-users')).body).toEqual(list[2]);
    const { status, body } = await get<MeterView>('/v1/meters/llm%2Dtokens');
    expect(status).toBe(200);
    expect(body).toEqual(list[0]);
  });

  it('answers 404 unknown-meter for a meter that is not configured', async () => {
    for (const path of ['/v1/meters/nope', '/v1/meters/nope/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z']) {
      const { status, body } = await get(path);
      expect(status).toBe(404);
      expect(body).toEqual({ error: { kind: 'unknown-meter', message: expect.stringContaining('"nope"') } });
      expect(body.error.message).toContain('llm-tokens, api-requests, active-users');
    }
  });

  it('answers usage queries from the read model, with freshness', async () => {
    const { status, body } = await get<UsageResponse>(
      '/v1/meters/llm-tokens/usage?from=2026-11-01T00:00:00Z&to=2026-11-01T02:00:00Z&windowSize=HOUR&groupBy=subject&filter[model]=gpt',
    );
    expect(status).toBe(200);
    expect(body).toEqual({
      meter: 'llm-tokens',
      aggregation: 'SUM',
      from: '2026-11-01T00:00:00.000Z',
      to: '2026-11-01T02:00:00.000Z',
      windowSize: 'HOUR',
      windowTimeZone: 'UTC',
      groupBy: ['subject'],
      data: [
        { windowStart: '2026-11-01T00:00:00.000Z', windowEnd: '2026-11-01T01:00:00.000Z', subject: 'acme', groupBy: {}, value: '10.75', count: 2 },
        { windowStart: '2026-11-01T00:00:00.000Z', windowEnd: '2026-11-01T01:00:00.000Z', subject: 'globex', groupBy: {}, value: '100', count: 1 },
        { windowStart: '2026-11-01T01:00:00.000Z', windowEnd: '2026-11-01T02:00:00.000Z', subject: 'acme', groupBy: {}, value: '1', count: 1 },
      ],
      totals: [
        { windowStart: null, windowEnd: null, subject: 'acme', groupBy: {}, value: '11.75', count: 3 },
        { windowStart: null, windowEnd: null, subject: 'globex', groupBy: {}, value: '100', count: 1 },
      ],
      windowsRead: 2,
      freshness,
    });
  });

  it('reads a whole day as one stored window', async () => {
    const { body } = await get<UsageResponse>('/v1/meters/llm-tokens/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&subject=acme&groupBy=model');
    expect(body.windowsRead).toBe(1);
    expect(body.data).toEqual([
      { windowStart: '2026-11-01T00:00:00.000Z', windowEnd: '2026-11-02T00:00:00.000Z', subject: null, groupBy: { model: 'claude' }, value: '4', count: 1 },
      { windowStart: '2026-11-01T00:00:00.000Z', windowEnd: '2026-11-02T00:00:00.000Z', subject: null, groupBy: { model: 'gpt' }, value: '11.75', count: 3 },
    ]);
  });

  it('answers 400 with the error shape for bad parameters and inexact queries', async () => {
    const cases: [string, string, string][] = [
      ['/v1/meters/llm-tokens/usage?from=2026-11-01&to=2026-11-02T00:00:00Z', 'bad-parameter', '"2026-11-01"'],
      ['/v1/meters/llm-tokens/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&colour=red', 'bad-parameter', '"colour"'],
      ['/v1/meters/llm-tokens/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&groupBy=region', 'bad-parameter', 'subject, model'],
      ['/v1/meters/llm-tokens/usage?from=2026-11-01T00:30:00Z&to=2026-11-02T00:30:00Z&windowSize=DAY&windowTimeZone=Asia/Kolkata', 'bad-parameter', 'is not the start of a DAY'],
      ['/v1/meters/llm-tokens/usage?from=2026-10-31T18:30:00Z&to=2026-11-01T18:30:00Z&windowSize=DAY&windowTimeZone=Asia/Kolkata', 'not-exact', 'HOUR'],
      ['/v1/meters/active-users/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z', 'not-exact', 'subject'],
      ['/v1/meters/api-requests/usage?from=2025-11-01T00:00:00Z&to=2026-11-01T00:00:00Z&windowSize=MINUTE', 'too-many-windows', 'shorter range'],
      ['/v1/meters/%E0%A4%A/usage', 'bad-parameter', 'percent-encoding'],
    ];
    for (const [path, kind, fragment] of cases) {
      const { status, body } = await get(path);
      expect(status, path).toBe(400);
      expect(Object.keys(body)).toEqual(['error']);
      expect(Object.keys(body.error)).toEqual(['kind', 'message']);
      expect(body.error.kind, path).toBe(kind);
      expect(body.error.message, path).toContain(fragment);
    }
  });

  it('answers 404 not-found for unknown paths', async () => {
    for (const path of ['/', '/v1', '/v1/meters/', '/v1/meters/llm-tokens/usage/x', '/v1/meters/llm-tokens/other', '/metrics']) {
      const { status, body } = await get(path);
      expect(status, path).toBe(404);
      expect(body.error.kind).toBe('not-found');
    }
  });

  it('answers 405 with Allow: GET to other methods', async () => {
    for (const path of ['/v1/meters', '/v1/meters/llm-tokens', '/v1/meters/llm-tokens/usage']) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const { status, headers, body } = await get(path, { method, body: method === 'DELETE' ? undefined : '{}' });
        expect(status).toBe(405);
        expect(headers.get('allow')).toBe('GET');
        expect(body.error.kind).toBe('method-not-allowed');
      }
    }
  });

  it('answers 500 internal without details on an unexpected failure, and logs it', async () => {
    currentFreshness = () => {
      throw new TypeError('secret details');
    };
    try {
      const { status, body } = await get('/v1/meters/llm-tokens/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z');
      expect(status).toBe(500);
      expect(body).toEqual({ error: { kind: 'internal', message: expect.any(String) } });
      expect(JSON.stringify(body)).not.toContain('secret');
      expect(logger.errors).toHaveLength(1);
      expect(logger.errors[0]?.meta?.error).toBeInstanceOf(TypeError);
    } finally {
      currentFreshness = () => freshness;
    }
  });
});

describe('docs/openapi.yaml', () => {
  const spec = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8')) as OpenApi;

  it('is OpenAPI 3.1 and describes exactly the routes the servers serve: GET on the usage API, POST on the ingest, the deliver routes with theirs', () => {
    // The api role's routes beyond usage (receipts, replay, deletion), as the role builds them.
    const extra = [...receiptRoutes({} as never), ...replayRoutes({} as never), ...deletionRoutes({} as never), ...usagePartsRoutes({} as never)];
    const extraPaths = [...new Set(extra.map((r) => r.path))];
    expect(spec.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(spec.paths).sort()).toEqual([...API_ROUTES, ...extraPaths, ...INGEST_ROUTES, ...CORRECTION_ROUTES, ...Object.keys(DELIVER_ROUTES)].sort());
    const methods = (route: string): string[] => Object.keys(spec.paths[route] ?? {}).filter((k) => k !== 'parameters' && k !== 'servers');
    for (const route of API_ROUTES) expect(methods(route), route).toEqual(['get']);
    for (const path of extraPaths) expect(methods(path).sort(), path).toEqual(extra.filter((r) => r.path === path).map((r) => r.method.toLowerCase()).sort());
    for (const route of [...INGEST_ROUTES, ...CORRECTION_ROUTES]) expect(methods(route), route).toEqual(['post']);
    for (const [route, method] of Object.entries(DELIVER_ROUTES)) expect(methods(route), route).toEqual([method.toLowerCase()]);
  });

  it('documents every usage parameter and the shared schemas', () => {
    const names = spec.paths['/v1/meters/{slug}/usage']?.get?.parameters.map((p) => p.name) ?? [];
    expect(names.sort()).toEqual(USAGE_PARAMETERS.map((p) => p.replace('[<group>]', '')).sort());
    for (const schema of ['MeterView', 'UsageAnswer', 'UsageRow', 'Freshness', 'Error']) expect(spec.components.schemas).toHaveProperty(schema);
  });

  it('resolves every $ref', () => {
    const refs = JSON.stringify(spec).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const path = ref.slice('"$ref":"#/'.length, -1).split('/');
      let node: unknown = spec;
      for (const segment of path) node = (node as Record<string, unknown> | undefined)?.[segment];
      expect(node, ref).toBeDefined();
    }
  });
});
