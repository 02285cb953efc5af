/**
 * Exact decimal arithmetic for billing: a `bigint` count of units and a power-of-ten
 * scale, never a binary float. Sums may outgrow the 38 digits an event can carry.
 */

/** Fractional digits kept by averages (`Decimal.divide` default). */
export const AVG_SCALE = 20;

/** Same grammar as DECIMAL in src/schema/usage-event.ts; kept here so this module stays pure. */
const PLAIN_DECIMAL = /^-?(?:0|[1-9]\d{0,37})(?:\.\d{1,38})?$/;
/** Bad values are upstream controlled: quote only a prefix in messages. */
const QUOTE_LIMIT = 48;

/** Every event is added to a sum: keep the common powers of ten at hand. */
const POW10 = Array.from({ length: 2 * 38 + 1 }, (_, i) => 10n ** BigInt(i));

function pow10(n: number): bigint {
  return POW10[n] ?? 10n ** BigInt(n);
}

export class Decimal {
  /**
   * value = units / 10^scale. Canonical: scale >= 0, no trailing zero in the fraction
   * (scale > 0 implies units % 10n !== 0n), zero is 0n / scale 0. So equal values have
   * equal fields and one spelling.
   */
  readonly units: bigint;
  readonly scale: number;

  private constructor(units: bigint, scale: number) {
    while (scale > 0 && units % 10n === 0n) {
      units /= 10n;
      scale -= 1;
    }
    this.units = units;
    this.scale = units === 0n ? 0 : scale;
  }

  static readonly ZERO = new Decimal(0n, 0);

  /** Parses a plain decimal ("12.50", "-0.001", "120"); anything else throws a RangeError. */
  static parse(text: string): Decimal {
    if (!Decimal.isValid(text)) {
      throw new RangeError(
        `${quote(text)} is not a plain decimal: expected an optional "-", digits without leading zeros ` +
          `and an optional fraction, e.g. "12.50" or "-0.001" (no exponent, "+", spaces, NaN or Infinity)`,
      );
    }
    const point = text.indexOf('.');
    if (point === -1) return new Decimal(BigInt(text), 0);
    return new Decimal(BigInt(text.slice(0, point) + text.slice(point + 1)), text.length - point - 1);
  }

  static isValid(text: string): boolean {
    return typeof text === 'string' && PLAIN_DECIMAL.test(text);
  }

  static fromBigInt(n: bigint): Decimal {
    return new Decimal(n, 0);
  }

  add(other: Decimal): Decimal {
    const scale = Math.max(this.scale, other.scale);
    return new Decimal(this.unitsAt(scale) + other.unitsAt(scale), scale);
  }

  compare(other: Decimal): -1 | 0 | 1 {
    const scale = Math.max(this.scale, other.scale);
    const a = this.unitsAt(scale);
    const b = other.unitsAt(scale);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  equals(other: Decimal): boolean {
    // Canonical form makes field equality value equality.
    return this.units === other.units && this.scale === other.scale;
  }

  /** this / divisor rounded half-to-even to `scale` fractional digits (default 20), then canonicalised. divisor > 0n else RangeError. */
  divide(divisor: bigint, scale: number = AVG_SCALE): Decimal {
    if (divisor <= 0n) throw new RangeError(`divisor must be a positive bigint, got ${divisor}`);
    if (!Number.isSafeInteger(scale) || scale < 0) {
      throw new RangeError(`scale must be a non-negative integer, got ${scale}`);
    }
    // this / divisor = units / (divisor * 10^this.scale); want it in units of 10^-scale.
    const numerator = this.units * pow10(scale);
    const denominator = divisor * pow10(this.scale);
    let quotient = numerator / denominator; // truncates toward zero
    const remainder = numerator % denominator; // same sign as numerator
    const twice = 2n * (remainder < 0n ? -remainder : remainder);
    if (twice > denominator || (twice === denominator && quotient % 2n !== 0n)) {
      quotient += numerator < 0n ? -1n : 1n;
    }
    return new Decimal(quotient, scale);
  }

  toString(): string {
    const negative = this.units < 0n;
    const digits = (negative ? -this.units : this.units).toString();
    const sign = negative ? '-' : '';
    if (this.scale === 0) return sign + digits;
    const padded = digits.padStart(this.scale + 1, '0');
    const point = padded.length - this.scale;
    return `${sign}${padded.slice(0, point)}.${padded.slice(point)}`;
  }

  /** Units of this value at a scale >= this.scale. */
  private unitsAt(scale: number): bigint {
    return scale === this.scale ? this.units : this.units * pow10(scale - this.scale);
  }
}

function quote(value: unknown): string {
  if (typeof value !== 'string') return `a ${typeof value}`;
  // JSON.stringify makes whitespace and control characters visible.
  return value.length > QUOTE_LIMIT
    ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}... (${value.length} chars)`
    : JSON.stringify(value);
}
