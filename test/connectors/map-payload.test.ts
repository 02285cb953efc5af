import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDescriptor } from '../../src/connectors/descriptor.js';
import { mapPayload, valueAt } from '../../src/connectors/map-payload.js';

const PAYMENTS = parseDescriptor(
  `connector: 1
name: payments
mappings:
  id: { path: id }
  source: { const: payments-api }
  type: { const: payment.captured }
  subject: { path: metadata.customer }
  time: { path: created, format: unix-seconds }
  value: { path: amount, scale: -2 }
  dimensions:
    currency: { path: currency }
    method: { path: payment_method.type, optional: true }
    channel: { const: web }
`,
  'payments.yaml',
);

const payment = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'pi_1',
  amount: 1234,
  currency: 'eur',
  created: 1_764_536_400,
  metadata: { customer: 'cus_acme' },
  payment_method: { type: 'card' },
  ...over,
});

describe('mapPayload', () => {
  it('maps nested paths, constants, cents at scale -2 and unix seconds to a CloudEvent', () => {
    expect(mapPayload(PAYMENTS, payment())).toEqual({
      ok: true,
      event: {
        specversion: '1.0',
        id: 'pi_1',
        source: 'payments-api',
        type: 'payment.captured',
        subject: 'cus_acme',
        time: '2025-11-30T21:00:00.000Z',
        data: { value: '12.34', dimensions: { currency: 'eur', method: 'card', channel: 'web' } },
      },
    });
  });

  it('leaves out an optional dimension the payload does not have, and takes decimal strings and integer ids', () => {
    const result = mapPayload(PAYMENTS, payment({ payment_method: undefined, amount: '0.5', metadata: { customer: 42 } }));
    expect(result).toMatchObject({ ok: true, event: { subject: '42', data: { value: '0.005', dimensions: { currency: 'eur', channel: 'web' } } } });
  });

  it.each([
    ['a missing field', { metadata: {} }, 'metadata.customer', /is missing/],
    ['a null field', { id: null }, 'id', /is null/],
    ['an object where a string belongs', { id: { x: 1 } }, 'id', /expected a string \(or an integer\), got an object/],
    ['a float id', { id: 1.5 }, 'id', /got number 1.5/],
    ['a value that is no number', { amount: 'twelve' }, 'amount', /"twelve" is not a decimal number/],
    ['a value with an exponent', { amount: '1e3' }, 'amount', /not a decimal number/],
    ['a boolean value', { amount: true }, 'amount', /expected a number or a decimal string, got boolean true/],
    ['an unsafe integer value', { amount: 2 ** 60 }, 'amount', /beyond 2\^53/],
    ['a time that is a string of letters', { created: 'yesterday' }, 'created', /not seconds since the Unix epoch/],
    ['a time beyond year 9999', { created: 9e12 }, 'created', /outside the years 0000 to 9999/],
    ['a time beyond any date', { created: 1e15 }, 'created', /out of range/],
    ['a missing required dimension', { currency: undefined }, 'currency', /missing \(mark the dimension optional/],
    ['an array dimension', { currency: ['eur'] }, 'currency', /got an array/],
    ['a path through a string', { metadata: 'cus_acme' }, 'metadata.customer', /is missing/],
  ])('names the path of %s', (_, over, path, message) => {
    const result = mapPayload(PAYMENTS, payment(over));
    expect(result).toMatchObject({ ok: false, path });
    if (!result.ok) expect(result.message).toMatch(message);
  });

  it('refuses a payload that is not an object, with the empty path', () => {
    for (const payload of [null, [], 'x', 3]) expect(mapPayload(PAYMENTS, payload)).toMatchObject({ ok: false, path: '' });
  });

  it('reads RFC 3339 (any offset, normalised to UTC) and unix milliseconds; refuses impossible dates', () => {
    const rfc = parseDescriptor(
      `connector: 1\nname: r\nmappings:\n  id: { path: id }\n  source: { const: s }\n  type: { const: t }\n  subject: { path: s }\n  time: { path: at, format: rfc3339 }\n  value: { const: "1" }\n`,
      'r.yaml',
    );
    const at = (time: unknown): unknown => mapPayload(rfc, { id: 'a', s: 'acme', at: time });
    expect(at('2026-11-30T22:00:00.123+01:00')).toMatchObject({ ok: true, event: { time: '2026-11-30T21:00:00.123Z', data: { value: '1' } } });
    expect(at('2026-02-30T00:00:00Z')).toMatchObject({ ok: false, path: 'at', message: expect.stringContaining('not an RFC 3339 time') });
    expect(at('2028-02-29T00:00:00Z')).toMatchObject({ ok: true });
    expect(at('2026-11-30 22:00:00')).toMatchObject({ ok: false, path: 'at' });
    expect(at(1_764_536_400)).toMatchObject({ ok: false, path: 'at', message: expect.stringContaining('expected an RFC 3339 time string') });
    const ms = parseDescriptor(
      `connector: 1\nname: m\nmappings:\n  id: { path: id }\n  source: { const: s }\n  type: { const: t }\n  subject: { path: s }\n  time: { path: at, format: unix-millis }\n  value: { const: "1" }\n`,
      'm.yaml',
    );
    expect(mapPayload(ms, { id: 'a', s: 'acme', at: 1_764_536_400_123 })).toMatchObject({ ok: true, event: { time: '2025-11-30T21:00:00.123Z' } });
    expect(mapPayload(ms, { id: 'a', s: 'acme', at: '1764536400123' })).toMatchObject({ ok: true, event: { time: '2025-11-30T21:00:00.123Z' } });
    // Fractional seconds are kept to the millisecond, exactly (no float rounding).
    expect(mapPayload(PAYMENTS, payment({ created: '1764536400.1239' }))).toMatchObject({ ok: true, event: { time: '2025-11-30T21:00:00.123Z' } });
  });

  it('does not read through the prototype: __proto__ and constructor paths find nothing', () => {
    expect(valueAt({}, ['constructor'])).toBeUndefined();
    expect(valueAt(JSON.parse('{"__proto__": {"a": 1}}'), ['__proto__', 'a'])).toBe(1);
    expect(valueAt({ a: [{ b: 'x' }] }, ['a', '0', 'b'])).toBe('x');
    expect(valueAt({ a: [{ b: 'x' }] }, ['a', '01', 'b'])).toBeUndefined();
    expect(valueAt({ a: [{ b: 'x' }] }, ['a', 'length'])).toBeUndefined();
  });

  it('never throws on arbitrary JSON, and an event it returns always has string fields and a decimal value', () => {
    // Mostly well-typed fields with arbitrary JSON mixed in, so that every check is reached.
    const near = fc.record(
      {
        id: fc.oneof(fc.string(), fc.jsonValue()),
        amount: fc.oneof(fc.double(), fc.integer(), fc.string(), fc.stringMatching(/^-?\d{1,45}(\.\d{1,45})?$/), fc.jsonValue()),
        currency: fc.oneof(fc.string(), fc.jsonValue()),
        created: fc.oneof(fc.double(), fc.maxSafeInteger(), fc.integer({ min: 8_000_000_000_000, max: 9_000_000_000_000 }), fc.string(), fc.jsonValue()),
        metadata: fc.oneof(fc.record({ customer: fc.oneof(fc.string(), fc.jsonValue()) }), fc.jsonValue()),
        payment_method: fc.oneof(fc.record({ type: fc.jsonValue() }), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), near), (payload) => {
        const result = mapPayload(PAYMENTS, payload);
        if (!result.ok) {
          expect(typeof result.path).toBe('string');
          expect(result.message.length).toBeGreaterThan(0);
          return;
        }
        for (const field of ['id', 'source', 'type', 'subject', 'time'] as const) expect(typeof result.event[field]).toBe('string');
        expect(result.event.data.value).toMatch(/^-?(?:0|[1-9]\d{0,37})(?:\.\d{1,38})?$/);
      }),
      { numRuns: 3000 },
    );
  });
});
