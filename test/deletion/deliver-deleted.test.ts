// The deliver server with deleted subjects, over real HTTP against in-memory stream sources.
import { afterEach, describe, expect, it } from 'vitest';
import { noAuthentication } from '../../src/auth/authenticator.js';
import { type DeliverServer, startDeliverServer } from '../../src/deliver/server.js';
import { DeletionSet, newDeletion } from '../../src/deletion/deletions.js';
import { MemorySource, SseClient, fakeViews } from '../deliver/sse-fixtures.js';

const open: DeliverServer[] = [];
afterEach(async () => {
  for (const server of open.splice(0)) await server.close();
});

async function serve(deletions: DeletionSet) {
  const ordered = new MemorySource('ordered', 3);
  const server = await startDeliverServer({
    port: 0,
    host: '127.0.0.1',
    auth: noAuthentication,
    nodeId: 'node-a',
    sources: { ordered, global: new MemorySource('global', 1) },
    views: fakeViews,
    sessions: undefined,
    deleted: (subject) => deletions.match(subject),
    limits: { maxStreams: 10, heartbeatMs: 10_000, bufferBytes: 1 << 20 },
  });
  open.push(server);
  return { server, ordered };
}

describe('deliver streams and deleted subjects', () => {
  it('a stream filtered to a deleted subject (or a child of one) answers 410 subject-deleted; unfiltered streams leave them out', async () => {
    const deletions = new DeletionSet('/');
    const { key, value } = newDeletion('acme', true, '/', 1_700_000_000_000, 'admin');
    deletions.apply(key, value);
    const { server, ordered } = await serve(deletions);
    for (const subject of ['acme', 'acme/team-1', 'zeta', 'acme/x']) ordered.append(subject);

    for (const subject of ['acme', 'acme%2Fteam-1']) {
      const refused = await SseClient.open(server.port, `/v1/streams/ordered/events?from=earliest&subject=${subject}`);
      expect(refused.status).toBe(410);
      expect(refused.error()).toMatchObject({ kind: 'subject-deleted', deletion: { id: value.id, subject: 'acme', children: true } });
    }
    const all = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest');
    await all.until(() => all.records().length === 1);
    ordered.append('acme');
    ordered.append('zeta');
    await all.until(() => all.records().length === 2);
    expect(all.records().map((r) => r.key)).toEqual(['zeta', 'zeta']);
    await all.close();
  });
});
