import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRecordError, BadServiceTimeError } from '../../src/errors.js';
import {
  COUNTER_BITS,
  MAX_COUNTER,
  MAX_MILLIS,
  MAX_SERVICE_TIME,
  compareStamps,
  counterOf,
  formatServiceTime,
  makeServiceTime,
  millisOf,
  parseServiceTime,
  parseServiceTimeHeader,
  type Stamp,
} from '../../src/clock/index.js';

const anyTime = fc.bigInt({ min: 0n, max: MAX_SERVICE_TIME });
const anyMillis = fc.bigInt({ min: 0n, max: BigInt(MAX_MILLIS) }).map(Number);
const anyCounter = fc.integer({ min: 0, max: MAX_COUNTER });

function expectBadServiceTime(fn: () => unknown): BadServiceTimeError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(BadServiceTimeError);
  expect(caught).toBeInstanceOf(BadRecordError);
  const error = caught as BadServiceTimeError;
  expect(error.reason).toBe('bad-service-time');
  expect(error.code).toBe('ORDO_BAD_SERVICE_TIME');
  expect(error.retriable).toBe(false);
  return error;
}

describe('constants', () => {
  it('describe a 48 + 16 bit layout', () => {
    expect(COUNTER_BITS).toBe(16n);
    expect(MAX_COUNTER).toBe(65535);
    expect(MAX_MILLIS).toBe(281474976710655);
    expect(MAX_SERVICE_TIME).toBe(18446744073709551615n);
    expect(makeServiceTime(MAX_MILLIS, MAX_COUNTER)).toBe(MAX_SERVICE_TIME);
  });
});

describe('makeServiceTime / millisOf / counterOf', () => {
  it('round-trips the two fields', () => {
    fc.assert(
      fc.property(anyMillis, anyCounter, (ms, c) => {
        const t = makeServiceTime(ms, c);
        expect(millisOf(t)).toBe(ms);
        expect(counterOf(t)).toBe(c);
        expect(t).toBe(BigInt(ms) * 65536n + BigInt(c));
      }),
    );
  });

  it('splits any uint64 into fields that rebuild it', () => {
    fc.assert(
      fc.property(anyTime, (t) => {
        expect(makeServiceTime(millisOf(t), counterOf(t))).toBe(t);
      }),
    );
  });

  it('orders like (millis, counter) lexicographically', () => {
    fc.assert(
      fc.property(anyMillis, anyCounter, anyMillis, anyCounter, (m1, c1, m2, c2) => {
        const lex = m1 !== m2 ? m1 < m2 : c1 < c2;
        expect(makeServiceTime(m1, c1) < makeServiceTime(m2, c2)).toBe(lex);
      }),
    );
  });

  it.each([
    [-1, 0],
    [1.5, 0],
    [Number.NaN, 0],
    [Number.POSITIVE_INFINITY, 0],
    [MAX_MILLIS + 1, 0],
    [0, -1],
    [0, 0.5],
    [0, MAX_COUNTER + 1],
    [0, Number.NaN],
  ])('rejects millis=%s counter=%s with RangeError', (ms, c) => {
    expect(() => makeServiceTime(ms, c)).toThrow(RangeError);
  });
});

describe('formatServiceTime / parseServiceTime', () => {
  it('round-trips any uint64 through 16 lowercase hex digits', () => {
    fc.assert(
      fc.property(anyTime, (t) => {
        const text = formatServiceTime(t);
        expect(text).toMatch(/^[0-9a-f]{16}$/);
        expect(parseServiceTime(text)).toBe(t);
      }),
    );
  });

  it.each([
    [0n, '0000000000000000', 0, 0],
    [1n, '0000000000000001', 0, 1],
    [0xffffn, '000000000000ffff', 0, MAX_COUNTER],
    [0x10000n, '0000000000010000', 1, 0],
    [makeServiceTime(MAX_MILLIS, 0), 'ffffffffffff0000', MAX_MILLIS, 0],
    [MAX_SERVICE_TIME, 'ffffffffffffffff', MAX_MILLIS, MAX_COUNTER],
    [makeServiceTime(1_700_000_000_000, 42), '018bcfe56800002a', 1_700_000_000_000, 42],
  ])('edge value %s <-> %s', (t, text, ms, c) => {
    expect(formatServiceTime(t)).toBe(text);
    expect(parseServiceTime(text)).toBe(t);
    expect(millisOf(t)).toBe(ms);
    expect(counterOf(t)).toBe(c);
  });

  it('hex string order equals numeric order', () => {
    fc.assert(
      fc.property(anyTime, anyTime, (a, b) => {
        const sa = formatServiceTime(a);
        const sb = formatServiceTime(b);
        expect(sa < sb).toBe(a < b);
        expect(sa === sb).toBe(a === b);
      }),
    );
  });

  it('format rejects values outside uint64', () => {
    expect(() => formatServiceTime(-1n)).toThrow(RangeError);
    expect(() => formatServiceTime(MAX_SERVICE_TIME + 1n)).toThrow(RangeError);
  });

  it.each([
    ['empty', ''],
    ['uppercase', 'ABCDEF0123456789'],
    ['one uppercase digit', '000000000000000A'],
    ['15 digits', '000000000000001'],
    ['17 digits', '00000000000000001'],
    ['0x prefix', '0x00000000000001'],
    ['non-hex letter', '000000000000000g'],
    ['leading space', ' 0000000000000001'],
    ['trailing newline', '0000000000000001\n'],
    ['inner space', '00000000 0000001'],
    ['minus sign', '-000000000000001'],
    ['plus sign', '+000000000000001'],
    ['decimal number', '1700000000000000000'],
    ['fullwidth digits', '０'.repeat(16)],
    ['arabic-indic digits', '٠'.repeat(16)],
    ['NUL padding', '000000000000001\u0000'],
  ])('parse rejects %s', (_label, text) => {
    const error = expectBadServiceTime(() => parseServiceTime(text));
    expect(error.message).toContain('16 lowercase hex digits');
    expect(error.message).toContain(JSON.stringify(text.slice(0, 40)));
  });

  it('parse rejects every string that is not 16 lowercase hex digits', () => {
    const notHex16 = fc.string({ unit: 'binary', maxLength: 24 }).filter((s) => !/^[0-9a-f]{16}$/.test(s));
    fc.assert(
      fc.property(notHex16, (text) => {
        expectBadServiceTime(() => parseServiceTime(text));
      }),
    );
  });

  it('parse rejects the uppercase spelling of any time that has a letter', () => {
    const withLetter = anyTime.map(formatServiceTime).filter((s) => /[a-f]/.test(s));
    fc.assert(
      fc.property(withLetter, (text) => {
        expectBadServiceTime(() => parseServiceTime(text.toUpperCase()));
      }),
    );
  });

  it('quotes only a prefix of a long bad value', () => {
    const long = 'x'.repeat(39) + 'Y' + 'z'.repeat(10_000);
    const error = expectBadServiceTime(() => parseServiceTime(long));
    expect(error.message).toContain('xY');
    expect(error.message).not.toContain('Yz');
    expect(error.message).toContain('10040 chars');
    expect(error.message.length).toBeLessThan(200);
  });

  it('rejects a non-string at runtime with BadServiceTimeError', () => {
    expectBadServiceTime(() => parseServiceTime(42 as unknown as string));
  });
});

describe('parseServiceTimeHeader', () => {
  const text = '018bcfe56800002a';
  const t = makeServiceTime(1_700_000_000_000, 42);

  it('absent header -> undefined', () => {
    expect(parseServiceTimeHeader(undefined)).toBeUndefined();
    expect(parseServiceTimeHeader([])).toBeUndefined();
  });

  it.each([
    ['string', text],
    ['Buffer', Buffer.from(text, 'utf8')],
    ['[string]', [text]],
    ['[Buffer]', [Buffer.from(text, 'utf8')]],
  ])('decodes a %s', (_label, value) => {
    expect(parseServiceTimeHeader(value)).toBe(t);
  });

  it('round-trips any time sent as a Buffer', () => {
    fc.assert(
      fc.property(anyTime, (time) => {
        expect(parseServiceTimeHeader(Buffer.from(formatServiceTime(time)))).toBe(time);
      }),
    );
  });

  it.each([
    ['two strings', [text, text]],
    ['string and Buffer', [text, Buffer.from(text)]],
    ['three values', [text, text, text]],
  ])('rejects multiple values (%s)', (_label, value) => {
    const error = expectBadServiceTime(() => parseServiceTimeHeader(value));
    expect(error.message).toContain('multiple service-time headers');
  });

  it.each([
    ['bad string', 'nope'],
    ['bad Buffer', Buffer.from('NOPE')],
    ['uppercase Buffer', Buffer.from(text.toUpperCase())],
    ['invalid UTF-8 Buffer', Buffer.from([0xff, 0xfe, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30])],
    ['single bad element', ['0x1']],
    ['empty Buffer', Buffer.alloc(0)],
  ])('rejects a %s', (_label, value) => {
    expectBadServiceTime(() => parseServiceTimeHeader(value));
  });
});

describe('compareStamps', () => {
  const anyNode = fc.oneof(fc.constantFrom('a', 'b', 'node-1', 'node-10', 'node-9'), fc.string({ unit: 'binary', maxLength: 6 }));
  const anyStamp: fc.Arbitrary<Stamp> = fc.record({
    time: fc.oneof(fc.bigInt({ min: 0n, max: 3n }), anyTime),
    node: anyNode,
  });

  it('returns exactly -1, 0 or 1 and is antisymmetric', () => {
    fc.assert(
      fc.property(anyStamp, anyStamp, (a, b) => {
        const ab = compareStamps(a, b);
        expect([-1, 0, 1]).toContain(ab);
        expect(compareStamps(b, a)).toBe(ab === 0 ? 0 : -ab);
        expect(ab === 0).toBe(a.time === b.time && a.node === b.node);
      }),
    );
  });

  it('is reflexive', () => {
    fc.assert(
      fc.property(anyStamp, (a) => {
        expect(compareStamps(a, { time: a.time, node: a.node })).toBe(0);
      }),
    );
  });

  it('is transitive', () => {
    fc.assert(
      fc.property(anyStamp, anyStamp, anyStamp, (a, b, c) => {
        if (compareStamps(a, b) <= 0 && compareStamps(b, c) <= 0) {
          expect(compareStamps(a, c)).toBeLessThanOrEqual(0);
        }
      }),
    );
  });

  it('orders by time first, whatever the nodes', () => {
    fc.assert(
      fc.property(anyTime, anyTime, anyNode, anyNode, (t1, t2, n1, n2) => {
        fc.pre(t1 !== t2);
        expect(compareStamps({ time: t1, node: n1 }, { time: t2, node: n2 })).toBe(t1 < t2 ? -1 : 1);
      }),
    );
  });

  it.each([
    ['a', 'b', -1],
    ['b', 'a', 1],
    ['B', 'a', -1], // code units, not locale: 'B' (0x42) < 'a' (0x61)
    ['node-10', 'node-9', -1], // not numeric-aware
    ['\u{10000}', '\uffff', -1], // UTF-16 code units: 0xd800 < 0xffff
    ['', 'a', -1],
    ['same', 'same', 0],
  ])('breaks time ties by node: %j vs %j -> %i', (n1, n2, expected) => {
    const time = makeServiceTime(1_700_000_000_000, 7);
    expect(compareStamps({ time, node: n1 }, { time, node: n2 })).toBe(expected);
  });
});
