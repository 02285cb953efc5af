/**
 * The one strict reader of RFC 3339 date-times with an offset (`2026-11-30T14:00:00Z`,
 * `…+01:00`): usage query ranges, CloudEvents `time` at the ingest, connector payloads and
 * `ordo events produce`. Calendar-checked: `2026-02-30` is refused, not read as March 2 (as
 * Date.parse would). Pure, no imports.
 */

export const RFC3339_EXAMPLE = 'e.g. 2026-11-01T00:00:00Z or 2026-11-01T00:00:00+01:00';

const PATTERN = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+\- ])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/**
 * `ms`: milliseconds since the epoch, sub-millisecond digits cut (`subMillisecond` says
 * whether any was not zero); `why`: what is wrong, to follow the quoted text in a message,
 * `syntax` when it is not the form at all (else a field is out of range: "has day 30, ...").
 */
export type Rfc3339 = { ok: true; ms: number; subMillisecond: boolean } | { ok: false; why: string; syntax: boolean };

/**
 * `spaceForPlus`: accept a space as the offset's sign, which is what a `+` becomes in an
 * unencoded URL query (usage query parameters only).
 */
export function parseRfc3339(text: string, options: { spaceForPlus?: boolean } = {}): Rfc3339 {
  const m = PATTERN.exec(text);
  if (m === null || (m[9] === ' ' && !options.spaceForPlus)) return { ok: false, why: `is not an RFC 3339 date-time with an offset (${RFC3339_EXAMPLE})`, syntax: true };
  const [, y, mo, d, h, mi, s, fraction = '', zulu, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const refuse = (why: string): Rfc3339 => ({ ok: false, why, syntax: false });
  if (month < 1 || month > 12) return refuse(`has month ${mo}; months are 01-12`);
  const daysInMonth = month === 2 && isLeapYear(year) ? 29 : (DAYS_IN_MONTH[month - 1] ?? 31);
  if (day < 1 || day > daysInMonth) return refuse(`has day ${d}, but ${y}-${mo} has ${daysInMonth} days`);
  if (hour > 23) return refuse(`has hour ${h}; hours are 00-23`);
  if (minute > 59) return refuse(`has minute ${mi}; minutes are 00-59`);
  // Leap seconds (:60) have no millisecond of their own in Unix time.
  if (second > 59) return refuse(`has second ${s}; seconds are 00-59 (leap seconds cannot be expressed)`);
  let offsetMinutes = 0;
  if (zulu === undefined) {
    const offsetHours = Number(oh);
    const offsetMins = Number(om);
    if (offsetHours > 23 || offsetMins > 59) return refuse(`has offset ${sign === ' ' ? '+' : sign}${oh}:${om}; offsets are -23:59 to +23:59`);
    offsetMinutes = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const local = new Date(0);
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 literally.
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, Number(fraction.slice(0, 3).padEnd(3, '0')));
  return { ok: true, ms: local.getTime() - offsetMinutes * 60_000, subMillisecond: /[1-9]/.test(fraction.slice(3)) };
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** A caller's message for a refused time: its own wording for the form, plus what is out of range. */
export function rfc3339Refusal(quoted: string, parsed: { why: string; syntax: boolean }, example = '2026-11-30T14:00:00Z'): string {
  const base = `${quoted} is not an RFC 3339 time such as ${example}`;
  return parsed.syntax ? base : `${base}: it ${parsed.why}`;
}
