import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BATCH, SINGLE, itemsOf, mediaType, parseCloudEvents } from '../../src/ingest/cloudevents.js';
import { pipelineVerdict } from '../../src/processors/decode.js';
import { usageEventType } from '../../src/schema/usage-event.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');
const base = { specversion: '1.0', id: 'e1', source: 'svc', type: 'api.request', subject: 'acme' };

function one(item: unknown, requestTraceparent?: string) {
  return parseCloudEvents([item], { now: NOW, requestTraceparent });
}

describe('CloudEvents into UsageEvents', () => {
  it('maps the fields as the README says, with the defaults of the schema', () => {
    expect(one({ ...base, time: '2026-11-30T10:00:00.250+01:00', data: { value: '12.50', dimensions: { region: 'eu' } } })).toMatchObject({
      ok: true,
      events: [{ event: { id: 'e1', source: 'svc', type: 'api.request', subject: 'acme', time: Date.parse('2026-11-30T09:00:00.250Z'), value: '12.50', dimensions: { region: 'eu' } }, headers: {} }],
    });
    // No time: the time of receipt; no data: value "1", no dimensions.
    expect(one(base)).toMatchObject({ ok: true, events: [{ event: { id: 'e1', source: 'svc', type: 'api.request', subject: 'acme', time: NOW, value: '1', dimensions: {} }, headers: {} }] });
  });

  it('gives the Avro body the pipeline checked, ready to frame', () => {
    const parsed = one({ ...base, data: { value: '3' } });
    expect(parsed.ok && usageEventType.fromBuffer(parsed.events[0]!.body)).toEqual({ id: 'e1', source: 'svc', type: 'api.request', subject: 'acme', time: NOW, value: '3', dimensions: {} });
  });

  it('keeps traceparent: the event\'s own attribute first, else the request\'s header', () => {
    const own = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const request = '00-11111111111111111111111111111111-2222222222222222-01';
    const parsed = parseCloudEvents([{ ...base, traceparent: own }, { ...base, id: 'e2' }], { now: NOW, requestTraceparent: request });
    expect(parsed.ok && parsed.events.map((e) => e.headers.traceparent)).toEqual([own, request]);
    expect(one({ ...base, traceparent: 'nope' })).toMatchObject({ ok: false, errors: [{ index: 0, kind: 'invalid-event', message: expect.stringMatching(/W3C traceparent/) }] });
  });

  it.each([
    [{ ...base, specversion: '0.3' }, 'invalid-event', /specversion must be "1.0"/],
    [{ ...base, subject: undefined }, 'invalid-event', /subject must be a string \(required\)/],
    [{ ...base, id: 5 }, 'invalid-event', /id must be a string/],
    [{ ...base, id: '' }, 'invalid-event', /id is empty/],
    [{ ...base, id: 'x'.repeat(1025) }, 'invalid-event', /id is longer than 1024/],
    [{ ...base, time: '2026-11-30 10:00' }, 'invalid-event', /not an RFC 3339 time/],
    [{ ...base, time: 1_700_000_000_000 }, 'invalid-event', /not an RFC 3339 time/],
    [{ ...base, time: '2026-02-30T10:00:00Z' }, 'invalid-event', /not an RFC 3339 time .*: it has day 30, but 2026-02 has 28 days/],
    [{ ...base, data: { value: '1e3' } }, 'invalid-value', /not a plain decimal/],
    [{ ...base, data: { value: 'NaN' } }, 'invalid-value', /not a plain decimal/],
    [{ ...base, data: { value: 12.5 } }, 'invalid-value', /decimal string/],
    [{ ...base, data: { value: '1', dimensions: { n: 5 } } }, 'invalid-event', /dimensions.n must be a string/],
    [{ ...base, data: { value: '1', dimensions: ['a'] } }, 'invalid-event', /object of strings/],
    [{ ...base, data: { value: '1', extra: true } }, 'invalid-event', /data.extra is not a field/],
    [{ ...base, data: 'text' }, 'invalid-event', /data must be an object/],
    [{ ...base, datacontenttype: 'text/xml' }, 'invalid-event', /datacontenttype/],
    [{ ...base, customer: 'acme' }, 'invalid-event', /attribute "customer" is not one Ordo keeps/],
    [JSON.parse('{"specversion":"1.0","id":"e","source":"s","type":"t","subject":"a","data":{"value":"1","dimensions":{"__proto__":"x"}}}'), 'invalid-event', /__proto__/],
    [null, 'invalid-event', /expected a CloudEvent/],
    [[base], 'invalid-event', /expected a CloudEvent/],
  ])('refuses %j as %s', (item, kind, message) => {
    expect(one(item)).toMatchObject({ ok: false, errors: [{ index: 0, kind, message: expect.stringMatching(message) }] });
  });

  it('reports every invalid item of a batch with its index, and accepts none of it', () => {
    const parsed = parseCloudEvents([base, { ...base, id: '' }, base, { ...base, data: { value: '-' } }], { now: NOW });
    expect(parsed).toMatchObject({ ok: false, errors: [{ index: 1 }, { index: 3 }] });
  });

  it('never throws on any JSON, and what it accepts the pipeline accepts', () => {
    const anyItem = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          specversion: fc.constantFrom('1.0', '0.3', 1),
          id: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()),
          source: fc.string({ maxLength: 10 }),
          type: fc.string({ maxLength: 10 }),
          subject: fc.string({ maxLength: 10 }),
          time: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
          data: fc.record({ value: fc.oneof(fc.stringMatching(/^-?\d{1,5}(\.\d{1,3})?$/), fc.string(), fc.double()), dimensions: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())) }, { requiredKeys: [] }),
        },
        { requiredKeys: ['specversion'] },
      ),
    );
    fc.assert(
      fc.property(fc.array(anyItem, { maxLength: 5 }), (items) => {
        const parsed = parseCloudEvents(items, { now: NOW });
        if (parsed.ok) {
          expect(parsed.events).toHaveLength(items.length);
          for (const e of parsed.events) expect(pipelineVerdict(e.event, e.headers)).toBeUndefined();
        } else {
          expect(parsed.errors.length).toBeGreaterThan(0);
          for (const e of parsed.errors) expect(e.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('reads content types and body shapes', () => {
    expect(mediaType('Application/CloudEvents-Batch+JSON; charset=utf-8')).toBe(BATCH);
    expect(mediaType(undefined)).toBeUndefined();
    expect(itemsOf({ a: 1 }, true)).toEqual([{ a: 1 }]);
    expect(itemsOf([{ a: 1 }], true)).toBeUndefined();
    expect(itemsOf([1, 2], false)).toEqual([1, 2]);
    expect(itemsOf({}, false)).toBeUndefined();
    expect(SINGLE).toBe('application/cloudevents+json');
  });
});
