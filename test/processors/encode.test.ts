import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime } from '../../src/clock/service-time.js';
import { DecodeStep } from '../../src/processors/decode.js';
import { EncodeStep, passThroughHeaders } from '../../src/processors/encode.js';
import type { Headers, StampedEvent, TimeContext } from '../../src/model/records.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { unframe } from '../../src/schema/wire-format.js';
import { MapSchemaLookup, T0, anyUsageEvent, sourceRecord, usageEvent } from '../support/unit/fixtures.js';

const SCHEMA_ID = 41;
const STAMP = { time: makeServiceTime(T0, 7), node: 'ordo-0' };
const HEX16 = /^[0-9a-f]{16}$/;

function stamped(fields: { event?: UsageEvent; context?: TimeContext; headers?: Headers; stamp?: { time: bigint; node: string } } = {}): StampedEvent {
  const stamp = fields.stamp ?? STAMP;
  return {
    source: sourceRecord({ value: Buffer.from('raw'), headers: fields.headers ?? {} }),
    event: fields.event ?? usageEvent(),
    context: fields.context,
    stamp,
    orderKey: fields.context ? { time: fields.context.time, node: fields.context.node ?? '' } : stamp,
  };
}

function decodeValue(value: Buffer | string | null): { schemaId: number; event: UsageEvent } {
  if (!Buffer.isBuffer(value)) throw new Error('expected a Buffer value');
  const { schemaId, body } = unframe(value);
  return { schemaId, event: usageEventType.fromBuffer(body) as UsageEvent };
}

describe('EncodeStep', () => {
  const encode = new EncodeStep('usage-events-ordered', SCHEMA_ID);

  it('writes the event framed with the output schema id, keyed by subject, to the ordered topic', () => {
    const event = usageEvent({ subject: 'cust-9' });
    const [out] = encode.run([stamped({ event })]);
    expect(out!.topic).toBe('usage-events-ordered');
    expect(out!.key).toBe('cust-9');
    expect(out!.partition).toBeUndefined();
    const { schemaId, event: back } = decodeValue(out!.value);
    expect(schemaId).toBe(SCHEMA_ID);
    expect({ ...back, dimensions: { ...back.dimensions } }).toEqual(event);
  });

  it('sets service-time/service-node from the stamp and, without a context, the arrival stamp as the order key', () => {
    const [out] = encode.run([stamped()]);
    const arrival = formatServiceTime(STAMP.time);
    expect(out!.headers).toEqual({ 'service-time': arrival, 'service-node': 'ordo-0', 'origin-service-time': arrival, 'origin-service-node': 'ordo-0', 'ordo-origin': 'arrival' });
    expect(out!.headers['service-time']).toMatch(HEX16);
  });

  it('copies the input context to origin-service-time/origin-service-node', () => {
    const context = { time: makeServiceTime(T0 - 5, 2), node: 'billing-api' };
    const [out] = encode.run([stamped({ context })]);
    expect(out!.headers).toEqual({
      'service-time': formatServiceTime(STAMP.time),
      'service-node': 'ordo-0',
      'origin-service-time': formatServiceTime(context.time),
      'origin-service-node': 'billing-api',
      'ordo-origin': 'context',
    });
    const [noNode] = encode.run([stamped({ context: { time: context.time, node: undefined } })]);
    expect(noNode!.headers['origin-service-time']).toBe(formatServiceTime(context.time));
    expect('origin-service-node' in noNode!.headers).toBe(false);
  });

  it('passes traceparent and custom headers through unchanged', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const binary = Buffer.from([0, 1, 2, 255]);
    const [out] = encode.run([stamped({ headers: { traceparent, 'x-tenant': 'acme', 'x-bin': binary, 'x-repeated': ['first', 'last'], 'x-absent': undefined } })]);
    expect(out!.headers.traceparent).toBe(traceparent);
    expect(out!.headers['x-tenant']).toBe('acme');
    expect(out!.headers['x-bin']).toEqual(binary);
    expect(out!.headers['x-repeated']).toBe('last');
    expect('x-absent' in out!.headers).toBe(false);
  });

  it('passes a header named __proto__ through as a header, without touching the prototype', () => {
    const headers = JSON.parse('{"__proto__": "x", "a": "b"}') as Record<string, string>;
    const [out] = encode.run([stamped({ headers })]);
    expect(Object.getPrototypeOf(out!.headers)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(out!.headers, '__proto__')?.value).toBe('x');
    expect(out!.headers.a).toBe('b');
  });

  it('never passes through input ordo-seq, origin-* or service-* headers', () => {
    const [withoutContext] = encode.run([
      stamped({
        headers: {
          'service-time': formatServiceTime(1n),
          'service-node': 'spoofed',
          'origin-service-time': formatServiceTime(2n),
          'origin-service-node': 'spoofed-origin',
          'ordo-seq': '17',
          'ordo-origin': 'context',
          traceparent: 'tp',
        },
      }),
    ]);
    const stamp = formatServiceTime(STAMP.time);
    expect(withoutContext!.headers).toEqual({ 'service-time': stamp, 'service-node': 'ordo-0', 'origin-service-time': stamp, 'origin-service-node': 'ordo-0', 'ordo-origin': 'arrival', traceparent: 'tp' });

    const [withContext] = encode.run([
      stamped({
        context: { time: 5n, node: undefined },
        headers: { 'origin-service-node': 'stale', 'ordo-seq': Buffer.from('3') },
      }),
    ]);
    expect(withContext!.headers).toEqual({ 'service-time': formatServiceTime(STAMP.time), 'service-node': 'ordo-0', 'origin-service-time': formatServiceTime(5n), 'ordo-origin': 'context' });
  });

  it('keeps batch order', () => {
    const out = encode.run(['a', 'b', 'c'].map((id) => stamped({ event: usageEvent({ id }) })));
    expect(out.map((o) => decodeValue(o.value).event.id)).toEqual(['a', 'b', 'c']);
  });

  it('is read back by DecodeStep: same event, and the stamp becomes the next hop context (property)', () => {
    const decode = new DecodeStep(new MapSchemaLookup([[SCHEMA_ID, usageEventType]]));
    fc.assert(
      fc.property(
        anyUsageEvent,
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
        (event, time, contextTime) => {
          const context = contextTime === undefined ? undefined : { time: contextTime, node: 'up' };
          const [out] = encode.run([stamped({ event, stamp: { time, node: 'ordo-1' }, context })]);
          expect(out!.headers['service-time']).toMatch(HEX16);
          expect(out!.headers['origin-service-time']).toBe(formatServiceTime(contextTime ?? time));
          expect(out!.headers['ordo-origin']).toBe(contextTime === undefined ? 'arrival' : 'context');
          const { items, dead } = decode.run([sourceRecord({ value: out!.value as Buffer, headers: out!.headers })]);
          expect(dead).toEqual([]);
          expect({ ...items[0]!.event, dimensions: { ...items[0]!.event.dimensions } }).toEqual(event);
          expect(items[0]!.context).toEqual({ time, node: 'ordo-1' });
        },
      ),
    );
  });
});

describe('passThroughHeaders', () => {
  it('drops reserved and undefined headers and keeps the last of repeated values', () => {
    const out = passThroughHeaders({ a: 'x', b: ['1', '2'], c: undefined, d: [], keep: Buffer.from('k') }, new Set(['a']));
    expect(out).toEqual({ b: '2', keep: Buffer.from('k') });
  });
});
