import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRecordError } from '../../src/errors.js';
import { DECIMAL, type UsageEvent, usageEventSchema, usageEventType, validateUsageEvent } from '../../src/schema/usage-event.js';
import { anyDecimal, anyUsageEvent, catchError, olderUsageEventType, usageEvent } from '../support/unit/fixtures.js';

function expectInvalid(event: UsageEvent, reason: 'invalid-event' | 'invalid-value' = 'invalid-event'): BadRecordError {
  const error = catchError(() => validateUsageEvent(event));
  expect(error).toBeInstanceOf(BadRecordError);
  const bad = error as BadRecordError;
  expect(bad.reason).toBe(reason);
  return bad;
}

describe('UsageEvent schema', () => {
  it('is the dev.ordo.v1.UsageEvent record with CloudEvents field names', () => {
    expect(usageEventType.name).toBe('dev.ordo.v1.UsageEvent');
    const fields = (usageEventSchema as { fields: { name: string }[] }).fields.map((f) => f.name);
    expect(fields).toEqual(['id', 'source', 'type', 'subject', 'time', 'value', 'dimensions']);
  });

  it('round-trips arbitrary valid events through Avro', () => {
    fc.assert(
      fc.property(anyUsageEvent, (event) => {
        validateUsageEvent(event);
        const decoded = usageEventType.fromBuffer(usageEventType.toBuffer(event)) as UsageEvent;
        expect({ ...decoded, dimensions: { ...decoded.dimensions } }).toEqual(event);
        validateUsageEvent(decoded);
      }),
    );
  });

  it('keeps a decimal value byte for byte (no float conversion)', () => {
    const value = '12345678901234567890123456789012345678.00000000000000000000000000000000000001';
    const decoded = usageEventType.fromBuffer(usageEventType.toBuffer(usageEvent({ value }))) as UsageEvent;
    expect(decoded.value).toBe(value);
  });

  it('fills value and dimensions from their defaults when an older writer lacks them', () => {
    const older = olderUsageEventType;
    const bytes = older.toBuffer({ id: 'a', source: 's', type: 't', subject: 'c', time: 5 });
    const decoded = usageEventType.fromBuffer(bytes, usageEventType.createResolver(older)) as UsageEvent;
    expect(decoded.value).toBe('1');
    expect(decoded.dimensions).toEqual({});
  });
});

describe('validateUsageEvent', () => {
  it.each(['0', '-0', '1', '-1.5', '12.50', '0.000001', '100', '9'.repeat(38), `${'9'.repeat(38)}.${'0'.repeat(37)}1`, '-123456789012345678901234567890.123456789'])(
    'accepts the plain decimal %s',
    (value) => {
      expect(() => validateUsageEvent(usageEvent({ value }))).not.toThrow();
      expect(DECIMAL.test(value)).toBe(true);
    },
  );

  it.each(['NaN', 'Infinity', '-Infinity', '1e5', '1E5', '+1', '01', '-01', '1.', '.5', '-.5', '', '-', ' 1', '1 ', '1,5', '0x10', '1.2.3', '--1', '1'.repeat(39), `1.${'1'.repeat(39)}`, '١٢'])(
    'rejects the value %j as invalid-value',
    (value) => {
      const error = expectInvalid(usageEvent({ value }), 'invalid-value');
      expect(error.message).toContain('value');
    },
  );

  it('accepts every generated decimal', () => {
    fc.assert(
      fc.property(anyDecimal, (value) => {
        expect(() => validateUsageEvent(usageEvent({ value }))).not.toThrow();
      }),
    );
  });

  it('rejects whatever a number formats to in exponent notation', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: false }).filter((d) => /[eE]|N|I/.test(String(d))), (d) => {
        expectInvalid(usageEvent({ value: String(d) }), 'invalid-value');
      }),
    );
  });

  it.each(['id', 'source', 'type', 'subject'] as const)('rejects an empty %s and one over 1024 characters', (field) => {
    expect(expectInvalid(usageEvent({ [field]: '' })).message).toContain(field);
    expect(expectInvalid(usageEvent({ [field]: 'x'.repeat(1025) })).message).toContain(field);
    expect(() => validateUsageEvent(usageEvent({ [field]: 'x'.repeat(1024) }))).not.toThrow();
  });

  it('accepts times from the epoch to the end of year 9999 and rejects the rest', () => {
    const max = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    expect(() => validateUsageEvent(usageEvent({ time: 0 }))).not.toThrow();
    expect(() => validateUsageEvent(usageEvent({ time: max }))).not.toThrow();
    for (const time of [-1, max + 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(expectInvalid(usageEvent({ time })).message).toContain('time');
    }
  });

  it('limits dimensions to 64 non-empty names of at most 1024 characters, values likewise', () => {
    const dims = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`d${i}`, 'v']));
    expect(() => validateUsageEvent(usageEvent({ dimensions: dims(64) }))).not.toThrow();
    expectInvalid(usageEvent({ dimensions: dims(65) }));
    expectInvalid(usageEvent({ dimensions: { '': 'v' } }));
    expectInvalid(usageEvent({ dimensions: { ['k'.repeat(1025)]: 'v' } }));
    expectInvalid(usageEvent({ dimensions: { k: 'v'.repeat(1025) } }));
    expect(() => validateUsageEvent(usageEvent({ dimensions: { k: '' } }))).not.toThrow();
    expect(() => validateUsageEvent(usageEvent({ dimensions: {} }))).not.toThrow();
  });
});
