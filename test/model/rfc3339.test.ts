import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRfc3339, rfc3339Refusal } from '../../src/model/rfc3339.js';

describe('parseRfc3339, the one strict reader of date-times', () => {
  it('reads every instant as Date writes it, and the same instant at any offset', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }), fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }), (date, offset) => {
        expect(parseRfc3339(date.toISOString())).toEqual({ ok: true, ms: date.getTime(), subMillisecond: false });
        const local = new Date(date.getTime() + offset * 60_000).toISOString().slice(0, 23);
        const sign = offset < 0 ? '-' : '+';
        const abs = Math.abs(offset);
        const text = `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
        if (!text.startsWith('-') && !text.startsWith('+')) expect(parseRfc3339(text)).toMatchObject({ ok: true, ms: date.getTime() });
      }),
    );
  });

  it('refuses what Date.parse would roll over or accept loosely', () => {
    expect(Date.parse('2026-02-30T00:00:00Z')).not.toBeNaN(); // V8 reads it as March 2
    expect(parseRfc3339('2026-02-30T00:00:00Z')).toEqual({ ok: false, syntax: false, why: 'has day 30, but 2026-02 has 28 days' });
    expect(parseRfc3339('2024-02-29T00:00:00Z').ok).toBe(true);
    expect(parseRfc3339('2026-11-30T24:00:00Z')).toMatchObject({ ok: false, syntax: false });
    expect(parseRfc3339('2026-11-30T10:00:00')).toMatchObject({ ok: false, syntax: true }); // no offset
    expect(parseRfc3339('2026-11-30 10:00:00Z')).toMatchObject({ ok: false, syntax: true });
  });

  it('takes a space for the offset sign only when asked (an unencoded "+" in a URL query)', () => {
    expect(parseRfc3339('2026-11-30T10:00:00 01:00')).toMatchObject({ ok: false, syntax: true });
    expect(parseRfc3339('2026-11-30T10:00:00 01:00', { spaceForPlus: true })).toMatchObject({ ok: true, ms: Date.parse('2026-11-30T09:00:00Z') });
  });

  it('cuts sub-millisecond digits and says whether it did', () => {
    expect(parseRfc3339('2026-11-30T10:00:00.123456Z')).toEqual({ ok: true, ms: Date.parse('2026-11-30T10:00:00.123Z'), subMillisecond: true });
    expect(parseRfc3339('2026-11-30T10:00:00.123000Z')).toMatchObject({ subMillisecond: false });
  });

  it('words a refusal with the caller\'s example, adding what is out of range', () => {
    expect(rfc3339Refusal('"x"', { why: 'irrelevant', syntax: true })).toBe('"x" is not an RFC 3339 time such as 2026-11-30T14:00:00Z');
    expect(rfc3339Refusal('"2026-02-30T00:00:00Z"', { why: 'has day 30, but 2026-02 has 28 days', syntax: false })).toBe(
      '"2026-02-30T00:00:00Z" is not an RFC 3339 time such as 2026-11-30T14:00:00Z: it has day 30, but 2026-02 has 28 days',
    );
  });
});
