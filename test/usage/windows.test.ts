import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QueryError } from '../../src/errors.js';
import {
  WINDOW_SIZES,
  checkTimeZone,
  isAligned,
  tileRange,
  windowEnd,
  windowStart,
  zonedWindows,
  type SizedWindow,
  type Window,
  type WindowSize,
} from '../../src/usage/windows.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const FIXED: Partial<Record<WindowSize, number>> = { MINUTE, HOUR, DAY };

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
const hours = (windows: readonly Window[]): number[] => windows.map((w) => (w.end - w.start) / HOUR);
const starts = (windows: readonly Window[]): string[] => windows.map((w) => iso(w.start));

/** Years 1..9999, the range the module answers for. */
const anyInstant = fc.bigInt({ min: -62_135_596_800_000n, max: 253_402_300_799_999n }).map(Number);
const recentInstant = fc.bigInt({ min: BigInt(at('1970-01-01T00:00:00Z')), max: BigInt(at('2100-01-01T00:00:00Z')) }).map(Number);
const anySize = fc.constantFrom(...WINDOW_SIZES);

function expectQueryError(fn: () => unknown, kind: string): QueryError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(QueryError);
  const error = caught as QueryError;
  expect(error.kind).toBe(kind);
  expect(error.status).toBe(400);
  expect(error.code).toBe('ORDO_QUERY');
  return error;
}

/** The UTC windows from `from` on, walked with windowEnd. */
function utcWindows(from: number, count: number, size: WindowSize): Window[] {
  const windows: Window[] = [];
  for (let start = from; windows.length < count; start = windowEnd(start, size)) {
    windows.push({ start, end: windowEnd(start, size) });
  }
  return windows;
}

/** Local wall-time labels of an instant, straight from Intl (independent of the module). */
function labeller(timeZone: string): (ms: number) => Record<WindowSize, string> {
  const format = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
  return (ms) => {
    const p = Object.fromEntries(format.formatToParts(ms).map((part) => [part.type, part.value]));
    const month = `${p.year}-${p.month}`;
    const day = `${month}-${p.day}`;
    const hour = `${day}T${p.hour}`;
    return { MONTH: month, DAY: day, HOUR: hour, MINUTE: `${hour}:${p.minute}` };
  };
}

/** Pieces are contiguous from `from` to `to`, each a whole window of a maintained size. */
function checkTiling(from: number, to: number, maintained: readonly WindowSize[], pieces: readonly SizedWindow[]): void {
  // One expect per piece is slow with thousands of pieces: describe the first bad one instead.
  let position = from;
  const bad = pieces.find((piece) => {
    const ok =
      piece.start === position &&
      piece.end === windowEnd(piece.start, piece.size) &&
      isAligned(piece.start, piece.size) &&
      maintained.includes(piece.size);
    position = piece.end;
    return !ok;
  });
  expect(bad).toBeUndefined();
  expect(position).toBe(to);
}

describe('windowStart / windowEnd / isAligned', () => {
  it('windowStart(ms) <= ms < windowEnd(windowStart(ms)), both ends aligned', () => {
    fc.assert(
      fc.property(anyInstant, anySize, (ms, size) => {
        const start = windowStart(ms, size);
        const end = windowEnd(start, size);
        expect(start).toBeLessThanOrEqual(ms);
        expect(ms).toBeLessThan(end);
        expect(isAligned(start, size)).toBe(true);
        expect(isAligned(end, size)).toBe(true);
        expect(isAligned(ms, size)).toBe(start === ms);
      }),
    );
  });

  it('windows tile the line: each ends where the next starts, with nothing in between', () => {
    fc.assert(
      fc.property(anyInstant, anySize, (ms, size) => {
        const start = windowStart(ms, size);
        const end = windowEnd(start, size);
        expect(windowStart(end - 1, size)).toBe(start);
        expect(windowStart(end, size)).toBe(end);
        expect(windowEnd(windowStart(start - 1, size), size)).toBe(start);
      }),
    );
  });

  it('has the nominal length: fixed for MINUTE/HOUR/DAY, the calendar month for MONTH', () => {
    fc.assert(
      fc.property(anyInstant, anySize, (ms, size) => {
        const start = windowStart(ms, size);
        const length = windowEnd(start, size) - start;
        const fixed = FIXED[size];
        if (fixed !== undefined) {
          expect(length).toBe(fixed);
        } else {
          const date = new Date(start);
          expect(date.getUTCDate()).toBe(1);
          expect(date.getUTCHours() + date.getUTCMinutes() + date.getUTCSeconds() + date.getUTCMilliseconds()).toBe(0);
          expect([28, 29, 30, 31]).toContain(length / DAY);
          expect(new Date(ms).getUTCMonth()).toBe(date.getUTCMonth());
          expect(new Date(ms).getUTCFullYear()).toBe(date.getUTCFullYear());
        }
      }),
    );
  });

  it('boundaries nest: aligned to a size means aligned to every finer size', () => {
    fc.assert(
      fc.property(anyInstant, anySize, (ms, size) => {
        const start = windowStart(ms, size);
        for (const finer of WINDOW_SIZES.slice(0, WINDOW_SIZES.indexOf(size))) {
          expect(isAligned(start, finer)).toBe(true);
        }
      }),
    );
  });

  it.each([
    ['2026-02-15T12:34:56.789Z', 'MINUTE', '2026-02-15T12:34:00.000Z', '2026-02-15T12:35:00.000Z'],
    ['2026-02-15T12:34:56.789Z', 'HOUR', '2026-02-15T12:00:00.000Z', '2026-02-15T13:00:00.000Z'],
    ['2026-02-15T12:34:56.789Z', 'DAY', '2026-02-15T00:00:00.000Z', '2026-02-16T00:00:00.000Z'],
    ['2026-02-15T12:34:56.789Z', 'MONTH', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
    ['2024-02-29T23:59:59.999Z', 'MONTH', '2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z'],
    ['2026-12-31T23:59:59.999Z', 'MONTH', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ['1969-12-31T23:59:59.999Z', 'DAY', '1969-12-31T00:00:00.000Z', '1970-01-01T00:00:00.000Z'],
    ['1969-12-31T23:59:59.999Z', 'MONTH', '1969-12-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z'],
    // Date.UTC would turn year 50 into 1950.
    ['0050-03-10T05:00:00.000Z', 'MONTH', '0050-03-01T00:00:00.000Z', '0050-04-01T00:00:00.000Z'],
    ['0099-12-10T05:00:00.000Z', 'MONTH', '0099-12-01T00:00:00.000Z', '0100-01-01T00:00:00.000Z'],
  ] as const)('%s %s -> [%s, %s)', (instant, size, start, end) => {
    expect(iso(windowStart(at(instant), size))).toBe(start);
    expect(iso(windowEnd(at(start), size))).toBe(end);
  });
});

describe('tileRange', () => {
  const maintainedSizes = fc.subarray([...WINDOW_SIZES], { minLength: 1 });

  /** A range whose ends are boundaries of the finest maintained size (or coarser). */
  const exactRange = fc
    .tuple(maintainedSizes, recentInstant, recentInstant, anySize, anySize)
    .map(([maintained, a, b, sizeA, sizeB]) => {
      const finest = WINDOW_SIZES.indexOf(maintained[0]!);
      const align = (ms: number, size: WindowSize): number =>
        windowStart(ms, WINDOW_SIZES[Math.max(finest, WINDOW_SIZES.indexOf(size))]!);
      // Keep the finest-only tiling small when only fine sizes are maintained.
      const span = Math.abs(b - a) % (2000 * (FIXED[maintained[0]!] ?? 31 * DAY));
      return { maintained, from: align(a, sizeA), to: align(a + span, sizeB) };
    })
    .filter(({ from, to }) => from <= to);

  function finestOnlyCount(from: number, to: number, finest: WindowSize): number {
    const fixed = FIXED[finest];
    if (fixed !== undefined) return (to - from) / fixed;
    let count = 0;
    for (let start = from; start < to; start = windowEnd(start, finest)) count++;
    return count;
  }

  it('covers [from, to) exactly with contiguous, aligned, maintained pieces, no more than the finest size alone', () => {
    fc.assert(
      fc.property(exactRange, ({ maintained, from, to }) => {
        const pieces = tileRange(from, to, maintained);
        checkTiling(from, to, maintained, pieces);
        expect(pieces.length).toBeLessThanOrEqual(finestOnlyCount(from, to, maintained[0]!));
      }),
      { numRuns: 200 },
    );
  });

  it('uses the coarsest size that fits at each step', () => {
    const pieces = tileRange(at('2026-01-31T23:00:00Z'), at('2026-03-02T01:30:00Z'), WINDOW_SIZES);
    expect(pieces.map((p) => `${p.size} ${iso(p.start)}`)).toEqual([
      'HOUR 2026-01-31T23:00:00.000Z',
      'MONTH 2026-02-01T00:00:00.000Z',
      'DAY 2026-03-01T00:00:00.000Z',
      'HOUR 2026-03-02T00:00:00.000Z',
      ...Array.from({ length: 30 }, (_, i) => `MINUTE ${iso(at('2026-03-02T01:00:00Z') + i * MINUTE)}`),
    ]);
  });

  it('accepts the maintained sizes in any order, with repeats', () => {
    const from = at('2026-03-01T00:00:00Z');
    const to = at('2026-05-01T00:00:00Z');
    expect(tileRange(from, to, ['DAY', 'MONTH', 'DAY'])).toEqual(tileRange(from, to, ['MONTH', 'DAY']));
    expect(tileRange(from, to, ['MONTH']).map((p) => p.size)).toEqual(['MONTH', 'MONTH']);
  });

  it('an empty range needs no pieces', () => {
    expect(tileRange(at('2026-03-01T00:30:00Z'), at('2026-03-01T00:30:00Z'), ['MONTH'])).toEqual([]);
  });

  it('refuses a start finer than the finest maintained size, naming it and the size needed', () => {
    const notFinest = maintainedSizes.filter((sizes) => sizes[0] !== 'MINUTE');
    fc.assert(
      fc.property(notFinest, recentInstant, fc.constantFrom<WindowSize>('MINUTE', 'HOUR', 'DAY'), (maintained, ms, size) => {
        const finest = maintained[0]!;
        fc.pre(WINDOW_SIZES.indexOf(size) < WINDOW_SIZES.indexOf(finest));
        const from = windowStart(ms, size);
        fc.pre(!isAligned(from, finest));
        const to = windowEnd(windowEnd(windowStart(from, 'MONTH'), 'MONTH'), 'MONTH');
        const error = expectQueryError(() => tileRange(from, to, maintained), 'not-exact');
        const needed = WINDOW_SIZES.slice(0, WINDOW_SIZES.indexOf(finest)).reverse().find((s) => isAligned(from, s));
        expect(error.message).toContain(iso(from));
        expect(error.message).toContain(`not on a ${finest} boundary (maintained: ${maintained.join(', ')})`);
        expect(error.message).toContain(`maintain ${needed} windows for this meter to answer it`);
      }),
    );
  });

  it('refuses an end that cuts the finest maintained window short, naming the end', () => {
    const error = expectQueryError(
      () => tileRange(at('2026-03-01T00:00:00Z'), at('2026-03-02T18:30:00Z'), ['HOUR', 'DAY']),
      'not-exact',
    );
    expect(error.message).toBe(
      '2026-03-02T18:30:00.000Z is not on a HOUR boundary (maintained: HOUR, DAY); maintain MINUTE windows for this meter to answer it',
    );
  });

  it('refuses an instant no window size can answer', () => {
    const error = expectQueryError(
      () => tileRange(at('2026-03-01T00:00:00.500Z'), at('2026-03-02T00:00:00Z'), WINDOW_SIZES),
      'not-exact',
    );
    expect(error.message).toContain('2026-03-01T00:00:00.500Z is not on a MINUTE boundary');
    expect(error.message).toContain('no window size can answer it exactly');
  });

  it.each([
    ['from after to', at('2026-03-02T00:00:00Z'), at('2026-03-01T00:00:00Z')],
    ['NaN', Number.NaN, at('2026-03-01T00:00:00Z')],
    ['fractional ms', 0.5, at('2026-03-01T00:00:00Z')],
    ['year 10000+', 0, at('+010000-01-01T00:00:00.001Z')],
  ])('rejects %s as bad-parameter', (_label, from, to) => {
    expectQueryError(() => tileRange(from, to, WINDOW_SIZES), 'bad-parameter');
  });

  it('needs at least one maintained size', () => {
    expect(() => tileRange(0, MINUTE, [])).toThrow(RangeError);
  });
});

describe('checkTimeZone', () => {
  it.each(['UTC', 'Etc/UTC', 'Europe/Berlin', 'europe/berlin', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/New_York', 'US/Eastern'])(
    'accepts %s; the canonical name it returns is accepted as itself',
    (name) => {
      const canonical = checkTimeZone(name);
      expect(checkTimeZone(canonical)).toBe(canonical);
    },
  );

  it('fixes the case of a zone name', () => {
    expect(checkTimeZone('europe/berlin')).toBe('Europe/Berlin');
    expect(checkTimeZone('UTC')).toBe('UTC');
  });

  it.each([
    ['unknown', 'Mars/Olympus_Mons'],
    ['misspelt', 'Europe/Berlinn'],
    ['padded', ' Europe/Berlin'],
    ['trailing space', 'Europe/Berlin '],
    ['empty', ''],
    ['out of range Etc', 'Etc/GMT+13'],
  ])('rejects a %s name as bad-parameter, quoting it', (_label, name) => {
    const error = expectQueryError(() => checkTimeZone(name), 'bad-parameter');
    expect(error.message).toContain(`unknown time zone ${JSON.stringify(name)}`);
    expect(error.message).toContain('"Europe/Berlin"');
  });

  it('rejects an absent name rather than using the host zone', () => {
    expectQueryError(() => checkTimeZone(undefined as unknown as string), 'bad-parameter');
  });

  it('quotes only a prefix of a long name', () => {
    const error = expectQueryError(() => checkTimeZone(`Europe/${'x'.repeat(1000)}`), 'bad-parameter');
    expect(error.message.length).toBeLessThan(200);
  });
});

describe('zonedWindows', () => {
  it('in UTC equals the UTC windows', () => {
    fc.assert(
      fc.property(recentInstant, anySize, fc.integer({ min: 0, max: 40 }), fc.constantFrom('UTC', 'Etc/UTC'), (ms, size, count, zone) => {
        const expected = utcWindows(windowStart(ms, size), count, size);
        const from = windowStart(ms, size);
        const to = expected.at(-1)?.end ?? from;
        expect(zonedWindows(from, to, size, zone)).toEqual(expected);
      }),
    );
  });

  it('Europe/Berlin: 2026-03-29 is 23 h and 2026-10-25 is 25 h', () => {
    const spring = zonedWindows(at('2026-03-27T23:00:00Z'), at('2026-03-30T22:00:00Z'), 'DAY', 'Europe/Berlin');
    expect(starts(spring)).toEqual(['2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
    expect(hours(spring)).toEqual([24, 23, 24]);
    const autumn = zonedWindows(at('2026-10-24T22:00:00Z'), at('2026-10-26T23:00:00Z'), 'DAY', 'Europe/Berlin');
    expect(hours(autumn)).toEqual([25, 24]);
  });

  it('Europe/Berlin months start at local midnight, March and October an hour short and long', () => {
    const months = zonedWindows(at('2025-12-31T23:00:00Z'), at('2026-12-31T23:00:00Z'), 'MONTH', 'Europe/Berlin');
    expect(months).toHaveLength(12);
    expect(starts(months).slice(2, 5)).toEqual(['2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z', '2026-04-30T22:00:00.000Z']);
    expect(hours(months)).toEqual([744, 672, 743, 720, 744, 720, 744, 744, 720, 745, 720, 744]);
  });

  it('America/New_York: DST days, the skipped hour and the repeated hour', () => {
    expect(hours(zonedWindows(at('2026-03-07T05:00:00Z'), at('2026-03-09T04:00:00Z'), 'DAY', 'America/New_York'))).toEqual([24, 23]);
    expect(hours(zonedWindows(at('2026-10-31T04:00:00Z'), at('2026-11-02T05:00:00Z'), 'DAY', 'America/New_York'))).toEqual([24, 25]);
    // 02:00 EST jumps to 03:00 EDT: no 02:00 window.
    const spring = zonedWindows(at('2026-03-08T05:00:00Z'), at('2026-03-08T09:00:00Z'), 'HOUR', 'America/New_York');
    expect(starts(spring)).toEqual(['2026-03-08T05:00:00.000Z', '2026-03-08T06:00:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-08T08:00:00.000Z']);
    // 01:00-02:00 happens twice (EDT, then EST): one local hour, two hours long.
    const autumn = zonedWindows(at('2026-11-01T04:00:00Z'), at('2026-11-01T08:00:00Z'), 'HOUR', 'America/New_York');
    expect(starts(autumn)).toEqual(['2026-11-01T04:00:00.000Z', '2026-11-01T05:00:00.000Z', '2026-11-01T07:00:00.000Z']);
    expect(hours(autumn)).toEqual([1, 2, 1]);
  });

  it('America/New_York DAY windows are exact over HOUR windows, and not over DAY windows', () => {
    const days = zonedWindows(at('2026-01-01T05:00:00Z'), at('2027-01-01T05:00:00Z'), 'DAY', 'America/New_York');
    expect(days).toHaveLength(365);
    for (const day of days) {
      const pieces = tileRange(day.start, day.end, ['HOUR', 'DAY', 'MONTH']);
      checkTiling(day.start, day.end, ['HOUR'], pieces);
      expect(pieces).toHaveLength((day.end - day.start) / HOUR);
    }
    checkTiling(days[0]!.start, days.at(-1)!.end, ['HOUR', 'DAY', 'MONTH'], tileRange(days[0]!.start, days.at(-1)!.end, ['HOUR', 'DAY', 'MONTH']));
    const error = expectQueryError(() => tileRange(days[0]!.start, days[0]!.end, ['DAY', 'MONTH']), 'not-exact');
    expect(error.message).toBe(
      '2026-01-01T05:00:00.000Z is not on a DAY boundary (maintained: DAY, MONTH); maintain HOUR windows for this meter to answer it',
    );
  });

  it.each([
    ['Asia/Kolkata', '2026-06-14T18:30:00Z', 30, 30],
    ['Asia/Kathmandu', '2026-06-14T18:15:00Z', 45, 15],
  ])('%s windows need MINUTE windows to be exact', (zone, dayStart, head, tail) => {
    const from = at(dayStart);
    const hoursOfDay = zonedWindows(from, from + DAY, 'HOUR', zone);
    expect(hoursOfDay).toHaveLength(24);
    const first = hoursOfDay[0]!;
    const error = expectQueryError(() => tileRange(first.start, first.end, ['HOUR', 'DAY', 'MONTH']), 'not-exact');
    expect(error.message).toBe(
      `${iso(first.start)} is not on a HOUR boundary (maintained: HOUR, DAY, MONTH); maintain MINUTE windows for this meter to answer it`,
    );
    for (const hour of hoursOfDay) {
      const pieces = tileRange(hour.start, hour.end, WINDOW_SIZES);
      checkTiling(hour.start, hour.end, ['MINUTE'], pieces);
      expect(pieces).toHaveLength(60);
    }
    const [day] = zonedWindows(from, from + DAY, 'DAY', zone);
    const pieces = tileRange(day!.start, day!.end, WINDOW_SIZES);
    checkTiling(from, from + DAY, WINDOW_SIZES, pieces);
    expect(pieces.map((p) => p.size)).toEqual([
      ...Array<WindowSize>(head).fill('MINUTE'),
      ...Array<WindowSize>(23).fill('HOUR'),
      ...Array<WindowSize>(tail).fill('MINUTE'),
    ]);
  });

  it('Asia/Kolkata months start at 18:30 UTC the day before', () => {
    const months = zonedWindows(at('2025-12-31T18:30:00Z'), at('2026-12-31T18:30:00Z'), 'MONTH', 'Asia/Kolkata');
    expect(months).toHaveLength(12);
    for (const [i, month] of months.entries()) {
      const firstOfMonth = Date.UTC(2026, i, 1);
      expect(month.start).toBe(firstOfMonth - 5.5 * HOUR);
      expect(month.end).toBe(windowEnd(firstOfMonth, 'MONTH') - 5.5 * HOUR);
    }
    const march = months[2]!;
    const pieces = tileRange(march.start, march.end, WINDOW_SIZES);
    checkTiling(march.start, march.end, WINDOW_SIZES, pieces);
    // 30 minutes to 19:00, 5 hours to 1 March, 30 days, 18 hours, 30 minutes.
    expect(pieces).toHaveLength(30 + 5 + 30 + 18 + 30);
  });

  it('America/Santiago 2026-09-06 has no midnight: the day starts at 01:00 local', () => {
    const days = zonedWindows(at('2026-09-05T04:00:00Z'), at('2026-09-08T03:00:00Z'), 'DAY', 'America/Santiago');
    expect(starts(days)).toEqual(['2026-09-05T04:00:00.000Z', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z']);
    expect(hours(days)).toEqual([24, 23, 24]);
    const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/Santiago', dateStyle: 'short', timeStyle: 'short' });
    expect(local.format(days[1]!.start)).toBe('06/09/2026, 01:00');
    expect(local.format(days[1]!.start - 1)).toBe('05/09/2026, 23:59');
    // The 00:00 hour does not exist either.
    const hoursAround = zonedWindows(at('2026-09-06T02:00:00Z'), at('2026-09-06T06:00:00Z'), 'HOUR', 'America/Santiago');
    expect(hoursAround.map((w) => local.format(w.start).slice(-5))).toEqual(['22:00', '23:00', '01:00', '02:00']);
  });

  it('America/Santiago 2026-04-04 is 25 h: clocks go back from 24:00 to 23:00', () => {
    const days = zonedWindows(at('2026-04-04T03:00:00Z'), at('2026-04-06T04:00:00Z'), 'DAY', 'America/Santiago');
    expect(starts(days)).toEqual(['2026-04-04T03:00:00.000Z', '2026-04-05T04:00:00.000Z']);
    expect(hours(days)).toEqual([25, 24]);
  });

  it('rejects a from that is not a boundary, naming the nearest earlier one', () => {
    const error = expectQueryError(
      () => zonedWindows(at('2026-11-01T00:30:00Z'), at('2026-11-02T18:30:00Z'), 'DAY', 'Asia/Kolkata'),
      'bad-parameter',
    );
    expect(error.message).toBe(
      'from 2026-11-01T00:30:00.000Z is not the start of a DAY in Asia/Kolkata; the nearest earlier one is 2026-10-31T18:30:00.000Z',
    );
  });

  it('rejects a to that is not a boundary', () => {
    const error = expectQueryError(
      () => zonedWindows(at('2026-03-28T23:00:00Z'), at('2026-03-29T23:00:00Z'), 'DAY', 'Europe/Berlin'),
      'bad-parameter',
    );
    expect(error.message).toBe(
      'to 2026-03-29T23:00:00.000Z is not the start of a DAY in Europe/Berlin; the nearest earlier one is 2026-03-29T22:00:00.000Z',
    );
  });

  it('the nearest earlier boundary of the repeated hour is its first occurrence', () => {
    const error = expectQueryError(
      () => zonedWindows(at('2026-11-01T06:00:00Z'), at('2026-11-01T08:00:00Z'), 'HOUR', 'America/New_York'),
      'bad-parameter',
    );
    expect(error.message).toContain('the nearest earlier one is 2026-11-01T05:00:00.000Z');
  });

  it('rejects an unknown zone', () => {
    const error = expectQueryError(() => zonedWindows(0, 0, 'DAY', 'Europe/Atlantis'), 'bad-parameter');
    expect(error.message).toContain('"Europe/Atlantis"');
  });

  it.each([
    ['from after to', at('2026-03-02T00:00:00Z'), at('2026-03-01T00:00:00Z')],
    ['NaN', Number.NaN, 0],
    ['Infinity', 0, Number.POSITIVE_INFINITY],
    ['fractional ms', 0.5, MINUTE],
    ['before year 1', -62_135_596_800_001, 0],
  ])('rejects %s as bad-parameter', (_label, from, to) => {
    expectQueryError(() => zonedWindows(from, to, 'MINUTE', 'UTC'), 'bad-parameter');
  });

  it('an empty range has no windows', () => {
    expect(zonedWindows(at('2026-10-31T18:30:00Z'), at('2026-10-31T18:30:00Z'), 'DAY', 'Asia/Kolkata')).toEqual([]);
  });

  it('caps the number of windows', () => {
    const from = at('2026-03-01T00:00:00Z');
    expect(zonedWindows(from, from + 10_000 * MINUTE, 'MINUTE', 'Europe/Berlin')).toHaveLength(10_000);
    const error = expectQueryError(() => zonedWindows(from, from + 7 * DAY, 'MINUTE', 'Europe/Berlin'), 'too-many-windows');
    expect(error.message).toContain('more than 10000 MINUTE windows in Europe/Berlin');
    expect(zonedWindows(from, from + 3 * HOUR, 'HOUR', 'UTC', 3)).toHaveLength(3);
    expectQueryError(() => zonedWindows(from, from + 4 * HOUR, 'HOUR', 'UTC', 3), 'too-many-windows');
    expect(() => zonedWindows(from, from, 'HOUR', 'UTC', -1)).toThrow(RangeError);
  });

  it('every window starts where the local unit changes and keeps one label throughout', () => {
    const zone = fc.constantFrom('Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/Santiago', 'Australia/Lord_Howe', 'Pacific/Chatham', 'Africa/Casablanca');
    fc.assert(
      fc.property(zone, recentInstant, fc.constantFrom<WindowSize>('DAY', 'MONTH'), (timeZone, ms, size) => {
        const label = labeller(timeZone);
        // Start from a boundary found by the module's own error message: the nearest earlier one.
        const near = windowStart(ms, 'HOUR');
        let from = near;
        try {
          zonedWindows(near, near, size, timeZone);
        } catch (error) {
          from = Date.parse(/nearest earlier one is (\S+)$/.exec((error as QueryError).message)![1]!);
        }
        let to = from;
        for (let i = 0; i < 3; i++) to += (FIXED[size] ?? 28 * DAY);
        try {
          zonedWindows(from, to, size, timeZone);
        } catch (error) {
          to = Date.parse(/nearest earlier one is (\S+)$/.exec((error as QueryError).message)![1]!);
        }
        const windows = zonedWindows(from, to, size, timeZone);
        expect(windows.length).toBeGreaterThanOrEqual(1);
        for (const w of windows) {
          expect(label(w.start)[size]).not.toBe(label(w.start - MINUTE)[size]);
          expect(label(w.end - MINUTE)[size]).toBe(label(w.start)[size]);
          expect(label(w.start + Math.floor((w.end - w.start) / 2 / MINUTE) * MINUTE)[size]).toBe(label(w.start)[size]);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('matches a minute-by-minute walk of local wall time around DST changes', () => {
    // Zone and an instant near one of its 2026 offset changes (checked with Intl on Node 20 / tzdata 2025c).
    const cases = [
      ['Europe/Berlin', '2026-03-29T01:00:00Z'],
      ['Europe/Berlin', '2026-10-25T01:00:00Z'],
      ['America/New_York', '2026-03-08T07:00:00Z'],
      ['America/New_York', '2026-11-01T06:00:00Z'],
      ['America/Santiago', '2026-04-05T03:00:00Z'], // 24:00 -> 23:00
      ['America/Santiago', '2026-09-06T04:00:00Z'], // 24:00 -> 01:00
      ['America/Havana', '2026-03-08T05:00:00Z'], // 24:00 -> 01:00
      ['America/Havana', '2026-11-01T05:00:00Z'], // 01:00 -> 00:00
      ['Australia/Lord_Howe', '2026-04-04T15:00:00Z'], // 02:00 -> 01:30
      ['Australia/Lord_Howe', '2026-10-03T15:30:00Z'], // 02:00 -> 02:30
      ['Pacific/Chatham', '2026-04-04T14:00:00Z'], // +13:45 -> +12:45
      ['Africa/Casablanca', '2026-02-15T02:00:00Z'],
      ['Asia/Kolkata', '2026-06-01T00:00:00Z'],
      ['Asia/Kathmandu', '2026-06-01T00:00:00Z'],
    ] as const;
    fc.assert(
      fc.property(fc.constantFrom(...cases), fc.integer({ min: -36 * 60, max: 0 }), fc.nat(), ([timeZone, change], shift, pick) => {
        const label = labeller(timeZone);
        const first = at(change) + shift * MINUTE;
        const labels = Array.from({ length: 2 * 24 * 60 + 1 }, (_, i) => label(first + i * MINUTE));
        for (const size of ['MINUTE', 'HOUR', 'DAY'] as const) {
          const bounds: number[] = [];
          for (let i = 1; i < labels.length; i++) {
            if (labels[i]![size] !== labels[i - 1]![size]) bounds.push(first + i * MINUTE);
          }
          if (bounds.length < 2) continue;
          const windows = zonedWindows(bounds[0]!, bounds.at(-1)!, size, timeZone);
          expect(windows.map((w) => w.start)).toEqual(bounds.slice(0, -1));
          expect(windows.map((w) => w.end)).toEqual(bounds.slice(1));
          // Any other minute is rejected, naming the last boundary before it.
          const span = (bounds.at(-1)! - bounds[0]!) / MINUTE;
          const other = bounds[0]! + (1 + (pick % Math.max(span - 1, 1))) * MINUTE;
          if (other < bounds.at(-1)! && !bounds.includes(other)) {
            const error = expectQueryError(() => zonedWindows(other, bounds.at(-1)!, size, timeZone), 'bad-parameter');
            const nearest = bounds.filter((b) => b < other).at(-1)!;
            expect(error.message).toContain(`the nearest earlier one is ${iso(nearest)}`);
          }
        }
      }),
      { numRuns: 15 },
    );
  });
});
