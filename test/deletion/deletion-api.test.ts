import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { ReadModel } from '../../src/api/read-model.js';
import { type ApiServer, startApiServer } from '../../src/api/server.js';
import { noAuthentication } from '../../src/auth/authenticator.js';
import { deletionRoutes } from '../../src/deletion/deletion-api.js';
import { DeletionFollower } from '../../src/deletion/deletion-follower.js';
import type { Deletion } from '../../src/deletion/deletions.js';
import { noopLogger } from '../../src/observability/logger.js';
import { aggregateKey } from '../../src/usage/aggregation.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';

const meter: Meter = { slug: 'calls', description: undefined, eventTypes: ['api.request'], aggregation: 'COUNT', valueProperty: undefined, groupBy: {}, windows: ['DAY'] };
const DAY = Date.UTC(2026, 10, 1);

function aggregate(subject: string) {
  return { meter: 'calls', subject, groupBy: {}, windowSize: 'DAY' as const, windowStart: DAY, windowEnd: DAY + 86_400_000, aggregation: 'COUNT' as const, value: '2', sum: null, count: 2, firstEventTime: DAY, lastEventTime: DAY, lastServiceTime: '0'.repeat(16), lastServiceNode: 'n', version: 2, corrections: 0 };
}

describe('DELETE /v1/subjects/{subject} and GET /v1/deletions/{id} over a real server (the topic write faked)', () => {
  // Never started: its set is what the routes read and write (the reader needs a broker).
  const follower = new DeletionFollower({ kafka: {} as Kafka, topic: 'deletions', separator: '/', groupId: 'g', logger: noopLogger, stuckAfterMs: 60_000 });
  const writes: [string, Deletion][] = [];
  let failNext = false;
  let server: ApiServer;
  let base: string;
  const readModel = new ReadModel(new MeterCatalog([meter]));

  beforeAll(async () => {
    for (const s of ['acme', 'acme/t1', 'beta']) readModel.apply(aggregateKey(aggregate(s)), aggregate(s));
    const routes = deletionRoutes({
      follower,
      separator: '/',
      inputTopic: 'in',
      inputPartitions: () => Promise.resolve(2),
      now: () => DAY + 5,
      async write(key, value) {
        await new Promise((resolve) => setTimeout(resolve, 20)); // concurrent requests overlap
        if (failNext) {
          failNext = false;
          throw new Error('broker down');
        }
        writes.push([key, value]);
      },
    });
    server = await startApiServer({ port: 0, host: '127.0.0.1', meters: new MeterCatalog([meter]), readModel, freshness: () => ({ caughtUp: true, lagRecords: 0, partitions: [] }), auth: noAuthentication, routes, deleted: (s) => follower.set.match(s) });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(() => server.close());

  const del = (path: string) => fetch(`${base}${path}`, { method: 'DELETE' });
  const usage = (query: string) => fetch(`${base}/v1/meters/calls/usage?from=${new Date(DAY).toISOString()}&to=${new Date(DAY + 86_400_000).toISOString()}&${query}`);

  it('writes one record, answers 202 with the id; repeats and concurrent requests answer the same id without another write', async () => {
    const [a, b] = await Promise.all([del('/v1/subjects/acme?children=true'), del('/v1/subjects/acme?children=true')]);
    expect([a.status, b.status]).toEqual([202, 202]);
    const [ja, jb] = (await Promise.all([a.json(), b.json()])) as { id: string }[];
    expect(ja).toEqual({ id: ja!.id, subject: 'acme', children: true, requestedAt: new Date(DAY + 5).toISOString() });
    expect(jb!.id).toBe(ja!.id);
    const again = await del('/v1/subjects/acme?children=true');
    expect(again.status).toBe(202);
    expect(((await again.json()) as { id: string }).id).toBe(ja!.id);
    expect(writes.map(([key]) => key)).toEqual(['acme/*']);
    // Another key, another id.
    const own = (await (await del('/v1/subjects/acme')).json()) as { id: string };
    expect(own.id).not.toBe(ja!.id);
  });

  it('answers 410 for the subject and its children at once, leaves them out across subjects', async () => {
    for (const subject of ['acme', 'acme/t1']) {
      const res = await usage(`subject=${encodeURIComponent(subject)}`);
      expect(res.status).toBe(410);
      const body = (await res.json()) as { error: { kind: string; deletion: { subject: string } } };
      expect(body.error).toMatchObject({ kind: 'subject-deleted', deletion: { subject: 'acme' } });
    }
    expect((await usage('subject=beta')).status).toBe(200);
    const across = (await (await usage('groupBy=subject')).json()) as { data: { subject: string }[] };
    expect(across.data.map((r) => r.subject)).toEqual(['beta']);
  });

  it('refuses bad input with a 4xx, and a failed write with 503 (a retry names the same id)', async () => {
    for (const path of ['/v1/subjects/a*', '/v1/subjects/%20x', '/v1/subjects/x?children=yes', '/v1/subjects/x?x=1', `/v1/subjects/${'y'.repeat(1_025)}`]) {
      const res = await del(path);
      expect([path, res.status]).toEqual([path, 400]);
    }
    failNext = true;
    const failed = await del('/v1/subjects/zeta');
    expect(failed.status).toBe(503);
    const retried = await del('/v1/subjects/zeta');
    expect(retried.status).toBe(202);
  });

  it('GET /v1/deletions/{id}: requested, then pending, then complete as sweep markers arrive; 404 for an unknown id', async () => {
    const { id } = (await (await del('/v1/subjects/omega')).json()) as { id: string };
    const status = async () => (await (await fetch(`${base}/v1/deletions/${id}`)).json()) as { status: string; sweep: { partitionsSwept: number; removed: number } };
    expect((await status()).status).toBe('requested');
    const marker = (partition: number) => ({ topic: 'deletions', partition: 0, offset: String(partition), key: Buffer.from(`*swept/${id}/in/${partition}`), value: Buffer.from(JSON.stringify({ id, topic: 'in', partition, removed: 3, late: 1, sweptAt: DAY + 9 })), headers: {}, timestamp: 0 });
    follower['applyRecords']([marker(0)]);
    expect(await status()).toMatchObject({ status: 'pending', sweep: { partitionsSwept: 1 } });
    follower['applyRecords']([marker(1)]);
    expect(await status()).toMatchObject({ status: 'complete', sweep: { partitionsSwept: 2, removed: 6 } });
    expect((await fetch(`${base}/v1/deletions/del-0`)).status).toBe(404);
  });

  it('the read model drops an aggregate on its tombstone', () => {
    const before = readModel.size;
    readModel.remove(aggregateKey(aggregate('beta')));
    readModel.remove('not a key');
    expect(readModel.size).toBe(before - 1);
  });
});
