/**
 * Time windows for usage aggregation.
 *
 * Windows are maintained in UTC only. A query in a time zone is answered by covering each
 * of its local windows exactly with maintained UTC windows (`tileRange`), or refused
 * (`not-exact`): a bill is never an estimate.
 */
import { QueryError } from '../errors.js';

/** Fine -> coarse. Every boundary of a coarser size is a boundary of each finer one. */
export const WINDOW_SIZES = ['MINUTE', 'HOUR', 'DAY', 'MONTH'] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

/** ms since the Unix epoch, half-open: [start, end). */
export interface Window {
  start: number;
  end: number;
}

export interface SizedWindow extends Window {
  size: WindowSize;
}

const FIXED_MS = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 } as const;
const DEFAULT_MAX_WINDOWS = 10_000;
/** Ranges are answered for years 1..9999 (UTC), well inside the Date range. */
const MIN_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z
const MAX_MS = 253_402_300_800_000; // 10000-01-01T00:00:00Z
/**
 * Offsets are sampled this far apart and a change is then located by bisection. Must stay
 * below the shortest gap between two offset changes of any zone: about 7 days in tzdb
 * since 1970 (America/Boa_Vista, October 2000; Asia/Gaza in some future years).
 */
const PROBE_MS = 3 * FIXED_MS.DAY;
/** Time zone names are caller controlled: quote only a prefix in messages. */
const QUOTE_LIMIT = 48;

/** UTC floor of `ms` to `size` (MONTH: the first day of the UTC month, 00:00). */
export function windowStart(ms: number, size: WindowSize): number {
  if (size === 'MONTH') {
    const date = new Date(ms);
    return utcMonthStart(date.getUTCFullYear(), date.getUTCMonth());
  }
  return ms - mod(ms, FIXED_MS[size]);
}

/** Start of the window after the one starting at `start` (an aligned instant). */
export function windowEnd(start: number, size: WindowSize): number {
  if (size === 'MONTH') {
    const date = new Date(start);
    return utcMonthStart(date.getUTCFullYear(), date.getUTCMonth() + 1);
  }
  return start + FIXED_MS[size];
}

export function isAligned(ms: number, size: WindowSize): boolean {
  return windowStart(ms, size) === ms;
}

/** Validates an IANA zone name ('UTC', 'Europe/Berlin', 'Asia/Kolkata'...) with Intl; throws QueryError('bad-parameter', ...) naming it if unknown. Returns the canonical name. */
export function checkTimeZone(name: string): string {
  return zoneFormatter(name).resolvedOptions().timeZone;
}

/**
 * The windows of `size` in `timeZone` (calendar minutes/hours/days/months of local wall time) that cover [from, to).
 *
 * A window is a maximal run of instants whose local wall time truncates to the same
 * calendar unit. So a local day is 23 or 25 hours across DST; a day whose midnight does
 * not exist starts at the first instant after it (e.g. 01:00); the repeated hour when
 * clocks fall back belongs to one HOUR window of two hours.
 *
 * from and to must both be window boundaries (else QueryError 'bad-parameter' naming the
 * nearest earlier one); more than `maxWindows` windows is QueryError 'too-many-windows'.
 */
export function zonedWindows(
  from: number,
  to: number,
  size: WindowSize,
  timeZone: string,
  maxWindows: number = DEFAULT_MAX_WINDOWS,
): Window[] {
  if (!Number.isSafeInteger(maxWindows) || maxWindows < 0) {
    throw new RangeError(`maxWindows must be a non-negative integer, got ${maxWindows}`);
  }
  checkRange(from, to);
  const zone = new ZoneCalendar(zoneFormatter(timeZone), size);
  for (const [label, instant] of [['from', from], ['to', to]] as const) {
    if (!zone.isBoundary(instant)) {
      throw new QueryError(
        'bad-parameter',
        `${label} ${iso(instant)} is not the start of a ${size} in ${timeZone}; ` +
          `the nearest earlier one is ${iso(zone.boundaryAtOrBefore(instant))}`,
      );
    }
  }
  const windows: Window[] = [];
  for (let start = from; start < to; ) {
    if (windows.length === maxWindows) {
      throw new QueryError(
        'too-many-windows',
        `${iso(from)}..${iso(to)} holds more than ${maxWindows} ${size} windows in ${timeZone}; ` +
          `ask for a shorter range or a coarser window size`,
      );
    }
    const end = zone.nextBoundary(start);
    windows.push({ start, end });
    start = end;
  }
  return windows;
}

/**
 * Covers [from, to) exactly with maintained UTC windows, greedily using the coarsest maintained size that is aligned
 * at the current position and fits before `to`. Returns the pieces in time order. If some position is not aligned to
 * any maintained size (e.g. a +05:30 zone over HOUR/DAY/MONTH windows) throw QueryError('not-exact', message that names
 * the instant and the maintained sizes and says which finer window size would be needed).
 */
export function tileRange(from: number, to: number, maintained: readonly WindowSize[]): SizedWindow[] {
  checkRange(from, to);
  const coarseFirst = WINDOW_SIZES.filter((size) => maintained.includes(size)).reverse();
  const finest = coarseFirst[coarseFirst.length - 1];
  if (finest === undefined) throw new RangeError('tileRange needs at least one maintained window size');
  const pieces: SizedWindow[] = [];
  for (let start = from; start < to; ) {
    const size = coarseFirst.find((s) => isAligned(start, s) && windowEnd(start, s) <= to);
    if (size === undefined) {
      // Sizes nest, so the finest one fails: either here, or `to` cuts its window short.
      throw notExact(isAligned(start, finest) ? to : start, finest, coarseFirst);
    }
    const end = windowEnd(start, size);
    pieces.push({ start, end, size });
    start = end;
  }
  return pieces;
}

function notExact(instant: number, finest: WindowSize, coarseFirst: readonly WindowSize[]): QueryError {
  const needed = WINDOW_SIZES.slice(0, WINDOW_SIZES.indexOf(finest))
    .reverse()
    .find((size) => isAligned(instant, size));
  const maintained = [...coarseFirst].reverse().join(', ');
  return new QueryError(
    'not-exact',
    `${iso(instant)} is not on a ${finest} boundary (maintained: ${maintained}); ` +
      (needed === undefined
        ? 'no window size can answer it exactly'
        : `maintain ${needed} windows for this meter to answer it`),
  );
}

function checkRange(from: number, to: number): void {
  for (const [label, value] of [['from', from], ['to', to]] as const) {
    if (!Number.isSafeInteger(value) || value < MIN_MS || value > MAX_MS) {
      throw new QueryError(
        'bad-parameter',
        `${label} must be a millisecond timestamp between ${iso(MIN_MS)} and ${iso(MAX_MS)}, got ${value}`,
      );
    }
  }
  if (from > to) throw new QueryError('bad-parameter', `from ${iso(from)} is after to ${iso(to)}`);
}

/**
 * Local windows of one size in one zone. The key of an instant is its local wall time
 * (as if UTC) floored to the size; a boundary is an instant whose key differs from the
 * key one millisecond earlier.
 */
class ZoneCalendar {
  private readonly offsets: ZoneOffsets;

  constructor(
    formatter: Intl.DateTimeFormat,
    private readonly size: WindowSize,
  ) {
    this.offsets = new ZoneOffsets(formatter);
  }

  isBoundary(ms: number): boolean {
    return this.key(ms) !== this.key(ms - 1);
  }

  /** The first boundary after `ms`. */
  nextBoundary(ms: number): number {
    let at = ms;
    let offset = this.offsets.at(at);
    const key = windowStart(at + offset, this.size);
    for (;;) {
      // Where the wall clock reaches the next key if the offset holds.
      const reach = windowEnd(key, this.size) - offset;
      const change = this.offsets.firstChange(at, reach);
      if (change === undefined) return reach;
      offset = this.offsets.at(change);
      if (windowStart(change + offset, this.size) !== key) return change;
      at = change; // clocks went back within this window: it goes on
    }
  }

  /** The last boundary at or before `ms`. */
  boundaryAtOrBefore(ms: number): number {
    let at = ms;
    const key = this.key(at);
    for (;;) {
      const offset = this.offsets.at(at);
      // The key is constant from `start` to `at`; a boundary if it differs just before.
      const start = this.offsets.lastChange(key - offset, at) ?? key - offset;
      if (this.key(start - 1) !== key) return start;
      at = start - 1;
    }
  }

  private key(ms: number): number {
    return windowStart(ms + this.offsets.at(ms), this.size);
  }
}

/**
 * UTC offsets of one zone from Intl. Remembers the last span over which the offset is
 * known to be constant (and the change that ends it), so walking windows costs about one
 * Intl call per PROBE_MS rather than one per window.
 */
class ZoneOffsets {
  private spanStart = 1;
  private spanEnd = 0;
  private spanOffset = 0;
  /** spanEnd + 1 if the offset is known to change there. */
  private spanChange: number | undefined;

  constructor(private readonly formatter: Intl.DateTimeFormat) {}

  /** Local wall time minus UTC at `ms`, in ms. */
  at(ms: number): number {
    if (this.inSpan(ms)) return this.spanOffset;
    return offsetAt(this.formatter, ms);
  }

  /** The first instant in (a, b] whose offset differs from the one at `a`, if any. */
  firstChange(a: number, b: number): number | undefined {
    const offset = this.at(a);
    let lo = a;
    if (this.inSpan(a)) {
      if (b <= this.spanEnd) return undefined;
      if (this.spanChange !== undefined) return this.spanChange;
      lo = this.spanEnd;
    }
    // Look a full probe ahead even for a short window: the next call starts from there.
    const horizon = Math.max(b, a + PROBE_MS);
    while (lo < horizon) {
      const hi = Math.min(lo + PROBE_MS, horizon);
      if (offsetAt(this.formatter, hi) !== offset) {
        const change = this.bisect(lo, hi, (ms) => offsetAt(this.formatter, ms) !== offset);
        this.remember(a, change - 1, offset, change);
        return change <= b ? change : undefined;
      }
      lo = hi;
    }
    this.remember(a, horizon, offset, undefined);
    return undefined;
  }

  /** The latest instant T in (a, b] whose offset differs from the one at T - 1, the offset being that of `b` from T on; if any. */
  lastChange(a: number, b: number): number | undefined {
    const offset = this.at(b);
    for (let hi = b; hi > a; ) {
      const lo = Math.max(hi - PROBE_MS, a);
      if (this.at(lo) !== offset) return this.bisect(lo, hi, (ms) => this.at(ms) === offset);
      hi = lo;
    }
    return undefined;
  }

  /** The first instant in (lo, hi] where `after` holds, given it holds at hi, not at lo, and flips once. */
  private bisect(lo: number, hi: number, after: (ms: number) => boolean): number {
    let low = lo;
    let high = hi;
    while (high - low > 1) {
      const mid = low + Math.floor((high - low) / 2);
      if (after(mid)) high = mid;
      else low = mid;
    }
    return high;
  }

  private inSpan(ms: number): boolean {
    return ms >= this.spanStart && ms <= this.spanEnd;
  }

  private remember(start: number, end: number, offset: number, change: number | undefined): void {
    if (!(this.inSpan(start) && offset === this.spanOffset)) {
      this.spanStart = start;
      this.spanOffset = offset;
    }
    this.spanEnd = end;
    this.spanChange = change;
  }
}

/** One formatter per canonical zone name: construction is the expensive part of Intl. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function zoneFormatter(name: string): Intl.DateTimeFormat {
  const cached = formatters.get(name);
  if (cached !== undefined) return cached;
  // An absent timeZone would silently mean the host's zone.
  if (typeof name !== 'string' || name.length === 0) throw unknownZone(name);
  let formatter: Intl.DateTimeFormat;
  try {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      // V8's gregory is proleptic, like Date (its iso8601 switches to Julian before 1582).
      calendar: 'gregory',
      numberingSystem: 'latn',
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch (error) {
    if (error instanceof RangeError) throw unknownZone(name);
    throw error;
  }
  // Cache by canonical name only, so odd spellings cannot grow the cache.
  const canonical = formatter.resolvedOptions().timeZone;
  const existing = formatters.get(canonical);
  if (existing !== undefined) return existing;
  formatters.set(canonical, formatter);
  return formatter;
}

function unknownZone(name: unknown): QueryError {
  return new QueryError(
    'bad-parameter',
    `unknown time zone ${quote(name)}; expected an IANA name such as "UTC", "Europe/Berlin" or "Asia/Kolkata"`,
  );
}

/** What en-US prints with the options above, e.g. "3/29/2026 AD, 03:00:00". */
const WALL_TIME = /^(\d+)\/(\d+)\/(\d+) (AD|BC), (\d+):(\d+):(\d+)$/;

/** Local wall time (read as UTC) minus `ms`. */
function offsetAt(formatter: Intl.DateTimeFormat, ms: number): number {
  // format + a regex is about 4x cheaper than formatToParts; parts remain the fallback.
  const match = WALL_TIME.exec(formatter.format(ms));
  const [month, day, year, era, hour, minute, second] = match === null ? wallTimeParts(formatter, ms) : match.slice(1);
  const date = new Date(0);
  date.setUTCFullYear(era === 'BC' ? 1 - Number(year) : Number(year), Number(month) - 1, Number(day));
  // Some ICU versions print midnight as 24.
  date.setUTCHours(Number(hour) % 24, Number(minute), Number(second), mod(ms, 1000));
  return date.getTime() - ms;
}

function wallTimeParts(formatter: Intl.DateTimeFormat, ms: number): (string | undefined)[] {
  const parts = formatter.formatToParts(ms);
  const value = (type: Intl.DateTimeFormatPartTypes): string | undefined => parts.find((p) => p.type === type)?.value;
  return [value('month'), value('day'), value('year'), value('era'), value('hour'), value('minute'), value('second')];
}

/** Date.UTC would read years 0..99 as 1900..1999. */
function utcMonthStart(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 1);
  return date.getTime();
}

function mod(a: number, n: number): number {
  const r = a % n;
  return r < 0 ? r + n : r;
}

function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function quote(value: unknown): string {
  if (typeof value !== 'string') return `(a ${typeof value})`;
  // JSON.stringify makes whitespace and control characters visible.
  return value.length > QUOTE_LIMIT ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}...` : JSON.stringify(value);
}
