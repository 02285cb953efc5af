import { Decimal } from '../usage/decimal.js';

/**
 * Decimal text for connector values: a payload number moved by a power of ten (cents to
 * units: scale -2) by moving the decimal point in the digits, never through a float, so
 * "1234" at scale -2 is exactly "12.34". Results are plain decimals (no exponent) in
 * canonical form: no leading zeros, no trailing fraction zeros, no "-0".
 */

/** What a payload may send as a decimal string: digits with an optional fraction and sign. */
const DECIMAL_INPUT = /^(-?)(\d+)(?:\.(\d+))?$/;
/** Longest payload decimal looked at: the value is attacker-sized text. */
const MAX_INPUT_LENGTH = 200;

export type DecimalResult = { ok: true; text: string } | { ok: false; message: string };

/** `text` (a decimal string) times 10^scale, exactly. */
export function scaleDecimal(text: string, scale: number): DecimalResult {
  if (text.length > MAX_INPUT_LENGTH) return { ok: false, message: `a decimal of ${text.length} characters is too long` };
  const match = DECIMAL_INPUT.exec(text);
  if (!match) return { ok: false, message: `${quote(text)} is not a decimal number (digits, an optional "-" and fraction; no exponent, spaces or "+")` };
  const [, sign, whole, fraction = ''] = match as unknown as [string, string, string, string | undefined];
  const digits = whole + fraction;
  const point = whole.length + scale;
  let intPart: string;
  let fracPart: string;
  if (point <= 0) {
    intPart = '0';
    fracPart = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    intPart = digits + '0'.repeat(point - digits.length);
    fracPart = '';
  } else {
    intPart = digits.slice(0, point);
    fracPart = digits.slice(point);
  }
  intPart = intPart.replace(/^0+(?=\d)/, '');
  fracPart = fracPart.replace(/0+$/, '');
  const zero = intPart === '0' && fracPart === '';
  const result = `${zero ? '' : sign}${intPart}${fracPart === '' ? '' : `.${fracPart}`}`;
  // The event value grammar (README, Schema): at most 38 digits either side of the point.
  if (!Decimal.isValid(result)) return { ok: false, message: `${quote(text)} scaled by 10^${scale} is ${result.length > 48 ? 'beyond' : `${result}, beyond`} the 38 digits either side of the point an event value may have` };
  return { ok: true, text: result };
}

/**
 * A JSON number as decimal text. JSON.parse has already turned it into a double: integers
 * beyond 2^53 may have lost digits, so they are refused (send them as strings); other numbers
 * are written as the shortest text that reads back as the same double, which is the number
 * as sent whenever it had at most 15 significant digits.
 */
export function decimalOfNumber(n: number): DecimalResult {
  if (!Number.isFinite(n)) return { ok: false, message: `${n} is not a finite number` };
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) return { ok: false, message: `${n} is beyond 2^53 and may have lost digits as a JSON number; send it as a decimal string` };
  const text = Object.is(n, -0) ? '0' : String(n);
  const exp = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!exp) return { ok: true, text };
  const [, sign, whole, fraction = '', power] = exp as unknown as [string, string, string, string | undefined, string];
  return scaleDecimal(`${sign}${whole}${fraction === '' ? '' : `.${fraction}`}`, Number(power));
}

/** A payload string in a message: JSON-quoted, long ones cut. */
export function quote(text: string): string {
  return text.length > 48 ? `${JSON.stringify(text.slice(0, 48))}... (${text.length} chars)` : JSON.stringify(text);
}
