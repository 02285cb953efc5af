// SSE streams of the deliver server over real HTTP on 127.0.0.1, against in-memory stream
// sources: ids, filters, resume with Last-Event-ID (no gap, no repeat, whatever the
// reconnect points), heartbeats, overflow of a client that does not read, server close.
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { noAuthentication } from '../../src/auth/authenticator.js';
import { type DeliverServer, startDeliverServer } from '../../src/deliver/server.js';
import { QueryError } from '../../src/errors.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { type Delivered, MemorySource, SseClient, fakeViews } from './sse-fixtures.js';

const SUBJECTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli'];

interface Setup {
  server: DeliverServer;
  ordered: MemorySource;
  global: MemorySource;
  metrics: OrdoMetrics;
}

const open: DeliverServer[] = [];
afterEach(async () => {
  for (const server of open.splice(0)) await server.close();
});

async function serve(limits: Partial<{ maxStreams: number; heartbeatMs: number; bufferBytes: number }> = {}): Promise<Setup> {
  const ordered = new MemorySource('ordered', 3);
  const global = new MemorySource('global', 1);
  const metrics = new OrdoMetrics();
  const server = await startDeliverServer({
    port: 0,
    host: '127.0.0.1',
    auth: noAuthentication,
    nodeId: 'node-a',
    sources: { ordered, global },
    views: fakeViews,
    sessions: undefined,
    limits: { maxStreams: 100, heartbeatMs: 10_000, bufferBytes: 1 << 20, ...limits },
    metrics,
  });
  open.push(server);
  return { server, ordered, global, metrics };
}

function fill(source: MemorySource, n: number, subjects = SUBJECTS): void {
  for (let i = 0; i < n; i++) source.append(subjects[i % subjects.length]!, i % 3 === 0 ? 'llm.call' : 'api.call');
}

async function metric(metrics: OrdoMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const json = await metrics.registry.getMetricsAsJSON();
  const values = json.find((m) => m.name === name)?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

/** Per partition, the offsets come in increasing order. */
function expectPartitionOrder(records: Delivered[]): void {
  const last = new Map<number, bigint>();
  for (const r of records) {
    const offset = BigInt(r.offset);
    expect(offset > (last.get(r.partition) ?? -1n), `partition ${r.partition} offset ${offset} after ${last.get(r.partition)}`).toBe(true);
    last.set(r.partition, offset);
  }
}

describe('deliver SSE streams', () => {
  it('streams the global stream from earliest with g. ids, its ordo-global-seq gapless, then what is appended', async () => {
    const { server, global, metrics } = await serve();
    fill(global, 20);
    const client = await SseClient.open(server.port, '/v1/streams/global/events?from=earliest');
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await client.until(() => client.records().length === 20);
    fill(global, 5);
    await client.until(() => client.records().length === 25);
    const records = client.records();
    expect(records.map((r) => Number(r.headers['ordo-global-seq']))).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(client.events.map((e) => e.id)).toEqual(records.map((r) => `g.${r.headers['ordo-global-seq']}.${r.offset}`));
    expect(records.every((r) => r.stream === 'global' && r.cursor === `g.${r.headers['ordo-global-seq']}.${r.offset}`)).toBe(true);
    expect(await metric(metrics, 'ordo_deliver_records_total', { stream: 'global', via: 'sse' })).toBe(25);
    // Read at the tail (no catch-up reader): each record's delay is observed.
    const delays = (await metrics.registry.getSingleMetric('ordo_deliver_delay_seconds')!.get()).values;
    expect(delays.find((v) => (v as { metricName?: string }).metricName === 'ordo_deliver_delay_seconds_count' && v.labels.stream === 'global')?.value).toBe(25);
    expect(await metric(metrics, 'ordo_deliver_streams', { stream: 'global' })).toBe(1);
    expect(await metric(metrics, 'ordo_deliver_stream_requests_total', { stream: 'global', outcome: 'opened' })).toBe(1);
    await client.close();
    await expect.poll(() => server.openStreams()).toBe(0);
    expect(await metric(metrics, 'ordo_deliver_streams', { stream: 'global' })).toBe(0);
    expect(global.openReaders).toBe(0);
  });

  it('starts at the end by default: only records appended after the stream opened', async () => {
    const { server, ordered } = await serve();
    fill(ordered, 10);
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events');
    await client.until(() => client.comments.length > 0);
    const later = ordered.append('acme');
    await client.until(() => client.records().length === 1);
    expect(client.records()[0]!.value.n).toBe((JSON.parse(later.value!.toString()) as { n: number }).n);
    await client.close();
  });

  it('filters by subject and type; one subject gives s. ids with a gapless ordo-seq, more give v. ids', async () => {
    const { server, ordered } = await serve();
    fill(ordered, 60);
    const one = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest&subject=globex');
    await one.until(() => one.records().length === 12);
    expect(one.records().map((r) => r.headers['ordo-seq'])).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    expect(one.events.every((e, i) => e.id === `s.${i + 1}.${one.records()[i]!.partition}.${one.records()[i]!.offset}`)).toBe(true);

    const two = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest&subject=acme&subject=hooli&type=llm.call');
    const expected = ordered.logs.flat().filter((r) => ['acme', 'hooli'].includes(r.key!.toString()) && (JSON.parse(r.value!.toString()) as { type: string }).type === 'llm.call');
    await two.until(() => two.records().length === expected.length);
    expect(two.records().every((r) => ['acme', 'hooli'].includes(r.key!) && r.value.type === 'llm.call')).toBe(true);
    expect(two.events.every((e) => /^v\.\d+\.\d+\.\d+$/.test(e.id!))).toBe(true);
    // Nothing else arrives: every id was written and no record outside the filter.
    ordered.append('umbrella');
    ordered.append('acme', 'api.call');
    await new Promise((r) => setTimeout(r, 100));
    expect(two.records()).toHaveLength(expected.length);
    await one.close();
    await two.close();
  });

  it('resumes with Last-Event-ID, from any reconnect point, with no gap and no repeat (property)', async () => {
    const { server, ordered, global } = await serve();
    const filters = ['', 'subject=acme', 'subject=acme&subject=globex', 'type=llm.call', 'subject=initech&type=api.call'];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<'ordered' | 'global'>('ordered', 'global'),
        fc.constantFrom(...filters),
        fc.array(fc.record({ take: fc.nat(15), append: fc.nat(20) }), { minLength: 1, maxLength: 5 }),
        async (stream, filter, steps) => {
          const source = stream === 'ordered' ? ordered : global;
          const startOffsets = source.logs.map((log, p) => source.earliest[p]! + BigInt(log.length));
          fill(source, 10);
          const got: Delivered[] = [];
          let lastId: string | undefined;
          for (const step of steps) {
            const query = `?${filter}${filter === '' ? '' : '&'}from=v.${startOffsets.join('.')}`;
            const client = await SseClient.open(server.port, `/v1/streams/${stream}/events${query}`, lastId === undefined ? {} : { 'last-event-id': lastId });
            expect(client.status, client.body).toBe(200);
            fill(source, step.append);
            // Take `take` records (or what there is), then drop the connection mid-stream.
            await client.until(() => client.records().length >= step.take, 300).catch(() => undefined);
            const events = client.events.filter((e) => e.event === 'record').slice(0, step.take);
            await client.close();
            for (const e of events) got.push(JSON.parse(e.data) as Delivered);
            if (events.length > 0) lastId = events.at(-1)!.id;
          }
          // Then read to the end.
          const client = await SseClient.open(server.port, `/v1/streams/${stream}/events?${filter}${filter === '' ? '' : '&'}from=v.${startOffsets.join('.')}`, lastId === undefined ? {} : { 'last-event-id': lastId });
          const params = new URLSearchParams(filter);
          const subjects = params.getAll('subject');
          const types = params.getAll('type');
          const expected = source.logs
            .flatMap((log, p) => log.filter((r) => BigInt(r.offset) >= startOffsets[p]!))
            .map((r) => JSON.parse(r.value!.toString()) as { n: number; subject: string; type: string })
            .filter((v) => (subjects.length === 0 || subjects.includes(v.subject)) && (types.length === 0 || types.includes(v.type)));
          await client.until(() => got.length + client.records().length >= expected.length, 3_000);
          await new Promise((r) => setTimeout(r, 20));
          got.push(...client.records());
          await client.close();
          expect(got.map((r) => r.value.n).sort((a, b) => a - b)).toEqual(expected.map((v) => v.n).sort((a, b) => a - b));
          expectPartitionOrder(got);
          if (stream === 'global') expect(got.map((r) => Number(r.headers['ordo-global-seq']))).toEqual([...got.map((r) => Number(r.headers['ordo-global-seq']))].sort((a, b) => a - b));
          if (subjects.length === 1 && types.length === 0) {
            const seqs = got.map((r) => Number(r.headers['ordo-seq']));
            expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
          }
        },
      ),
      { numRuns: 25 },
    );
    await expect.poll(() => server.openStreams()).toBe(0);
    expect(ordered.openReaders + global.openReaders).toBe(0);
  }, 60_000);

  it('sends a heartbeat comment on an idle stream every heartbeatMs', async () => {
    const { server } = await serve({ heartbeatMs: 100 });
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events');
    const started = Date.now();
    await client.until(() => client.comments.filter((c) => c === 'heartbeat').length >= 3, 2_000);
    // Three intervals, not a burst: the first heartbeat comes an interval after the opening comment.
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await client.close();
  });

  it('a client that does not read gets an overflow event with the cursor of the last record sent, is disconnected, and resumes from it', async () => {
    const bufferBytes = 64 * 1024;
    const { server, global, metrics } = await serve({ bufferBytes, heartbeatMs: 300 });
    const client = await SseClient.open(server.port, '/v1/streams/global/events');
    await client.until(() => client.comments.length > 0);
    client.socket.pause();
    const pad = 'x'.repeat(2_000);
    // The kernel's socket buffers take some megabytes first, and the server waits a heartbeat
    // interval for a client to take something; then the stream must overflow within seconds.
    const started = Date.now();
    let appended = 0;
    while ((await metric(metrics, 'ordo_deliver_overflows_total', { stream: 'global' })) === 0) {
      expect(Date.now() - started, `no overflow after ${appended} records`).toBeLessThan(20_000);
      for (let i = 0; i < 100; i++) global.append('acme', 'api.call', pad);
      appended += 100;
      await new Promise((r) => setTimeout(r, 10));
    }
    await expect.poll(() => server.openStreams()).toBe(0);
    expect(global.openReaders).toBe(0);
    client.socket.resume();
    await client.closed;
    const overflow = client.events.at(-1)!;
    expect(overflow.event).toBe('overflow');
    const body = JSON.parse(overflow.data) as { message: string; cursor: string };
    expect(body.message).toMatch(/ORDO_DELIVER_BUFFER_BYTES/);
    const records = client.records();
    expect(records.length).toBeGreaterThan(0);
    expect(records.length).toBeLessThan(appended);
    expect(body.cursor).toBe(records.at(-1)!.cursor);
    // The cursor resumes right after the last record received.
    const again = await SseClient.open(server.port, '/v1/streams/global/events', { 'last-event-id': body.cursor });
    await again.until(() => again.records().length > 0);
    expect(Number(again.records()[0]!.headers['ordo-global-seq'])).toBe(Number(records.at(-1)!.headers['ordo-global-seq']) + 1);
    await again.close();
  }, 60_000);

  it('a slow client that reads is served at its pace (backpressure), not disconnected', async () => {
    const { server, global, metrics } = await serve({ bufferBytes: 64 * 1024, heartbeatMs: 2_000 });
    const pad = 'y'.repeat(2_000);
    for (let i = 0; i < 5_000; i++) global.append('acme', 'api.call', pad);
    const client = await SseClient.open(server.port, '/v1/streams/global/events?from=earliest');
    // Reads in bursts with pauses far shorter than a heartbeat interval.
    const timer = setInterval(() => {
      if (client.socket.isPaused()) client.socket.resume();
      else client.socket.pause();
    }, 50);
    try {
      await client.until(() => client.records().length === 5_000, 30_000);
    } finally {
      clearInterval(timer);
      client.socket.resume();
    }
    expect(await metric(metrics, 'ordo_deliver_overflows_total', { stream: 'global' })).toBe(0);
    expect(client.records().map((r) => Number(r.headers['ordo-global-seq']))).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1));
    await client.close();
  }, 60_000);

  it('close() ends every stream with a comment telling the client to reconnect', async () => {
    const { server, ordered, global } = await serve();
    const clients = await Promise.all([
      SseClient.open(server.port, '/v1/streams/ordered/events'),
      SseClient.open(server.port, '/v1/streams/global/events'),
    ]);
    await Promise.all(clients.map((c) => c.until(() => c.comments.length > 0)));
    expect(server.openStreams()).toBe(2);
    await server.close();
    open.splice(0);
    for (const client of clients) {
      await client.closed;
      expect(client.ended).toBe(true);
      expect(client.comments.at(-1)).toMatch(/^server closing; reconnect/);
    }
    expect(ordered.openReaders + global.openReaders).toBe(0);
  });
});

describe('deliver SSE stream failures', () => {
  it('a client gone while its reader was being opened frees its place and its reader', async () => {
    const { server, ordered } = await serve();
    const open = ordered.open.bind(ordered);
    let opened!: () => void;
    const gate = new Promise<void>((resolve) => (opened = resolve));
    ordered.open = async (from) => {
      await gate;
      return open(from);
    };
    const client = new SseClient(connect(server.port, '127.0.0.1'));
    client.socket.write('GET /v1/streams/ordered/events HTTP/1.1\r\nhost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 50));
    await client.close();
    await new Promise((r) => setTimeout(r, 50));
    opened();
    await expect.poll(() => ordered.openReaders).toBe(0);
    await expect.poll(() => server.openStreams()).toBe(0);
  });

  it('a reader that fails after the stream started ends it with an error event carrying the last cursor', async () => {
    const { server, global, metrics } = await serve();
    fill(global, 5);
    const open = global.open.bind(global);
    global.open = async (from) => {
      const reader = await open(from);
      let calls = 0;
      return {
        next: (max, waitMs, signal) => (++calls === 1 ? reader.next(max, waitMs, signal) : Promise.reject(new QueryError('cursor-expired', 'the reader fell behind retention', 410))),
        close: () => reader.close(),
      };
    };
    const client = await SseClient.open(server.port, '/v1/streams/global/events?from=earliest');
    await client.closed;
    const last = client.events.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data)).toEqual({ kind: 'cursor-expired', message: 'the reader fell behind retention', cursor: client.records().at(-1)!.cursor });
    expect(client.records()).toHaveLength(5);
    expect(global.openReaders).toBe(0);
    expect(server.openStreams()).toBe(0);
    expect(await metric(metrics, 'ordo_deliver_streams', { stream: 'global' })).toBe(0);
  });

  it('views that fail (the schema registry away) end the stream with an internal error event, details only in the log', async () => {
    const ordered = new MemorySource('ordered', 3);
    const server = await startDeliverServer({
      port: 0,
      host: '127.0.0.1',
      auth: noAuthentication,
      nodeId: 'node-a',
      sources: { ordered, global: new MemorySource('global', 1) },
      views: () => Promise.reject(new Error('registry at 10.0.0.7 refused')),
      sessions: undefined,
      limits: { maxStreams: 10, heartbeatMs: 10_000, bufferBytes: 1 << 20 },
    });
    open.push(server);
    ordered.append('acme');
    const client = await SseClient.open(server.port, '/v1/streams/ordered/events?from=earliest');
    await client.closed;
    expect(client.events.map((e) => e.event)).toEqual(['error']);
    const body = JSON.parse(client.events[0]!.data) as { kind: string; message: string; cursor: string };
    expect(body.kind).toBe('internal');
    expect(body.message).not.toContain('10.0.0.7');
    expect(body.cursor).toBe('v.0.0.0');
    expect(ordered.openReaders).toBe(0);
  });
});
