import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsistencyOutcome } from '../../src/api/consistency.js';
import { ReadModel } from '../../src/api/read-model.js';
import { type ApiServer, type Freshness, type UsageResponse, startApiServer } from '../../src/api/server.js';
import { noAuthentication } from '../../src/auth/authenticator.js';
import { type InputPosition, encodeConsistencyToken } from '../../src/model/consistency-token.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';

const meter: Meter = {
  slug: 'api-requests',
  description: undefined,
  eventTypes: ['api.request'],
  aggregation: 'COUNT',
  valueProperty: undefined,
  groupBy: {},
  windows: ['HOUR'],
};
const RANGE = 'from=2026-11-01T00:00:00Z&to=2026-11-01T02:00:00Z';
const INPUT = 'usage-events';
const freshness: Freshness = { caughtUp: false, lagRecords: 3, partitions: [{ partition: 0, appliedOffset: '7', endOffset: '10' }] };

interface ErrorBody {
  error: { kind: string; message: string; freshness?: Freshness; awaiting?: unknown[] };
}

describe('GET /v1/meters/{slug}/usage?consistentWith=<token>', () => {
  const asked: { positions: readonly InputPosition[]; timeoutMs: number }[] = [];
  let answer: ConsistencyOutcome = { consistent: true };
  let server: ApiServer;
  let bare: ApiServer;

  beforeAll(async () => {
    const common = { port: 0, host: '127.0.0.1', meters: new MeterCatalog([meter]), readModel: new ReadModel(new MeterCatalog([meter])), freshness: () => freshness, auth: noAuthentication };
    server = await startApiServer({
      ...common,
      consistency: {
        inputTopic: INPUT,
        waitMs: 1234,
        wait: (positions, timeoutMs) => {
          asked.push({ positions, timeoutMs });
          return Promise.resolve(answer);
        },
      },
    });
    bare = await startApiServer(common);
  });

  afterAll(async () => {
    await server.close();
    await bare.close();
  });

  async function get<T = ErrorBody>(query: string, on = server): Promise<{ status: number; headers: Headers; body: T }> {
    const res = await fetch(`http://127.0.0.1:${on.port}/v1/meters/api-requests/usage?${RANGE}${query}`);
    return { status: res.status, headers: res.headers, body: (await res.json()) as T };
  }

  const token = (partition: number, offset: string, topic = INPUT) => encodeConsistencyToken({ topic, partition, offset });

  it('waits for the positions of every token (repeatable, deduplicated) within the bound, and says which tokens the answer is consistent with', async () => {
    answer = { consistent: true };
    asked.length = 0;
    const a = token(0, '5');
    const b = token(2, '9');
    const res = await get<UsageResponse>(`&consistentWith=${a}&consistentWith=${b}&consistentWith=${a}`);
    expect(res.status).toBe(200);
    expect(res.body.consistentWith).toEqual([a, b]);
    expect(res.body.freshness).toEqual(freshness);
    expect(asked).toEqual([{ positions: [{ topic: INPUT, partition: 0, offset: '5' }, { topic: INPUT, partition: 2, offset: '9' }], timeoutMs: 1234 }]);
  });

  it('without tokens it does not wait and the answer has no consistentWith', async () => {
    asked.length = 0;
    const res = await get<UsageResponse>('');
    expect(res.status).toBe(200);
    expect(res.body).not.toHaveProperty('consistentWith');
    expect(asked).toEqual([]);
  });

  it('answers 503 not-yet-consistent with Retry-After, the freshness and the positions still awaited', async () => {
    const awaiting = [{ partition: 0, offset: '5', waitingFor: 'pipeline', committedOffset: '3', aggregatesOffset: null, appliedOffset: '7' }] as const;
    answer = { consistent: false, awaiting: [...awaiting] };
    const res = await get(`&consistentWith=${token(0, '5')}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body.error).toEqual({ kind: 'not-yet-consistent', message: expect.stringMatching(/within 1234 ms: the pipeline has not committed 1 of the positions/), freshness, awaiting });
  });

  it('answers 400 bad-parameter naming a token that is not one, one of another topic, or a partition the input does not have', async () => {
    asked.length = 0;
    const malformed = await get('&consistentWith=c1.bogus');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toEqual({ kind: 'bad-parameter', message: expect.stringMatching(/^consistentWith: "c1\.bogus" is not a consistency token/) });
    const other = token(0, '1', 'other-topic');
    const foreign = await get(`&consistentWith=${other}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.message).toBe(`consistentWith: token "${other}" names topic "other-topic"; this API answers for the input topic "usage-events"`);
    expect(asked).toEqual([]);
    answer = { consistent: false, unknownPartitions: [40] };
    const unknown = await get(`&consistentWith=${token(40, '1')}`);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toBe('consistentWith: the input topic "usage-events" has no partition 40');
  });

  it('answers 503 consistency-unavailable when the pipeline positions cannot be read at all', async () => {
    answer = { consistent: false, unavailable: true };
    const res = await get(`&consistentWith=${token(0, '5')}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.body.error.kind).toBe('consistency-unavailable');
  });

  it('a query the read model refuses answers at once, before any wait', async () => {
    asked.length = 0;
    const res = await get(`&groupBy=nope&consistentWith=${token(0, '1')}`);
    expect(res.status).toBe(400);
    expect(asked).toEqual([]);
  });

  it('a server that follows no pipeline refuses consistentWith', async () => {
    const res = await get(`&consistentWith=${token(0, '1')}`, bare);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^consistentWith: /);
  });
});
