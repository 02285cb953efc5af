import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../../src/clock/service-time.js';
import type { ListeningServer } from '../../src/http/json.js';
import type { IngestEvent } from '../../src/ingest/cloudevents.js';
import { VOID_TYPE } from '../../src/ingest/corrections.js';
import { startIngestServer } from '../../src/ingest/server.js';
import { noopLogger } from '../../src/observability/logger.js';
import { pipelineVerdict } from '../../src/processors/decode.js';

// POST /v1/events/{source}/{id}/void|amend on the ingest HTTP layer; the writer only records
// (through Kafka and the pipeline: test/integration/corrections.test.ts).

const written: IngestEvent[][] = [];
const clock = new HybridClock({ node: 'test', physical: { now: () => Date.now() }, maxSkewMs: 500 });
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
    accept: (events) => {
      written.push(events);
      const stamps = events.map(() => formatServiceTime(clock.now()));
      return Promise.resolve({
        events: events.map((e, i) => ({ id: e.event.id, source: e.event.source, serviceTime: stamps[i]!, partition: 0, offset: String(i), token: `c1.aW4.0.${i}` })),
        serviceTime: stamps.at(-1)!,
        serviceNode: 'test',
      });
    },
  });
});

afterAll(() => server.close());

async function post(path: string, body: unknown, init: { method?: string; contentType?: string } = {}): Promise<{ status: number; json: { events?: { id: string; source: string }[]; error?: { kind: string; message: string } } }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    method: init.method ?? 'POST',
    headers: { 'content-type': init.contentType ?? 'application/json' },
    body: init.method === 'GET' ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as never };
}

describe('POST /v1/events/{source}/{id}/void|amend', () => {
  it('a void: one correction event under the given subject, with the correction headers; a retried request has the same id', async () => {
    written.length = 0;
    const first = await post('/v1/events/billing%2Fapi/evt-7/void', { subject: 'acme' });
    const again = await post('/v1/events/billing%2Fapi/evt-7/void', { subject: 'acme' });
    expect(first.status).toBe(202);
    expect(again.json.events).toEqual(first.json.events?.map((e) => ({ ...e, serviceTime: expect.any(String) as string, token: expect.any(String) as string })));
    const [e] = written[0]!;
    expect(e!.event).toMatchObject({ source: 'billing/api', subject: 'acme', type: VOID_TYPE });
    expect(e!.event.id).toMatch(/^void-[0-9a-f]{32}$/);
    expect(e!.headers).toMatchObject({ 'ordo-correction': 'void', 'ordo-corrects-source': 'billing/api', 'ordo-corrects-id': 'evt-7' });
    expect(written[1]![0]!.event.id).toBe(e!.event.id);
    expect(pipelineVerdict(e!.event, e!.headers)).toBeUndefined(); // what the pipeline's decode would accept
  });

  it('an amend carries the amended content; its id and source may be given; a different content is a different id', async () => {
    written.length = 0;
    const body = { subject: 'acme', type: 'api.request', time: '2026-11-30T10:00:00Z', data: { value: '3.5', dimensions: { region: 'eu' } } };
    expect((await post('/v1/events/s/e1/amend', body)).status).toBe(202);
    expect((await post('/v1/events/s/e1/amend', { ...body, data: { dimensions: { region: 'eu' }, value: '3.5' } })).status).toBe(202);
    expect((await post('/v1/events/s/e1/amend', { ...body, data: { value: '4' } })).status).toBe(202);
    expect((await post('/v1/events/s/e1/amend', { ...body, id: 'fix-1', source: 'support' })).status).toBe(202);
    const events = written.map((w) => w[0]!.event);
    expect(events[0]).toMatchObject({ source: 's', subject: 'acme', type: 'api.request', time: Date.parse('2026-11-30T10:00:00Z'), value: '3.5', dimensions: { region: 'eu' } });
    expect(events[1]!.id).toBe(events[0]!.id); // the same content in another key order
    expect(events[2]!.id).not.toBe(events[0]!.id);
    expect(events[3]).toMatchObject({ id: 'fix-1', source: 'support' });
    expect(written[0]![0]!.headers).toMatchObject({ 'ordo-correction': 'amend', 'ordo-corrects-source': 's', 'ordo-corrects-id': 'e1' });
  });

  it.each([
    ['/v1/events/s/e1/void', {}, 400, 'invalid-body', /needs "subject"/],
    ['/v1/events/s/e1/void', { subject: 'acme', value: '1' }, 400, 'invalid-body', /field "value" is not one a void takes/],
    ['/v1/events/s/e1/amend', { subject: 'acme', type: 'x' }, 400, 'invalid-body', /needs "time"/],
    ['/v1/events/s/e1/amend', { subject: 'acme', type: 'x', time: 'yesterday' }, 400, 'invalid-events', /not a valid event/],
    ['/v1/events/s/e1/amend', { subject: 'acme', type: 'x', time: '2026-11-30T10:00:00Z', data: { value: 'NaN' } }, 400, 'invalid-events', /not a valid event/],
    ['/v1/events/s/e1/void', [1], 400, 'invalid-body', /a void is a JSON object/],
    ['/v1/events/s/e1/void', { subject: 'acme', id: 'e1', source: 's' }, 400, 'invalid-body', /own \(source, id\) is the original's/],
    ['/v1/events/s/%E0%A4%A/void', { subject: 'acme' }, 400, 'bad-parameter', /percent-encoding/],
    [`/v1/events/s/${'x'.repeat(1025)}/void`, { subject: 'acme' }, 400, 'bad-parameter', /longer than 1024 bytes/],
    ['/v1/events/s/e1/delete', { subject: 'acme' }, 404, 'not-found', /void/],
  ])('%s %j: %i %s', async (path, body, status, kind, message) => {
    const answer = await post(path, body);
    expect(answer.status).toBe(status);
    expect(answer.json.error?.kind).toBe(kind);
    expect(answer.json.error?.message).toMatch(message);
  });

  it('wrong media type 415, wrong method 405, junk JSON 400', async () => {
    expect((await post('/v1/events/s/e1/void', { subject: 'a' }, { contentType: 'text/plain' })).status).toBe(415);
    expect((await post('/v1/events/s/e1/void', undefined, { method: 'GET' })).status).toBe(405);
    expect((await post('/v1/events/s/e1/void', '{"subject":')).json.error?.kind).toBe('malformed-json');
  });

  it('property: any body answers 202 or a 4xx, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('void', 'amend'), fc.jsonValue(), async (kind, body) => {
        const answer = await post(`/v1/events/s/e1/${kind}`, body);
        expect(answer.status === 202 || (answer.status >= 400 && answer.status < 500)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});
