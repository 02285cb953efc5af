import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime } from '../../src/clock/service-time.js';
import { BadRecordError, OrdoError } from '../../src/errors.js';
import { DecodeStep, readProducerSeq, readTimeContext, schemaIdsOf } from '../../src/processors/decode.js';
import type { Headers, SourceRecord } from '../../src/model/records.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { MapSchemaLookup, T0, olderUsageEventType, anyUsageEvent, catchError, framedEvent, sourceRecord, usageEvent } from '../support/unit/fixtures.js';

const CURRENT = 1;
const UNKNOWN = 2;
const OLDER = 3;
const INCOMPATIBLE = 4;
const NOT_PREFETCHED = 99;

const olderType = olderUsageEventType;

/** Lacks `subject`, which the reader needs and has no default for. */
const incompatibleType = avro.Type.forSchema({
  type: 'record',
  name: 'UsageEvent',
  namespace: 'dev.ordo.v1',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'time', type: 'long' },
  ],
});

function lookup(): MapSchemaLookup {
  return new MapSchemaLookup([
    [CURRENT, usageEventType],
    [UNKNOWN, null],
    [OLDER, olderType],
    [INCOMPATIBLE, incompatibleType],
  ]);
}

function decodeOne(record: SourceRecord) {
  return new DecodeStep(lookup()).run([record]);
}

function expectDead(record: SourceRecord, reason: string): string {
  const { items, dead } = decodeOne(record);
  expect(items).toEqual([]);
  expect(dead).toHaveLength(1);
  expect(dead[0]!.reason).toBe(reason);
  expect(dead[0]!.source).toBe(record);
  return dead[0]!.message;
}

function plain(event: UsageEvent): UsageEvent {
  return { ...event, dimensions: { ...event.dimensions } };
}

describe('DecodeStep', () => {
  it('decodes a framed UsageEvent written with the current schema', () => {
    const event = usageEvent();
    const record = sourceRecord({ value: framedEvent(CURRENT, event) });
    const { items, dead } = decodeOne(record);
    expect(dead).toEqual([]);
    expect(items).toHaveLength(1);
    expect(items[0]!.source).toBe(record);
    expect(plain(items[0]!.event)).toEqual(event);
    expect(items[0]!.context).toBeUndefined();
  });

  it('decodes any valid event (property)', () => {
    const step = new DecodeStep(lookup());
    fc.assert(
      fc.property(anyUsageEvent, (event) => {
        const { items, dead } = step.run([sourceRecord({ value: framedEvent(CURRENT, event) })]);
        expect(dead).toEqual([]);
        expect(plain(items[0]!.event)).toEqual(event);
      }),
    );
  });

  it('reads an older compatible writer schema through schema resolution, filling defaults', () => {
    const record = sourceRecord({ value: framedEvent(OLDER, { id: 'e-7', source: 'svc', type: 'api.request', subject: 'cust', time: T0 }, olderType) });
    const { items, dead } = decodeOne(record);
    expect(dead).toEqual([]);
    expect(plain(items[0]!.event)).toEqual({ id: 'e-7', source: 'svc', type: 'api.request', subject: 'cust', time: T0, value: '1', dimensions: {} });
  });

  it('dead-letters an id the registry does not know as unknown-schema', () => {
    const message = expectDead(sourceRecord({ value: framedEvent(UNKNOWN, usageEvent()) }), 'unknown-schema');
    expect(message).toContain(`${UNKNOWN}`);
  });

  it('dead-letters a writer schema that cannot be read as UsageEvent as incompatible-schema', () => {
    const value = framedEvent(INCOMPATIBLE, { id: 'x', time: T0 }, incompatibleType);
    expectDead(sourceRecord({ value }), 'incompatible-schema');
    // The failed resolution is remembered, and the answer stays the same.
    const step = new DecodeStep(lookup());
    const again = step.run([sourceRecord({ value }), sourceRecord({ value })]);
    expect(again.dead.map((d) => d.reason)).toEqual(['incompatible-schema', 'incompatible-schema']);
  });

  it.each([
    ['no value', null],
    ['an empty value', Buffer.alloc(0)],
    ['a short value', Buffer.from([0, 0, 0])],
    ['a wrong magic byte', Buffer.concat([Buffer.from([1]), framedEvent(CURRENT, usageEvent()).subarray(1)])],
    ['a JSON body', Buffer.from(JSON.stringify(usageEvent()))],
    ['a garbage Avro body', frame(CURRENT, Buffer.from([0xff, 0xff, 0xff, 0xff]))],
    ['a truncated Avro body', framedEvent(CURRENT, usageEvent()).subarray(0, 20)],
    ['an empty Avro body', frame(CURRENT, Buffer.alloc(0))],
  ])('dead-letters %s as undecodable', (_what, value) => {
    expectDead(sourceRecord({ value }), 'undecodable');
  });

  it('dead-letters an event that decodes but fails validation as invalid-event, or invalid-value for its value', () => {
    expectDead(sourceRecord({ value: framedEvent(CURRENT, usageEvent({ value: '1e5' })) }), 'invalid-value');
    expectDead(sourceRecord({ value: framedEvent(CURRENT, usageEvent({ subject: '' })) }), 'invalid-event');
  });

  it.each<[string, Headers]>([
    ['a malformed service-time', { 'service-time': 'not-a-time' }],
    ['an uppercase service-time', { 'service-time': formatServiceTime(makeServiceTime(T0, 1)).toUpperCase() }],
    ['two service-time headers', { 'service-time': [formatServiceTime(1n), formatServiceTime(2n)] }],
    ['a service-node without a service-time', { 'service-node': 'upstream-1' }],
    ['an empty service-node', { 'service-time': formatServiceTime(makeServiceTime(T0, 0)), 'service-node': '' }],
    ['a service-node with spaces', { 'service-time': formatServiceTime(makeServiceTime(T0, 0)), 'service-node': 'a b' }],
    ['two service-node headers', { 'service-time': formatServiceTime(makeServiceTime(T0, 0)), 'service-node': ['a', 'b'] }],
  ])('dead-letters %s as bad-service-time', (_what, headers) => {
    expectDead(sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers }), 'bad-service-time');
  });

  it('reads the upstream time context from string or Buffer headers', () => {
    const time = makeServiceTime(T0, 3);
    const step = new DecodeStep(lookup());
    const { items, dead } = step.run([
      sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers: { 'service-time': formatServiceTime(time), 'service-node': 'billing-api-0' } }),
      sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers: { 'service-time': Buffer.from(formatServiceTime(time)), 'service-node': [Buffer.from('n2')] } }),
      sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers: { 'service-time': formatServiceTime(time) } }),
    ]);
    expect(dead).toEqual([]);
    expect(items.map((i) => i.context)).toEqual([
      { time, node: 'billing-api-0' },
      { time, node: 'n2' },
      { time, node: undefined },
    ]);
  });

  it('reads producer-seq (producer-id, else the context node) and dead-letters a malformed one as invalid-event', () => {
    const ok = decodeOne(sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers: { 'producer-seq': '7' } }));
    expect(ok.items[0]!.producer).toEqual({ id: '', seq: 7n });
    const message = expectDead(sourceRecord({ value: framedEvent(CURRENT, usageEvent()), headers: { 'producer-seq': '-1' } }), 'invalid-event');
    expect(message).toMatch(/producer-seq header "-1" is not a decimal integer/);
    expect(readProducerSeq({ 'producer-seq': '7' }, { time: 0n, node: 'svc-b' })).toEqual({ id: 'svc-b', seq: 7n });
    expect(readProducerSeq({ 'producer-seq': '7', 'producer-id': 'p' }, undefined)).toEqual({ id: 'p', seq: 7n });
    expect(() => readProducerSeq({ 'producer-seq': '99999999999999999999' }, undefined)).toThrow(/2\^63-1/);
  });

  it('throws (not dead-letters) when a schema id was not prefetched: an engine bug, not data', () => {
    const step = new DecodeStep(lookup());
    const error = catchError(() => step.run([sourceRecord({ value: framedEvent(CURRENT, usageEvent()) }), sourceRecord({ value: framedEvent(NOT_PREFETCHED, usageEvent()) })]));
    expect(error).toBeInstanceOf(OrdoError);
    expect(error).not.toBeInstanceOf(BadRecordError);
    expect((error as Error).message).toContain(`${NOT_PREFETCHED}`);
  });

  it('keeps the input order of good records and isolates bad ones', () => {
    const records = [
      sourceRecord({ value: framedEvent(CURRENT, usageEvent({ id: 'a' })) }),
      sourceRecord({ value: null }),
      sourceRecord({ value: framedEvent(UNKNOWN, usageEvent()) }),
      sourceRecord({ value: framedEvent(OLDER, { id: 'b', source: 's', type: 't', subject: 'c', time: 1 }, olderType) }),
      sourceRecord({ value: framedEvent(CURRENT, usageEvent({ id: 'c' })), headers: { 'service-node': 'orphan' } }),
      sourceRecord({ value: framedEvent(CURRENT, usageEvent({ id: 'd' })) }),
    ];
    const { items, dead } = new DecodeStep(lookup()).run(records);
    expect(items.map((i) => i.event.id)).toEqual(['a', 'b', 'd']);
    expect(items.map((i) => i.source)).toEqual([records[0], records[3], records[5]]);
    expect(dead.map((d) => [d.source, d.reason])).toEqual([
      [records[1], 'undecodable'],
      [records[2], 'unknown-schema'],
      [records[4], 'bad-service-time'],
    ]);
  });
});

describe('readTimeContext', () => {
  it('is undefined without headers and for an empty service-time list', () => {
    expect(readTimeContext({})).toBeUndefined();
    expect(readTimeContext({ 'service-time': [] })).toBeUndefined();
    expect(readTimeContext({ traceparent: '00-abc-def-01' })).toBeUndefined();
  });

  it('parses any service time and printable node', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 255 }),
        (time, node) => {
          expect(readTimeContext({ 'service-time': formatServiceTime(time), 'service-node': node })).toEqual({ time, node });
        },
      ),
    );
  });
});

describe('schemaIdsOf', () => {
  it('lists each framed schema id once, skipping values that are not framed', () => {
    const records = [
      sourceRecord({ value: framedEvent(7, usageEvent()) }),
      sourceRecord({ value: framedEvent(7, usageEvent()) }),
      sourceRecord({ value: frame(0xffff_ffff, Buffer.alloc(0)) }),
      sourceRecord({ value: null }),
      sourceRecord({ value: Buffer.from([0, 0, 1]) }),
      sourceRecord({ value: Buffer.from([1, 0, 0, 0, 8]) }),
    ];
    expect(schemaIdsOf(records).sort((a, b) => a - b)).toEqual([7, 0xffff_ffff]);
    expect(schemaIdsOf([])).toEqual([]);
  });
});

describe('DecodeStep regressions', () => {
  it('dead-letters a body with trailing bytes after the event as undecodable', () => {
    const value = Buffer.concat([framedEvent(CURRENT, usageEvent()), Buffer.from('trailing garbage')]);
    expect(expectDead(sourceRecord({ value }), 'undecodable')).toMatch(/trailing/i);
  });

  it('dead-letters a dimension named __proto__ instead of silently dropping it', () => {
    const value = framedEvent(CURRENT, usageEvent({ dimensions: JSON.parse('{"__proto__":"x","region":"eu"}') as Record<string, string> }));
    expect(expectDead(sourceRecord({ value }), 'invalid-event')).toMatch(/__proto__/);
  });

  it('still accepts __proto__ as text inside ids and dimension values', () => {
    const event = usageEvent({ id: 'id-__proto__', dimensions: { note: 'a __proto__ b' } });
    const { items, dead } = decodeOne(sourceRecord({ value: framedEvent(CURRENT, event) }));
    expect(dead).toEqual([]);
    expect(items[0]!.event).toEqual(event);
  });

  it('treats an empty service-node header list like an empty service-time list: no header', () => {
    expect(readTimeContext({ 'service-node': [] })).toBeUndefined();
  });
});
