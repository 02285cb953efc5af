import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalOfNumber, scaleDecimal } from '../../src/connectors/decimal-text.js';

/** A decimal text as an exact rational units / 10^places, in BigInt: the oracle. */
function rational(text: string): { units: bigint; places: number } {
  const point = text.indexOf('.');
  return point < 0 ? { units: BigInt(text), places: 0 } : { units: BigInt(text.slice(0, point) + text.slice(point + 1)), places: text.length - point - 1 };
}

/** a == b as rationals, by cross-multiplying (no division, no float). */
function sameValue(a: { units: bigint; places: number }, b: { units: bigint; places: number }): boolean {
  const places = Math.max(a.places, b.places);
  return a.units * 10n ** BigInt(places - a.places) === b.units * 10n ** BigInt(places - b.places);
}

const CANONICAL = /^(?:0|-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?)$/;

describe('scaleDecimal', () => {
  it.each([
    ['1234', -2, '12.34'],
    ['5', -2, '0.05'],
    ['-5', -3, '-0.005'],
    ['12.5', 2, '1250'],
    ['0.000', 5, '0'],
    ['-0', 0, '0'],
    ['007', 0, '7'],
    ['1.2300', 0, '1.23'],
    ['100', -2, '1'],
  ])('%s at scale %i is %s', (input, scale, expected) => {
    expect(scaleDecimal(input, scale)).toEqual({ ok: true, text: expected });
  });

  // Up to 26 digits moved by up to 12 places: within the 38 an event value may have.
  it('is exact against a BigInt oracle: units * 10^scale, canonical, for any decimal and scale', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: -12, max: 12 }), (units, places, scale) => {
        const digits = (units < 0n ? -units : units).toString().padStart(places + 1, '0');
        const text = `${units < 0n ? '-' : ''}${places === 0 ? digits : `${digits.slice(0, -places)}.${digits.slice(-places)}`}`;
        const result = scaleDecimal(text, scale);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.text).toMatch(CANONICAL);
        // text * 10^scale == result  <=>  units * 10^scale / 10^places == result
        const expected = scale >= 0 ? { units: units * 10n ** BigInt(scale), places } : { units, places: places - scale };
        expect(sameValue(rational(result.text), expected)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it.each(['1e5', '+1', ' 1', '1.', '.5', '0x10', 'NaN', '', '1,5', '١٢'])('refuses %j, naming it', (input) => {
    const result = scaleDecimal(input, 0);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain('not a decimal number');
  });

  it('refuses a result beyond the 38 digits an event value may have, and over-long input', () => {
    expect(scaleDecimal('1', 38)).toMatchObject({ ok: false, message: expect.stringContaining('38 digits') });
    expect(scaleDecimal('1', 37)).toEqual({ ok: true, text: '1' + '0'.repeat(37) });
    expect(scaleDecimal('1', -38)).toEqual({ ok: true, text: '0.' + '0'.repeat(37) + '1' });
    expect(scaleDecimal('1', -39)).toMatchObject({ ok: false });
    expect(scaleDecimal('1'.repeat(500), 0)).toMatchObject({ ok: false, message: expect.stringContaining('too long') });
  });
});

describe('decimalOfNumber', () => {
  it.each([
    [12.34, '12.34'],
    [-0, '0'],
    [1e-7, '0.0000001'],
    [1.5e-10, '0.00000000015'],
    [123456789012345, '123456789012345'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
  ])('%d is %s', (n, text) => {
    expect(decimalOfNumber(n)).toEqual({ ok: true, text });
  });

  it('refuses integers beyond 2^53 (digits may be lost) and non-finite numbers', () => {
    expect(decimalOfNumber(2 ** 53)).toMatchObject({ ok: false, message: expect.stringContaining('send it as a decimal string') });
    expect(decimalOfNumber(1e21)).toMatchObject({ ok: false });
    expect(decimalOfNumber(Number.NaN)).toMatchObject({ ok: false });
    expect(decimalOfNumber(Number.POSITIVE_INFINITY)).toMatchObject({ ok: false });
    expect(decimalOfNumber(5e-324)).toMatchObject({ ok: false, message: expect.stringContaining('38 digits') });
  });

  it('writes any double as a plain decimal that reads back as the same double', () => {
    fc.assert(
      // Below 1e-15 a double's shortest text may need more than 38 fraction digits (refused).
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }).filter((n) => n === 0 || Math.abs(n) >= 1e-15), (n) => {
        const result = decimalOfNumber(n);
        expect(result.ok).toBe(true);
        if (result.ok) {
          expect(result.text).not.toMatch(/e/i);
          expect(Number(result.text)).toBe(n === 0 ? 0 : n);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
