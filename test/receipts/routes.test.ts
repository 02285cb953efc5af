// The receipts routes through the api's real HTTP server with token auth: subject scoping
// (a receipt of a subject the token may not see is the same 404 as one never seen; a trail
// leaves such events out), the deletion hook (410 subject-deleted / events left out), scopes
// and bad input.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadModel } from '../../src/api/read-model.js';
import { type ApiServer, startApiServer } from '../../src/api/server.js';
import { type Authenticator, createAuthenticator } from '../../src/auth/authenticator.js';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { receiptAnswer, trailAnswer } from '../../src/receipts/answers.js';
import type { Receipt, TrailEvent } from '../../src/receipts/entries.js';
import type { ReceiptsFreshness } from '../../src/receipts/receipts-service.js';
import { type ReceiptsLookup, receiptRoutes } from '../../src/receipts/routes.js';
import { MeterCatalog } from '../../src/usage/meters.js';

const T = Date.UTC(2026, 10, 30, 12);
const hex = (ms: number): string => (BigInt(ms) << 16n).toString(16).padStart(16, '0');
const TOKENS = { reader: 'ordo_reader_Z8m2Kq4xVb7nLp1tRw9cYs3dFh6gJ0aE', acme: 'ordo_acme_Q7wE3rT9yU1iO5pA8sD2fG6hJ4kL0zXc', ingest: 'ordo_ingest_M1nB5vC9xZ3aS7dF2gH6jK0lQ4wE8rTy' };

const receipts: Receipt[] = [
  { kind: 'accepted', source: 's', id: 'mine', subject: 'acme', type: 't', seq: '1', serviceTime: hex(T), serviceNode: 'n', orderKey: { time: hex(T), node: 'n' }, position: { partition: 0, offset: '1' }, at: T, aggregates: [] },
  { kind: 'accepted', source: 's', id: 'theirs', subject: 'globex', type: 't', seq: '2', serviceTime: hex(T), serviceNode: 'n', orderKey: { time: hex(T), node: 'n' }, position: { partition: 0, offset: '2' }, at: T, aggregates: [] },
  { kind: 'accepted', source: 's', id: 'gone', subject: 'initech', type: 't', seq: '3', serviceTime: hex(T), serviceNode: 'n', orderKey: { time: hex(T), node: 'n' }, position: { partition: 0, offset: '3' }, at: T, aggregates: [] },
];
const trail: TrailEvent[] = ['acme', 'globex', 'initech'].map((subject, i) => ({ source: 's', id: `e${i}`, subject, type: 't', outcome: 'accepted', orderKey: { time: hex(T + i), node: 'n' }, at: T + i, topic: 'ordered', position: { partition: 0, offset: String(i) } }));
const FRESH = { caughtUp: true, lagRecords: 0, retentionMs: 1 } as ReceiptsFreshness;
const lookup: ReceiptsLookup = {
  receipt: (source, id) => receiptAnswer(source, id, receipts),
  trail: (id, keep, limit) => (id === 'tr' ? trailAnswer(id, trail.filter((e) => keep(e.subject)), { terminalTypes: [], stallMs: 1e12, now: T, limit }) : undefined),
  freshness: () => FRESH,
};

describe('GET /v1/events/{source}/{id} and /v1/trails/{id}', () => {
  let server: ApiServer;
  let auth: Authenticator;
  let base: string;

  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-receipts-tokens-')), 'tokens.yaml');
    writeFileSync(
      file,
      [
        'tokens:',
        `  - {name: reader, sha256: ${sha256Hex(TOKENS.reader)}, scopes: [read]}`,
        `  - {name: acme, sha256: ${sha256Hex(TOKENS.acme)}, scopes: [read], subjects: [acme]}`,
        `  - {name: ingest, sha256: ${sha256Hex(TOKENS.ingest)}, scopes: [ingest]}`,
        '',
      ].join('\n'),
    );
    auth = createAuthenticator({ mode: 'token', tokensFile: file }, { reloadIntervalMs: 0 });
    const routes = receiptRoutes(lookup, { deleted: (subject) => (subject === 'initech' ? { id: 'del-1' } : undefined) });
    server = await startApiServer({ port: 0, host: '127.0.0.1', meters: new MeterCatalog([]), readModel: new ReadModel(new MeterCatalog([])), freshness: () => ({ caughtUp: true, lagRecords: 0, partitions: [] }), auth, routes });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    auth.close();
    await server.close();
  });

  const get = async (path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('answers a receipt with its freshness', async () => {
    const answer = await get('/v1/events/s/mine', TOKENS.reader);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'accepted', subject: 'acme', freshness: FRESH });
  });

  it('a subject the token may not see is the 404 of an event never seen', async () => {
    const hidden = await get('/v1/events/s/theirs', TOKENS.acme);
    const unseen = await get('/v1/events/s/nothing', TOKENS.acme);
    expect(hidden.status).toBe(404);
    expect(unseen.status).toBe(404);
    expect({ ...(hidden.body.error as object), message: '' }).toEqual({ ...(unseen.body.error as object), message: '' });
    expect((await get('/v1/events/s/theirs', TOKENS.reader)).status).toBe(200);
  });

  it('a deleted subject answers 410 subject-deleted with the deletion id', async () => {
    const gone = await get('/v1/events/s/gone', TOKENS.reader);
    expect(gone.status).toBe(410);
    expect(gone.body.error).toMatchObject({ kind: 'subject-deleted', deletion: 'del-1' });
  });

  it('a trail leaves out the events of subjects the token may not see and of deleted subjects', async () => {
    expect(((await get('/v1/trails/tr', TOKENS.reader)).body.events as { subject: string }[]).map((e) => e.subject)).toEqual(['acme', 'globex']);
    expect(((await get('/v1/trails/tr', TOKENS.acme)).body.events as { subject: string }[]).map((e) => e.subject)).toEqual(['acme']);
    expect((await get('/v1/trails/other', TOKENS.reader)).status).toBe(404);
  });

  it('needs the read scope; bad input is a 4xx', async () => {
    expect((await get('/v1/events/s/mine', TOKENS.ingest)).status).toBe(403);
    expect((await get(`/v1/events/s/${'x'.repeat(1_025)}`, TOKENS.reader)).status).toBe(400);
    expect((await get('/v1/events/s/%E0%A4%A', TOKENS.reader)).status).toBe(400);
    expect((await get('/v1/events/s', TOKENS.reader)).status).toBe(404);
    for (const limit of ['0', '-1', 'abc', '10001', '1e3']) expect((await get(`/v1/trails/tr?limit=${limit}`, TOKENS.reader)).status).toBe(400);
    expect(((await get('/v1/trails/tr?limit=1', TOKENS.reader)).body as { truncated: boolean }).truncated).toBe(true);
    const post = await fetch(`${base}/v1/events/s/mine`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.reader}` } });
    expect(post.status).toBe(405);
  });
});
