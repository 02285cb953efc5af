import type { KeyValueStore } from '../model/store.js';
import type { OutputRecord } from '../model/records.js';
import type { AggregateRangeReader } from '../deletion/aggregate-scan.js';
import { type DeletionsView, aggregateSubject } from '../deletion/sweep.js';
import { type RetentionPolicy, isExpired, retentionOf } from '../usage/retention.js';
import { WINDOW_SIZES, type WindowSize, windowEnd } from '../usage/windows.js';

/**
 * A pipeline task's sweep of expired windows (docs/aggregation.md, "Retention"): every
 * aggregate key of its partition of the aggregates topic whose window has expired
 * (src/usage/retention.ts: windowEnd + allowed lateness + retention(size) <= now) gets one
 * tombstone, in the task's own transactions, at most `sweepBatch` per transaction.
 *
 * Finding the keys. Final windows are no longer in memory, so the keys come from reads of the
 * partition, bounded by record timestamp. The pipeline sets an aggregate record's timestamp to
 * its batch's latest stamp, so every record of a window lies in
 *
 *     [windowStart - maxFuture, windowEnd + lateness + spread)
 *
 * (an event is accepted at most maxFuture before its time and at most the lateness after its
 * window; `spread` covers one batch's stamps and the send time of records older than this
 * rule). A *round* of one window size S reads the records in the timestamp range where the
 * windows ending in (progress, limit] have theirs, keeps the keys of size S that are live (last
 * record not a tombstone), sorted by (window end, key), and tombstones them as they expire. The
 * limit expires at most retention(S) after the read's horizon: every window up to it was final
 * when the read began, so no key can join the list later.
 *
 * Exactly once, across crashes: the progress is one meta entry per size, `retention:<SIZE>` =
 * the last (window end, key) handled, committed in the transaction of its tombstones. A
 * restarted task reads again from there; a key at or below the progress is never tombstoned
 * again (and a changed retention or lateness only changes when the next keys come due).
 * Never early: a key is tombstoned at the task's hybrid time >= its expiry; the same
 * transaction records that time as the partition's clock high-water mark, so no later event
 * (stamped above it, on any worker) can still count in the window: it would be too late.
 *
 * Subjects under a deletion in force whose deletion came after the key's last record are left
 * to the deletion sweep (which tombstones them itself): one tombstone per key either way.
 */

export interface RetentionSettings {
  policy: RetentionPolicy;
  allowedLatenessMs: number;
  maxFutureMs: number;
  /** ORDO_MAX_SKEW_MS: how far one batch's stamps spread at most (with its processing time, see SPREAD_MS). */
  maxSkewMs: number;
  sweepBatch: number;
  aggregatesTopic: string;
  read?: AggregateRangeReader;
  /** Deletions in force (their sweep tombstones their subjects' keys). */
  deletions?: DeletionsView;
  /** Keys one round holds at most (the earliest to expire); the next round goes on from there. */
  maxKeysPerRound?: number;
  onTombstoned?: (size: WindowSize, count: number) => void;
  onReadError?: (error: unknown) => void;
}

/** The header a retention tombstone carries (value `expired`): tells it from a deletion's. */
export const RETENTION_HEADER = 'ordo-retention';
/** Batch processing time and send delay covered beyond ORDO_MAX_SKEW_MS in the timestamp bounds. */
export const SPREAD_MS = 60_000;
/** Rounds of one size start at most this often (a retention shorter than the read's span makes short rounds). */
export const MIN_ROUND_GAP_MS = 1_000;
const DEFAULT_MAX_KEYS = 100_000;
const LONGEST: Record<WindowSize, number> = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000, MONTH: 31 * 86_400_000 };

/**
 * A key's place in the sweep order: its window's end, then the key. (Within a size, windows expire
 * in the order they end; the progress is kept in window ends, not expiry times, so a changed
 * retention or lateness never skips a key: it only moves when the next ones come due.)
 */
interface Mark {
  end: number;
  key: string;
}

interface Due extends Mark {
  /** Timestamp of the key's last record read. */
  ts: number;
}

interface Round {
  /** Sorted by (x, key). */
  due: Due[];
  /** Every key of the size with (x, key) <= limit and above the progress is in `due`. */
  limit: Mark;
}

interface SizeState {
  round?: Round;
  nextReadAt: number;
}

export interface RetentionStepResult {
  outputs: OutputRecord[];
  tombstoned: number;
  /** The meta store changed (progress): the step needs a transaction even without outputs. */
  changed: boolean;
}

/** The meta key of a size's progress. */
export function progressKey(size: WindowSize): string {
  return `retention:${size}`;
}

const compare = (a: Mark, b: Mark): number => (a.end !== b.end ? a.end - b.end : a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const TOP = '\uffff';

export class RetentionSweeper {
  private readonly sizes: WindowSize[];
  private readonly state = new Map<WindowSize, SizeState>();
  private reading = false;

  constructor(private readonly settings: RetentionSettings) {
    this.sizes = WINDOW_SIZES.filter((size) => retentionOf(size, settings.policy) !== undefined);
    for (const size of this.sizes) this.state.set(size, { nextReadAt: Number.NEGATIVE_INFINITY });
  }

  /** Some size has a retention: there is something to sweep. */
  get active(): boolean {
    return this.sizes.length > 0;
  }

  /**
   * One bounded step, in the batch's (or tick's) transaction. `horizon`: no event of this step or
   * later is stamped at or below it, and every earlier one is committed (the clock before the
   * step stamped anything). `now`: the task's hybrid time (ms) a tombstone is judged by.
   */
  step(partition: number, meta: KeyValueStore<string>, times: { horizon: number; now: number }): RetentionStepResult | undefined {
    if (this.sizes.length === 0) return undefined;
    const result: RetentionStepResult = { outputs: [], tombstoned: 0, changed: false };
    let budget = this.settings.sweepBatch;
    for (const size of [...this.sizes]) {
      const state = this.state.get(size)!;
      const progress = this.progressOf(meta, size);
      const round = state.round;
      // The window end whose windows expire now.
      const dueEnd = times.now - this.settings.allowedLatenessMs - retentionOf(size, this.settings.policy)!;
      if (round === undefined) {
        if (progress === undefined || progress.end < dueEnd) this.startRound(size, state, partition, progress, times.horizon);
        continue;
      }
      let count = 0;
      let last: Mark | undefined;
      for (let i = firstAfter(round.due, progress); i < round.due.length && budget > 0; i++) {
        const due = round.due[i]!;
        if (!isExpired(size, due.end, this.settings.policy, times.now, this.settings.allowedLatenessMs)) break;
        if (!this.leftToDeletion(due)) {
          result.outputs.push({ topic: this.settings.aggregatesTopic, key: due.key, value: null, headers: { [RETENTION_HEADER]: 'expired' }, timestamp: times.now });
          count += 1;
          budget -= 1;
        }
        last = due;
      }
      const after = last ?? progress;
      if (firstAfter(round.due, after) === round.due.length && round.limit.end <= dueEnd) {
        // Every key up to the limit handled: the round is over, and the progress moves to its limit.
        meta.put(progressKey(size), JSON.stringify(round.limit));
        state.round = undefined;
        result.changed = true;
      } else if (last !== undefined) {
        meta.put(progressKey(size), JSON.stringify({ end: last.end, key: last.key }));
        result.changed = true;
      }
      if (count > 0) {
        result.tombstoned += count;
        this.settings.onTombstoned?.(size, count);
      }
    }
    return result.changed || result.outputs.length > 0 ? result : undefined;
  }

  /** The committed (or staged) progress of a size: every key at or below it is handled. */
  private progressOf(meta: KeyValueStore<string>, size: WindowSize): Mark | undefined {
    const text = meta.get(progressKey(size));
    if (text === undefined) return undefined;
    const mark = JSON.parse(text) as Mark;
    return { end: Number(mark.end), key: String(mark.key) };
  }

  /**
   * Reads, in the background, the keys of `size` in (progress, limit] (window ends); the round
   * is ready with a later step. One read per task at a time.
   */
  private startRound(size: WindowSize, state: SizeState, partition: number, progress: Mark | undefined, horizon: number): void {
    const read = this.settings.read;
    if (this.reading || state.nextReadAt > horizon) return;
    const { policy, allowedLatenessMs: lateness, maxFutureMs, maxSkewMs } = this.settings;
    const retention = retentionOf(size, policy)!;
    const spread = maxSkewMs + SPREAD_MS;
    // How far past the horizon this round reaches in expiry time: at most the retention (those windows are final now), at most the read's own span.
    const ahead = Math.max(0, Math.min(retention, lateness + LONGEST[size] + maxFutureMs + 2 * spread));
    let limit: Mark = { end: horizon + ahead - lateness - retention, key: TOP };
    if (progress !== undefined && compare(limit, progress) <= 0) return;
    state.nextReadAt = horizon + MIN_ROUND_GAP_MS;
    if (read === undefined) {
      // Nothing beyond memory to read (tests of the step alone): an empty round.
      state.round = { due: [], limit };
      return;
    }
    // Every record of a window ending in (progress, limit] was written in [end - length - max future, end + lateness + spread).
    const fromMs = progress === undefined ? 0 : Math.max(0, progress.end - LONGEST[size] - maxFutureMs - spread);
    const toMs = limit.end + lateness + spread;
    const cap = this.settings.maxKeysPerRound ?? DEFAULT_MAX_KEYS;
    const found = new Map<string, Due>();
    const tighten = (): void => {
      const kept = [...found.values()].sort(compare).slice(0, cap);
      found.clear();
      for (const d of kept) found.set(d.key, d);
      const lastKept = kept[kept.length - 1];
      if (lastKept !== undefined) limit = { end: lastKept.end, key: lastKept.key };
    };
    this.reading = true;
    // One read at a time per task: the size that read last goes to the back of the line, so none starves.
    this.sizes.push(...this.sizes.splice(this.sizes.indexOf(size), 1));
    read(partition, { fromMs, toMs }, (key, value, timestamp) => {
      const end = windowEndOf(key, size);
      if (end === undefined) return;
      const mark = { end, key };
      if ((progress !== undefined && compare(mark, progress) <= 0) || compare(mark, limit) > 0) return;
      if (value === null) found.delete(key);
      else found.set(key, { ...mark, ts: timestamp });
      if (found.size > 2 * cap) tighten();
    }).then(
      () => {
        if (found.size > cap) tighten();
        state.round = { due: [...found.values()].sort(compare), limit };
        this.reading = false;
      },
      (error: unknown) => {
        this.reading = false;
        this.settings.onReadError?.(error);
      },
    );
  }

  /** A deletion in force covers the key's subject and came after its last record: the deletion's sweep tombstones it. */
  private leftToDeletion(due: Due): boolean {
    const { deletions } = this.settings;
    if (deletions === undefined || deletions.set.size === 0) return false;
    const subject = aggregateSubject(due.key);
    const deletion = subject === undefined ? undefined : deletions.set.match(subject);
    return deletion !== undefined && deletion.requestedAt >= due.ts;
  }
}

/** The window end of an aggregate key of `size` (`[meter, subject, groupBy, size, start]` as JSON); undefined for another size or a key that is not one. */
export function windowEndOf(key: string, size: WindowSize): number | undefined {
  // Cheap test first: most keys of the topic are of other sizes.
  if (!key.includes(`,"${size}","`)) return undefined;
  let parts: unknown;
  try {
    parts = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parts) || parts.length !== 5 || parts[3] !== size || typeof parts[4] !== 'string') return undefined;
  const start = Date.parse(parts[4]);
  if (Number.isNaN(start)) return undefined;
  return windowEnd(start, size);
}

/** Index of the first entry above `mark` (binary search), 0 without a mark. */
function firstAfter(due: readonly Mark[], mark: Mark | undefined): number {
  if (mark === undefined) return 0;
  let lo = 0;
  let hi = due.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(due[mid]!, mark) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
