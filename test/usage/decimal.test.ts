import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DECIMAL } from '../../src/schema/usage-event.js';
import { AVG_SCALE, Decimal } from '../../src/usage/decimal.js';

// Oracle: every value as an integer count of 10^-40, with its own parser and printer.
const ORACLE_SCALE = 40;
const ORACLE_ONE = 10n ** BigInt(ORACLE_SCALE);

function oracle(text: string): bigint {
  const negative = text.startsWith('-');
  const [int = '', frac = ''] = (negative ? text.slice(1) : text).split('.');
  const magnitude = BigInt(int) * ORACLE_ONE + BigInt(frac.padEnd(ORACLE_SCALE, '0'));
  return negative ? -magnitude : magnitude;
}

/** Canonical text of units / 10^scale, built from digit strings. */
function format(units: bigint, scale: number): string {
  const digits = (units < 0n ? -units : units).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).replace(/0+$/, '');
  const body = frac === '' ? int : `${int}.${frac}`;
  return units < 0n && body !== '0' ? `-${body}` : body;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** value / divisor at `scale` digits, half-to-even, via floor division (the code under test truncates). */
function oracleDivide(value: bigint, divisor: bigint, scale: number): string {
  const numerator = value * 10n ** BigInt(scale);
  const denominator = divisor * ORACLE_ONE;
  const q = floorDiv(numerator, denominator);
  const twiceRest = 2n * (numerator - q * denominator); // in [0, 2 * denominator)
  const up = twiceRest > denominator || (twiceRest === denominator && q % 2n !== 0n);
  return format(up ? q + 1n : q, scale);
}

const intPart = fc.oneof(
  fc.bigInt({ min: 0n, max: 999n }),
  fc.bigInt({ min: 0n, max: 10n ** 38n - 1n }),
).map(String);
const fracPart = fc.oneof(fc.stringMatching(/^\d{1,3}$/), fc.stringMatching(/^\d{1,38}$/), fc.constantFrom('0', '00', '50', '5'));
/** Any text the grammar accepts, including "-0", "-0.00" and trailing zeros. */
const decimalText = fc
  .tuple(fc.boolean(), intPart, fc.option(fracPart, { nil: undefined }))
  .map(([negative, int, frac]) => `${negative ? '-' : ''}${int}${frac === undefined ? '' : `.${frac}`}`);
const decimal = decimalText.map((text) => Decimal.parse(text));

function expectCanonical(d: Decimal): void {
  expect(d.scale).toBeGreaterThanOrEqual(0);
  expect(Number.isInteger(d.scale)).toBe(true);
  if (d.scale > 0) expect(d.units % 10n).not.toBe(0n);
  if (d.units === 0n) expect(d.scale).toBe(0);
}

describe('Decimal.parse', () => {
  it.each([
    ['0', 0n, 0, '0'],
    ['-0', 0n, 0, '0'],
    ['-0.00', 0n, 0, '0'],
    ['0.000', 0n, 0, '0'],
    ['12.50', 125n, 1, '12.5'],
    ['13.5', 135n, 1, '13.5'],
    ['-0.001', -1n, 3, '-0.001'],
    ['120', 120n, 0, '120'],
    ['120.0', 120n, 0, '120'],
    [`1.${'0'.repeat(36)}10`, 10n ** 37n + 1n, 37, `1.${'0'.repeat(36)}1`],
  ])('%s -> units %s scale %s, prints %s', (text, units, scale, printed) => {
    const d = Decimal.parse(text);
    expect(d.units).toBe(units);
    expect(d.scale).toBe(scale);
    expect(d.toString()).toBe(printed);
  });

  it('"-0.00" is ZERO', () => {
    expect(Decimal.parse('-0.00').equals(Decimal.ZERO)).toBe(true);
    expect(Decimal.ZERO.units).toBe(0n);
    expect(Decimal.ZERO.scale).toBe(0);
    expect(Decimal.ZERO.toString()).toBe('0');
  });

  it('keeps the exact value in canonical form', () => {
    fc.assert(
      fc.property(decimalText, (text) => {
        const d = Decimal.parse(text);
        expectCanonical(d);
        expect(d.units * 10n ** BigInt(ORACLE_SCALE - d.scale)).toBe(oracle(text));
      }),
    );
  });

  it.each([
    ['empty', ''],
    ['leading space', ' 1'],
    ['trailing space', '1 '],
    ['trailing newline', '1\n'],
    ['plus sign', '+1'],
    ['exponent', '1e3'],
    ['upper exponent', '1.5E-7'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['no integer part', '.5'],
    ['negative without integer part', '-.5'],
    ['no fraction digits', '1.'],
    ['lone minus', '-'],
    ['double minus', '--1'],
    ['leading zero', '01'],
    ['double zero', '00'],
    ['negative leading zero', '-01.5'],
    ['hex', '0x10'],
    ['comma', '1,5'],
    ['thousands separator', '1_000'],
    ['two points', '1.2.3'],
    ['unicode minus', '\u22121'],
    ['fullwidth digit', '\uff11'],
    ['arabic-indic digit', '\u0661'],
    ['39 integer digits', '1'.repeat(39)],
    ['39 fraction digits', `0.${'1'.repeat(39)}`],
  ])('rejects %s', (_label, text) => {
    expect(Decimal.isValid(text)).toBe(false);
    expect(() => Decimal.parse(text)).toThrow(RangeError);
    expect(() => Decimal.parse(text)).toThrow(JSON.stringify(text));
    expect(() => Decimal.parse(text)).toThrow('e.g. "12.50"');
  });

  it('quotes only a prefix of a long bad value', () => {
    const text = `${'9'.repeat(47)}X${'8'.repeat(10_000)}`;
    let message = '';
    try {
      Decimal.parse(text);
    } catch (error) {
      message = (error as RangeError).message;
    }
    expect(message).toContain(`${'9'.repeat(47)}X`);
    expect(message).not.toContain('X8');
    expect(message).toContain('10048 chars');
    expect(message.length).toBeLessThan(300);
  });

  it('rejects a non-string at runtime', () => {
    expect(Decimal.isValid(12 as unknown as string)).toBe(false);
    expect(() => Decimal.parse(12 as unknown as string)).toThrow(RangeError);
  });

  it('accepts exactly the DECIMAL grammar of usage events', () => {
    const nearMiss = fc.string({ unit: fc.constantFrom('0', '1', '5', '9', '.', '-', '+', 'e', ' '), maxLength: 8 });
    fc.assert(
      fc.property(fc.oneof(nearMiss, fc.string({ unit: 'binary', maxLength: 8 }), decimalText), (text) => {
        const valid = DECIMAL.test(text);
        expect(Decimal.isValid(text)).toBe(valid);
        if (valid) expect(Decimal.parse(text).toString()).toBe(format(oracle(text), ORACLE_SCALE));
        else expect(() => Decimal.parse(text)).toThrow(RangeError);
      }),
    );
  });
});

describe('Decimal.toString', () => {
  it('prints the canonical text of the value', () => {
    fc.assert(
      fc.property(decimalText, (text) => {
        expect(Decimal.parse(text).toString()).toBe(format(oracle(text), ORACLE_SCALE));
      }),
    );
  });

  it('round-trips: parse(toString(x)) equals x, and canonical text is printed back unchanged', () => {
    fc.assert(
      fc.property(decimal, (d) => {
        const text = d.toString();
        expect(Decimal.parse(text).equals(d)).toBe(true);
        expect(Decimal.parse(text).toString()).toBe(text);
      }),
    );
  });

  it('prints values beyond 38 digits', () => {
    const big = Decimal.fromBigInt(10n ** 60n).add(Decimal.parse('-0.5'));
    expect(big.toString()).toBe(`${'9'.repeat(60)}.5`);
    expect(Decimal.fromBigInt(-(10n ** 45n)).toString()).toBe(`-1${'0'.repeat(45)}`);
  });
});

describe('Decimal.fromBigInt', () => {
  it('is the integer, canonical', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 50n), max: 10n ** 50n }), (n) => {
        const d = Decimal.fromBigInt(n);
        expectCanonical(d);
        expect(d.units).toBe(n);
        expect(d.toString()).toBe(n.toString());
      }),
    );
  });
});

describe('Decimal.add', () => {
  it('sums many values exactly', () => {
    fc.assert(
      fc.property(fc.array(decimalText, { maxLength: 200 }), (texts) => {
        const sum = texts.reduce((acc, text) => acc.add(Decimal.parse(text)), Decimal.ZERO);
        const expected = texts.reduce((acc, text) => acc + oracle(text), 0n);
        expectCanonical(sum);
        expect(sum.toString()).toBe(format(expected, ORACLE_SCALE));
      }),
      { numRuns: 50 },
    );
  });

  it('grows past 38 digits', () => {
    const max = `${'9'.repeat(38)}.${'9'.repeat(38)}`;
    let sum = Decimal.ZERO;
    for (let i = 0; i < 1000; i++) sum = sum.add(Decimal.parse(max));
    expect(sum.toString()).toBe(format(1000n * oracle(max), ORACLE_SCALE));
    // 1000 * (10^38 - 10^-38) = 10^41 - 10^-35
    expect(sum.toString()).toBe(`${'9'.repeat(41)}.${'9'.repeat(35)}`);
  });

  it('is commutative and associative, with ZERO as identity', () => {
    fc.assert(
      fc.property(decimal, decimal, decimal, (a, b, c) => {
        expect(a.add(b).equals(b.add(a))).toBe(true);
        expect(a.add(b).add(c).equals(a.add(b.add(c)))).toBe(true);
        expect(a.add(Decimal.ZERO).equals(a)).toBe(true);
      }),
    );
  });

  it('x + (-x) is ZERO', () => {
    fc.assert(
      fc.property(decimalText, (text) => {
        const negated = text.startsWith('-') ? text.slice(1) : `-${text}`;
        expect(Decimal.parse(text).add(Decimal.parse(negated)).equals(Decimal.ZERO)).toBe(true);
      }),
    );
  });
});

describe('Decimal.compare / equals', () => {
  it('agree with the oracle', () => {
    fc.assert(
      fc.property(decimalText, decimalText, (x, y) => {
        const a = oracle(x);
        const b = oracle(y);
        const expected = a < b ? -1 : a > b ? 1 : 0;
        expect(Decimal.parse(x).compare(Decimal.parse(y))).toBe(expected);
        expect(Decimal.parse(y).compare(Decimal.parse(x))).toBe(-expected || 0);
        expect(Decimal.parse(x).equals(Decimal.parse(y))).toBe(expected === 0);
      }),
    );
  });

  it.each([
    ['12.50', '12.5', 0],
    ['-0', '0.000', 0],
    ['0.1', '0.09', 1],
    ['-0.1', '-0.09', -1],
    ['-1', '0.001', -1],
    ['99999999999999999999999999999999999999', '100000000000000000000000000000000000000', -1],
  ])('%s vs %s -> %i', (x, y, expected) => {
    const a = x.length > 38 ? Decimal.fromBigInt(BigInt(x)) : Decimal.parse(x);
    const b = y.length > 38 ? Decimal.fromBigInt(BigInt(y)) : Decimal.parse(y);
    expect(a.compare(b)).toBe(expected);
  });
});

describe('Decimal.divide', () => {
  it('rounds half-to-even like the oracle', () => {
    const divisor = fc.oneof(fc.bigInt({ min: 1n, max: 12n }), fc.bigInt({ min: 1n, max: 10n ** 30n }));
    fc.assert(
      fc.property(decimalText, divisor, fc.integer({ min: 0, max: 45 }), (text, n, scale) => {
        const q = Decimal.parse(text).divide(n, scale);
        expectCanonical(q);
        expect(q.scale).toBeLessThanOrEqual(scale);
        expect(q.toString()).toBe(oracleDivide(oracle(text), n, scale));
      }),
    );
  });

  it('rounds exact .5 ties to the even neighbour, negative values too', () => {
    // value / n = (k + 1/2) / 10^scale exactly: the result is k or k + 1, whichever is even.
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
        fc.bigInt({ min: 1n, max: 10n ** 6n }),
        fc.integer({ min: 0, max: 10 }),
        (k, n, scale) => {
          const value = format((2n * k + 1n) * n * 5n, scale + 1);
          const expected = format(k % 2n === 0n ? k : k + 1n, scale);
          expect(Decimal.parse(value).divide(n, scale).toString()).toBe(expected);
        },
      ),
    );
  });

  it.each([
    ['2.5', 1n, 0, '2'],
    ['3.5', 1n, 0, '4'],
    ['-2.5', 1n, 0, '-2'],
    ['-3.5', 1n, 0, '-4'],
    ['0.5', 1n, 0, '0'],
    ['-0.5', 1n, 0, '0'],
    ['10', 4n, 0, '2'],
    ['1', 8n, 2, '0.12'],
    ['3', 8n, 2, '0.38'],
    ['-1', 8n, 2, '-0.12'],
    ['2.51', 1n, 0, '3'],
    ['-2.49', 1n, 0, '-2'],
    ['1.00', 1n, 5, '1'],
    ['0', 7n, 20, '0'],
    ['1', 3n, 20, '0.33333333333333333333'],
    ['2', 3n, 20, '0.66666666666666666667'],
    ['-2', 3n, 20, '-0.66666666666666666667'],
  ])('%s / %s at scale %i -> %s', (text, n, scale, expected) => {
    expect(Decimal.parse(text).divide(n, scale).toString()).toBe(expected);
  });

  it('defaults to AVG_SCALE = 20 fractional digits', () => {
    expect(AVG_SCALE).toBe(20);
    expect(Decimal.parse('1').divide(3n).toString()).toBe(`0.${'3'.repeat(20)}`);
    expect(Decimal.parse('13.5').divide(2n).toString()).toBe('6.75');
  });

  it.each([
    ['zero divisor', 0n, 20],
    ['negative divisor', -3n, 20],
    ['negative scale', 3n, -1],
    ['fractional scale', 3n, 1.5],
    ['NaN scale', 3n, Number.NaN],
  ])('rejects a %s with RangeError', (_label, n, scale) => {
    expect(() => Decimal.parse('1').divide(n, scale)).toThrow(RangeError);
  });
});
