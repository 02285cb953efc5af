import { request } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../../src/clock/service-time.js';
import { ClockSkewError, QueryError } from '../../src/errors.js';
import type { ListeningServer } from '../../src/http/json.js';
import type { IngestEvent } from '../../src/ingest/cloudevents.js';
import { startIngestServer } from '../../src/ingest/server.js';
import { noopLogger } from '../../src/observability/logger.js';
import { pipelineVerdict } from '../../src/processors/decode.js';

// The HTTP layer of the ingest under arbitrary bodies and headers: never a 5xx, never an
// exception, and whatever reaches the writer is what the pipeline would accept. The writer
// here only records (Kafka is the integration test's: test/integration/ingest.test.ts).

const written: IngestEvent[][] = [];
const clock = new HybridClock({ node: 'fuzz', physical: { now: () => Date.now() }, maxSkewMs: 500 });
let server: ListeningServer;

beforeAll(async () => {
  server = await startIngestServer({
    port: 0,
    host: '127.0.0.1',
    auth: createAuthenticator({ mode: 'none' }),
    maxEvents: 20,
    maxBytes: 8_192,
    requestTimeoutMs: 2_000,
    logger: noopLogger,
    accept: (events, context) => {
      // As the ingest role does (src/roles/ingest.ts): a time context too far ahead is the caller's 400.
      try {
        if (context) clock.receive(context.time);
      } catch (error) {
        if (error instanceof ClockSkewError) return Promise.reject(new QueryError('clock-skew', error.message));
        throw error;
      }
      written.push(events);
      const stamps = events.map(() => formatServiceTime(clock.now()));
      return Promise.resolve({
        events: events.map((e, i) => ({ id: e.event.id, source: e.event.source, serviceTime: stamps[i]!, partition: 0, offset: String(i), token: `c1.aW4.0.${i}` })),
        serviceTime: stamps.at(-1)!,
        serviceNode: 'fuzz',
      });
    },
  });
});

afterAll(() => server.close());

/** A raw request: headers as given (repeated ones too), body bytes as given. */
function send(headers: [string, string][], body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const grouped: Record<string, string[]> = {};
    for (const [name, value] of headers) (grouped[name] ??= []).push(value);
    const req = request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/events', headers: grouped }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const ce = fc.record(
  {
    specversion: fc.constantFrom('1.0', '1.0', '2'),
    id: fc.string({ maxLength: 12 }),
    source: fc.constantFrom('svc', '', 'a/b'),
    type: fc.constantFrom('api.request', ''),
    subject: fc.string({ maxLength: 8 }),
    time: fc.oneof(fc.constant('2026-11-30T12:00:00Z'), fc.string({ maxLength: 30 })),
    data: fc.oneof(fc.record({ value: fc.oneof(fc.constantFrom('1', '0.5', '-3', '1e2', ''), fc.double()), dimensions: fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string(), fc.integer()), { maxKeys: 3 }) }, { requiredKeys: [] }), fc.jsonValue()),
    traceparent: fc.constantFrom('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x'),
  },
  { requiredKeys: [] },
);

const validCe = fc.record({
  specversion: fc.constant('1.0'),
  id: fc.uuid(),
  source: fc.constantFrom('svc', 'svc-b'),
  type: fc.constant('api.request'),
  subject: fc.constantFrom('acme', 'globex'),
  data: fc.record({ value: fc.stringMatching(/^(0|[1-9]\d{0,4})(\.\d{1,3})?$/), dimensions: fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.string({ maxLength: 5 }), { maxKeys: 3 }) }),
});

const body = fc.oneof(
  fc.array(validCe, { minLength: 1, maxLength: 10 }).map((items) => Buffer.from(JSON.stringify(items))),
  fc.array(ce, { maxLength: 25 }).map((items) => Buffer.from(JSON.stringify(items))),
  ce.map((item) => Buffer.from(JSON.stringify(item))),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.constant(Buffer.alloc(10_000, 0x20)),
);

const headerValue = fc.oneof(fc.string({ maxLength: 20 }).filter((s) => /^[\x20-\x7e]*$/.test(s)), fc.constantFrom('0000000000000001', 'ffffffffffffffff', formatServiceTime(BigInt(Date.now()) << 16n), '', 'svc-a'));
const headers = fc.tuple(
  fc.constantFrom('application/cloudevents-batch+json', 'application/cloudevents-batch+json', 'application/cloudevents+json', 'application/json', 'text/plain', 'application/cloudevents+json; charset=utf-8'),
  fc.oneof(fc.constant([] as [string, string][]), fc.array(fc.tuple(fc.constantFrom('service-time', 'service-node', 'traceparent', 'x-other'), headerValue), { maxLength: 4 })),
);

describe('the ingest HTTP layer under arbitrary input', () => {
  it('answers every request with a 2xx or a clear 4xx (never a 5xx), and hands the writer only events the pipeline accepts', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(headers, body, async ([type, extra], payload) => {
        const before = written.length;
        const res = await send([['content-type', type], ...extra], payload);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect([202, 400, 413, 415], res.body).toContain(res.status);
        const answer = JSON.parse(res.body) as { error?: { kind: string; message: string } };
        if (res.status === 202) {
          expect(written.length).toBe(before + 1);
          for (const e of written.at(-1)!) expect(pipelineVerdict(e.event, e.headers)).toBeUndefined();
        } else {
          expect(written.length).toBe(before);
          expect(answer.error?.kind).toMatch(/^[a-z-]+$/);
          expect(answer.error?.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
    // The generators reach both sides.
    expect(statuses.get(202)).toBeGreaterThan(0);
    expect(statuses.get(400)).toBeGreaterThan(0);
  });
});
