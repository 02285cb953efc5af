import { formatServiceTime, parseServiceTime } from '../clock/service-time.js';
import type { StoreCodec } from '../model/store.js';
import { type AggregateCoordinates, type UsageAggregate, finish, fold, keyPrefix, startWork, windowKey } from '../usage/aggregation.js';
import { Decimal } from '../usage/decimal.js';
import type { MeterCatalog } from '../usage/meters.js';
import { windowEnd, windowStart } from '../usage/windows.js';
import type { CorrectionKind } from './correction.js';

/**
 * What each accepted event (and each applied correction) within reach of a correction
 * contributes, by dedupeKey(source, id). No changelog: rebuilt from the ordered topic, which
 * carries every accepted event and every applied correction (docs/corrections.md).
 */
export const CONTRIBUTIONS_STORE = 'contributions';

/** One meter reading as kept: meter slug, group values, decimal value (null: COUNT), member (UNIQUE_COUNT). */
export type KeptReading = [meter: string, groupBy: Record<string, string>, value: string | null, member: string | null];

/** One entry of the contributions store. Short field names: one per event within the lateness. */
export interface Contribution {
  /** Subject. */
  s: string;
  /** Set on a correction's own entry: it is a correction, which cannot itself be corrected. */
  k?: CorrectionKind;
  /** Set once voided: the void's (source, id). */
  v?: [string, string];
  /** Set once amended: the last amend's (source, id). */
  a?: [string, string];
  /** Event time of the current content (the amended one after an amend). */
  t: number;
  /** Ordo's stamp ms when the entry was made (expiry of entries without readings). */
  st: number;
  /** Order key of the original (16 hex digits) and its node: an amend keeps the original's place. */
  o: string;
  n: string;
  /** The current readings (none once voided). */
  r: KeptReading[];
  /** Until when a correction may still need the entry: the end of its last window, or `t`. */
  u: number;
}

export const contributionCodec: StoreCodec<Contribution> = {
  encode: (c) => Buffer.from(JSON.stringify(c), 'utf8'),
  decode: (b) => JSON.parse(b.toString('utf8')) as Contribution,
};

/** One event's reading of one meter (shared by every window size of the meter). */
interface Member {
  c: Contribution;
  r: KeptReading;
}

/** Every event within reach of one (meter, subject, group values): the windows of each size are time slices of it. */
interface Series {
  members: Map<string, Member>;
}

/** A window a correction touched, by aggregate key. */
interface WindowRef {
  prefix: string;
  coords: AggregateCoordinates;
}

/**
 * Per (meter, subject, group values), every event's reading still within reach of a
 * correction: what makes a correction exact for every aggregation. Removing an event and
 * recomputing a window from the events that remain in it gives the same aggregate as if the
 * event had never come (MIN/MAX need the remaining values, LATEST the remaining order keys,
 * UNIQUE_COUNT the remaining members, first/last event time the remaining times;
 * SUM/COUNT/AVG would subtract, but share the recompute so every field stays exact). A
 * window is the slice of its series by event time, so an event costs one entry per meter,
 * not one per meter and window size.
 *
 * Memory only, derived from the contributions store: it mirrors the committed store plus the
 * batch in progress. A failed batch ends the task and its processor (like the reorder heap),
 * and the next one rebuilds this from the restored store.
 */
export class WindowIndex {
  private readonly series = new Map<string, Series>();
  private memberCount = 0;
  /** Windows touched by corrections in the batch in progress (coordinates for the recompute). */
  private readonly refs = new Map<string, WindowRef>();
  private readonly isoCache = new Map<number, string>();

  constructor(private readonly meters: MeterCatalog) {}

  /** Readings kept (one per event and meter): what the index costs. */
  get size(): number {
    return this.memberCount;
  }

  get windowCount(): number {
    return this.series.size;
  }

  /** Adds an event's current readings; with `keys`, returns the aggregate keys of its windows. */
  add(eventKey: string, c: Contribution, keys = false): string[] {
    const touched: string[] = [];
    for (const r of c.r) {
      const prefix = keyPrefix(r[0], c.s, r[1]);
      let series = this.series.get(prefix);
      if (series === undefined) this.series.set(prefix, (series = { members: new Map() }));
      if (!series.members.has(eventKey)) this.memberCount += 1;
      series.members.set(eventKey, { c, r });
      if (keys) this.windowKeys(prefix, c, r, touched);
    }
    return touched;
  }

  /** Removes an event's current readings; returns the aggregate keys of its windows. */
  remove(eventKey: string, c: Contribution): string[] {
    const touched: string[] = [];
    for (const r of c.r) {
      const prefix = keyPrefix(r[0], c.s, r[1]);
      const series = this.series.get(prefix);
      if (series?.members.delete(eventKey)) {
        this.memberCount -= 1;
        if (series.members.size === 0) this.series.delete(prefix);
      }
      this.windowKeys(prefix, c, r, touched);
    }
    return touched;
  }

  /** The aggregate keys of the windows an entry's readings fall in. */
  windowsOf(c: Contribution): string[] {
    const touched: string[] = [];
    for (const r of c.r) this.windowKeys(keyPrefix(r[0], c.s, r[1]), c, r, touched);
    return touched;
  }

  /** The coordinates of a window touched in this batch. */
  coordinates(key: string): AggregateCoordinates | undefined {
    return this.refs.get(key)?.coords;
  }

  /** The distinct UNIQUE_COUNT members still in a window touched in this batch. */
  members(key: string): Set<string> {
    const out = new Set<string>();
    for (const m of this.inWindow(key)) if (m.r[3] !== null) out.add(m.r[3]);
    return out;
  }

  /**
   * A window's aggregate from its remaining events (fold is order-independent but for exact
   * ties of LATEST's order key). Version and correction count continue from `previous`.
   */
  recompute(key: string, previous: UsageAggregate | undefined, corrections: number): UsageAggregate {
    const ref = this.refs.get(key);
    if (ref === undefined) throw new Error(`window ${key} was not touched in this batch`);
    const work = startWork(undefined, ref.coords);
    const seen = new Set<string>();
    for (const { c, r } of this.inWindow(key)) {
      const member = r[3] ?? undefined;
      const newMember = member !== undefined && !seen.has(member);
      if (member !== undefined) seen.add(member);
      fold(work, { value: r[2] === null ? undefined : Decimal.parse(r[2]), newMember, eventTime: c.t, orderTime: parseServiceTime(c.o), orderNode: c.n });
    }
    const aggregate = finish(work);
    if (aggregate.count === 0) {
      // Every event of the window was voided or moved out: no event times, so the window's start (and value 0).
      aggregate.firstEventTime = ref.coords.windowStart;
      aggregate.lastEventTime = ref.coords.windowStart;
    }
    aggregate.version = (previous?.version ?? 0) + corrections;
    aggregate.corrections = (previous?.corrections ?? 0) + corrections;
    return aggregate;
  }

  /** The batch is done: forget the windows it touched. */
  endBatch(): void {
    this.refs.clear();
    if (this.isoCache.size > 50_000) this.isoCache.clear();
  }

  /** Drops readings no correction can reach any more (every window of the event final at `now`). */
  sweep(now: number, allowedLatenessMs: number): void {
    for (const [prefix, series] of this.series) {
      for (const [key, m] of series.members) {
        if (m.c.u <= now - allowedLatenessMs) {
          series.members.delete(key);
          this.memberCount -= 1;
        }
      }
      if (series.members.size === 0) this.series.delete(prefix);
    }
  }

  clear(): void {
    this.series.clear();
    this.refs.clear();
    this.memberCount = 0;
  }

  private *inWindow(key: string): Iterable<Member> {
    const ref = this.refs.get(key);
    if (ref === undefined) return;
    const { windowStart: start, windowEnd: end } = ref.coords;
    for (const m of this.series.get(ref.prefix)?.members.values() ?? []) if (m.c.t >= start && m.c.t < end) yield m;
  }

  private windowKeys(prefix: string, c: Contribution, r: KeptReading, out: string[]): void {
    const meter = this.meters.get(r[0]);
    if (meter === undefined) return; // a meter removed from the file: its windows are not kept any more
    for (const size of meter.windows) {
      const start = windowStart(c.t, size);
      const key = windowKey(prefix, size, this.iso(start));
      if (!this.refs.has(key)) {
        this.refs.set(key, { prefix, coords: { meter: r[0], aggregation: meter.aggregation, subject: c.s, groupBy: r[1], windowSize: size, windowStart: start, windowEnd: windowEnd(start, size) } });
      }
      out.push(key);
    }
  }

  private iso(ms: number): string {
    let text = this.isoCache.get(ms);
    if (text === undefined) this.isoCache.set(ms, (text = new Date(ms).toISOString()));
    return text;
  }
}

/** The last end of the windows an event's readings fall in (`t` when it has none). */
export function reachOf(meters: MeterCatalog, time: number, readings: readonly KeptReading[]): number {
  let until = time;
  for (const [slug] of readings) {
    for (const size of meters.get(slug)?.windows ?? []) until = Math.max(until, windowEnd(windowStart(time, size), size));
  }
  return until;
}

/** The order key as the store keeps it. */
export function orderText(time: bigint): string {
  return formatServiceTime(time);
}
