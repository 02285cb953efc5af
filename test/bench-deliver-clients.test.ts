import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countSse } from '../bench/deliver.js';

/**
 * The deliver bench's SSE clients (bench/deliver.ts) count a phase's records only if each
 * came once and in order: against a local server writing fixed streams, a gap, a repeat, an
 * overflow, a refusal and a stream that ends early are errors, and a clean stream is not.
 */
const record = (id: string): string => `id: ${id}\nevent: record\ndata: {"stream":"ordered","cursor":"${id}"}\n\n`;
const STREAMS: Record<string, { status: number; body: string }> = {
  '/vector': { status: 200, body: `: stream ordered from v.0.0\n\n${record('v.1.0')}: heartbeat\n\n${record('v.1.1')}${record('v.2.1')}` },
  '/vector-gap': { status: 200, body: `${record('v.1.0')}${record('v.2.1')}${record('v.3.1')}` },
  '/subject': { status: 200, body: `${record('s.1.0.0')}${record('s.2.0.7')}${record('s.3.0.9')}` },
  '/subject-repeat': { status: 200, body: `${record('s.1.0.0')}${record('s.2.0.7')}${record('s.2.0.7')}` },
  '/overflow': { status: 200, body: `${record('v.1.0')}event: overflow\ndata: {"message":"more than 1024 bytes waited","cursor":"v.1.0"}\n\n` },
  '/refused': { status: 503, body: '{"error":{"kind":"too-many-streams","message":"full"}}' },
  '/short': { status: 200, body: `${record('v.1.0')}${record('v.1.1')}` },
};

let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const stream = STREAMS[req.url ?? ''];
    if (!stream) return void res.writeHead(404).end();
    res.writeHead(stream.status, { 'content-type': stream.status === 200 ? 'text/event-stream' : 'application/json' });
    // In two writes split inside a line, as a chunk boundary may fall anywhere.
    const middle = Math.floor(stream.body.length / 2) + 3;
    res.write(stream.body.slice(0, middle));
    setTimeout(() => res.end(stream.body.slice(middle)), 20);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('the deliver bench SSE clients', () => {
  it('count a stream whose cursors show every record once, in order', async () => {
    const [vector, subject] = await countSse([
      { url: `${base}/vector`, expected: 3, check: 'vector' },
      { url: `${base}/subject`, expected: 3, check: 'subject' },
    ]);
    for (const client of [vector!, subject!]) {
      expect(client.error).toBeUndefined();
      expect(client.status).toBe(200);
      expect(client.records).toBe(3);
      expect(client.doneAt).not.toBeNull();
      expect(client.firstAt).not.toBeNull();
      expect(client.doneAt!).toBeGreaterThanOrEqual(client.firstAt!);
    }
  });

  it('fail on a gap, a repeat, an overflow, a refusal and an early end', async () => {
    const clients = await countSse([
      { url: `${base}/vector-gap`, expected: 3, check: 'vector' },
      { url: `${base}/subject-repeat`, expected: 3, check: 'subject' },
      { url: `${base}/overflow`, expected: 3, check: 'vector' },
      { url: `${base}/refused`, expected: 3, check: 'vector' },
      { url: `${base}/short`, expected: 3, check: 'vector' },
    ]);
    const errors = clients.map((c) => c.error ?? '');
    expect(errors[0]).toContain('record 2 has the cursor v.2.1: a gap or a repeat');
    expect(errors[1]).toContain('record 3 of the subject has the cursor s.2.0.7 (ordo-seq 2): a gap or a repeat');
    expect(errors[2]).toContain('overflow:');
    expect(errors[3]).toContain('HTTP 503');
    expect(errors[4]).toContain('the stream ended after 2 of 3 records');
    for (const c of clients) expect(c.doneAt).toBeNull();
  });
});
