/**
 * Retention of old windows (docs/aggregation.md, "Retention").
 *
 * One definition, used by the pipeline's sweep and by queries: a window of size S ending at
 * `windowEnd` expires at
 *
 *     windowEnd + allowed lateness + retention(S)
 *
 * (`expiresAt`), i.e. `retention(S)` after it became final (after the allowed lateness no event
 * can change it any more). From that instant on it is expired (`isExpired`: expiresAt <= now)
 * and the pipeline may tombstone its key. A size without a retention is kept for ever.
 *
 * Queries read a window only while it is not expired for them, and they stop a margin earlier
 * than the pipeline may delete it (`queryRetention`): the api's clock and the pipeline's hybrid
 * clock differ a little, and a window read after its tombstone reached the replica would be
 * silently missing from an answer. Where a finer window has expired a query is answered from
 * coarser ones when they cover the range exactly (`tileAvailable`), otherwise it is refused with
 * 400 resolution-expired.
 */
import { QueryError } from '../errors.js';
import { type SizedWindow, WINDOW_SIZES, type WindowSize, isAligned, tileRange, windowEnd, windowStart } from './windows.js';

/** How long each window size is kept once final, in ms; null or absent: for ever. */
export type RetentionPolicy = Partial<Record<WindowSize, number | null>>;

/**
 * Queries stop reading a window this long before the pipeline may tombstone it: more than the
 * hybrid clock's lead over the wall clock (ORDO_MAX_SKEW_MS, 500 ms by default) plus the clock
 * differences between hosts under NTP.
 */
export const QUERY_MARGIN_MS = 60_000;

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A retention beyond this (about 100 years) is a typo: say "forever" (or leave the size out). */
const MAX_RETENTION_MS = 36_600 * 86_400_000;

/** The retention of `size` in ms, or undefined (kept for ever). */
export function retentionOf(size: WindowSize, policy: RetentionPolicy): number | undefined {
  return policy[size] ?? undefined;
}

/** When a window of `size` ending at `windowEnd` expires (ms); Infinity if its size is kept for ever. */
export function expiresAt(size: WindowSize, windowEnd: number, policy: RetentionPolicy, allowedLatenessMs: number): number {
  const retention = retentionOf(size, policy);
  return retention === undefined ? Number.POSITIVE_INFINITY : windowEnd + allowedLatenessMs + retention;
}

/** A window of `size` ending at `windowEnd` is expired at `now`: final for at least its size's retention. */
export function isExpired(size: WindowSize, windowEnd: number, policy: RetentionPolicy, now: number, allowedLatenessMs: number): boolean {
  return expiresAt(size, windowEnd, policy, allowedLatenessMs) <= now;
}

/**
 * The policy as queries apply it (with no lateness of their own, tileAvailable): a window stays
 * readable until `marginMs` before the pipeline may tombstone it. The api passes
 * `queryRetention(config.retention.windows, config.allowedLatenessMs)` to planQuery.
 */
export function queryRetention(policy: RetentionPolicy, allowedLatenessMs: number, marginMs: number = QUERY_MARGIN_MS): RetentionPolicy {
  const out: RetentionPolicy = {};
  for (const size of WINDOW_SIZES) {
    const retention = retentionOf(size, policy);
    if (retention !== undefined) out[size] = Math.max(0, retention + allowedLatenessMs - marginMs);
  }
  return out;
}

/**
 * The pieces [start, end) is read from: at each position the coarsest maintained window that is
 * aligned there, fits before `end` and has not expired at `now` (isExpired with the policy as
 * given and no lateness: pass queryRetention's policy). So a range is read from the same pieces
 * as tileRange while nothing has expired, and where a finer window has expired from a coarser
 * one if that covers the range exactly. Sizes nest, so this finds a tiling whenever one of
 * unexpired windows exists (and it has the fewest pieces).
 *
 * Throws QueryError('not-exact') where no maintained sizes tile the range even with nothing
 * expired (tileRange's error), and QueryError('resolution-expired', 400) where only expired
 * windows would: the message names the expired window, when it expired and which sizes are
 * still kept there.
 */
export function tileAvailable(start: number, end: number, sizes: readonly WindowSize[], policy: RetentionPolicy = {}, now: number = Date.now()): SizedWindow[] {
  const coarseFirst = WINDOW_SIZES.filter((size) => sizes.includes(size)).reverse();
  if (coarseFirst.every((size) => retentionOf(size, policy) === undefined)) return tileRange(start, end, sizes);
  // Validation and not-exact first: resolution-expired only where a tiling exists at all.
  tileRange(start, end, sizes);
  const pieces: SizedWindow[] = [];
  for (let at = start; at < end; ) {
    const fitting = coarseFirst.filter((s) => isAligned(at, s) && windowEnd(at, s) <= end);
    const size = fitting.find((s) => !isExpired(s, windowEnd(at, s), policy, now, 0));
    // `at` is a boundary of the finest size and so is `end` (tileRange succeeded): something fits.
    if (size === undefined) throw resolutionExpired(at, fitting[0]!, coarseFirst, policy, now);
    const pieceEnd = windowEnd(at, size);
    pieces.push({ start: at, end: pieceEnd, size });
    at = pieceEnd;
  }
  return pieces;
}

function resolutionExpired(at: number, needed: WindowSize, coarseFirst: readonly WindowSize[], policy: RetentionPolicy, now: number): QueryError {
  const end = windowEnd(at, needed);
  const gone = expiresAt(needed, end, policy, 0);
  // The sizes still kept at that instant (the window of each that holds it has not expired), finest first.
  const kept = [...coarseFirst].reverse().filter((s) => !isExpired(s, windowEnd(windowStart(at, s), s), policy, now, 0));
  const answer =
    kept.length === 0
      ? 'none of its window sizes is kept that far back'
      : `still kept there: ${kept.join(', ')}; ask for ${kept[0]} windows or coarser (windowSize=${kept[0]}), with from/to on ${kept[0]} boundaries`;
  return new QueryError(
    'resolution-expired',
    `the ${needed} window ${iso(at)}..${iso(end)} this range needs expired at ${iso(gone)} (ORDO_WINDOW_RETENTION); ${answer}`,
    400,
    { details: { expired: { size: needed, start: iso(at), end: iso(end), expiredAt: iso(gone) }, kept } },
  );
}

/**
 * Parses ORDO_WINDOW_RETENTION: comma-separated `SIZE=DURATION` (e.g. `MINUTE=2d,HOUR=35d,DAY=730d`);
 * DURATION is a positive integer with a unit (ms, s, m, h, d) or `forever`. Sizes left out are kept
 * for ever; empty: everything is. Throws Error naming the defect.
 */
export function parseRetention(text: string): RetentionPolicy {
  const policy: RetentionPolicy = {};
  const seen = new Set<string>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = (eq < 0 ? item : item.slice(0, eq)).trim().toUpperCase();
    if (eq < 0) throw new Error(`"${clip(item)}" is not SIZE=DURATION (e.g. MINUTE=2d)`);
    const size = WINDOW_SIZES.find((s) => s === name);
    if (size === undefined) throw new Error(`"${clip(name)}" is not a window size (${WINDOW_SIZES.join(', ')})`);
    if (seen.has(size)) throw new Error(`${size} is given twice`);
    seen.add(size);
    policy[size] = parseDuration(item.slice(eq + 1).trim(), size);
  }
  return policy;
}

function parseDuration(text: string, size: WindowSize): number | null {
  if (text.toLowerCase() === 'forever') return null;
  const match = /^(\d{1,15})(ms|s|m|h|d)$/.exec(text);
  if (match === null) throw new Error(`${size}=${clip(text)}: expected a positive integer with a unit (ms, s, m, h, d), e.g. 35d, or "forever"`);
  const ms = Number(match[1]) * UNITS[match[2]!]!;
  if (ms <= 0) throw new Error(`${size}=${text}: a retention must be positive (leave ${size} out, or say forever, to keep it)`);
  if (ms > MAX_RETENTION_MS) throw new Error(`${size}=${text} is more than 36600d; say ${size}=forever to keep it for ever`);
  return ms;
}

/** Prints a policy the way ORDO_WINDOW_RETENTION says it (sizes kept for ever left out). */
export function formatRetention(policy: RetentionPolicy): string {
  return WINDOW_SIZES.flatMap((size) => {
    const ms = retentionOf(size, policy);
    if (ms === undefined) return [];
    const unit = (['d', 'h', 'm', 's'] as const).find((u) => ms % UNITS[u]! === 0);
    return [`${size}=${unit === undefined ? `${ms}ms` : `${ms / UNITS[unit]!}${unit}`}`];
  }).join(',');
}

/**
 * What is legal but probably not meant: a finer size kept longer than a coarser one (both given). Queries then
 * fall back to the finer windows where the coarser have expired (still exact), so it only costs
 * space; the roles log these at start.
 */
export function retentionWarnings(policy: RetentionPolicy): string[] {
  const warnings: string[] = [];
  for (const [i, fine] of WINDOW_SIZES.entries()) {
    for (const coarse of WINDOW_SIZES.slice(i + 1)) {
      // Only sizes both given: one left out is kept for ever because nobody asked (a meter may not maintain it).
      if (policy[fine] === undefined || policy[coarse] === undefined) continue;
      const a = retentionOf(fine, policy) ?? Number.POSITIVE_INFINITY;
      const b = retentionOf(coarse, policy) ?? Number.POSITIVE_INFINITY;
      if (a > b) warnings.push(`${fine} windows are kept longer than ${coarse} windows: old ranges are then read from the finer windows (exact, but more to store and read)`);
    }
  }
  return warnings;
}

function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
