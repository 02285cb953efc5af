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

/** One event's part of one window, as recomputing the window needs it. */
interface WindowMember {
  value: Decimal | undefined;
  member: string | undefined;
  eventTime: number;
  orderTime: bigint;
  orderNode: string;
}

interface WindowEntry {
  coords: AggregateCoordinates;
  members: Map<string, WindowMember>;
}

/**
 * Per open window, every event's contribution: what makes a correction exact for every
 * aggregation. Removing an event and recomputing the window from what remains gives the
 * same aggregate as if the event had never come (MIN/MAX need the remaining values,
 * LATEST the remaining order keys, UNIQUE_COUNT the remaining members, first/last event
 * time the remaining times; SUM/COUNT/AVG would subtract, but share the recompute so every
 * field stays exact).
 *
 * Memory only, derived from the contributions store: it mirrors the committed store plus the
 * batch in progress. A failed batch ends the task and its processor (like the reorder heap),
 * and the next one rebuilds this from the restored store.
 */
export class WindowIndex {
  private readonly windows = new Map<string, WindowEntry>();
  private memberCount = 0;

  constructor(private readonly meters: MeterCatalog) {}

  /** Events kept across windows (one per event and window): what the index costs. */
  get size(): number {
    return this.memberCount;
  }

  get windowCount(): number {
    return this.windows.size;
  }

  /** Adds an event's current readings; returns the aggregate keys touched. */
  add(eventKey: string, c: Contribution): string[] {
    const touched: string[] = [];
    for (const w of this.windowsOf(c)) {
      let entry = this.windows.get(w.key);
      if (entry === undefined) {
        entry = { coords: w.coords, members: new Map() };
        this.windows.set(w.key, entry);
      }
      if (!entry.members.has(eventKey)) this.memberCount += 1;
      entry.members.set(eventKey, w.member);
      touched.push(w.key);
    }
    return touched;
  }

  /** Removes an event's current readings; returns the aggregate keys touched. */
  remove(eventKey: string, c: Contribution): string[] {
    const touched: string[] = [];
    for (const w of this.windowsOf(c)) {
      const entry = this.windows.get(w.key);
      if (entry?.members.delete(eventKey)) this.memberCount -= 1;
      touched.push(w.key);
    }
    return touched;
  }

  /** The window's coordinates (known once any event was in it). */
  coordinates(key: string): AggregateCoordinates | undefined {
    return this.windows.get(key)?.coords;
  }

  /** The distinct UNIQUE_COUNT members still in the window. */
  members(key: string): Set<string> {
    const out = new Set<string>();
    for (const m of this.windows.get(key)?.members.values() ?? []) if (m.member !== undefined) out.add(m.member);
    return out;
  }

  /**
   * The window's aggregate from its remaining events, folded in order-key order (fold is
   * order-independent but for ties of LATEST, which the order key breaks anyway). Version
   * and correction count continue from `previous`.
   */
  recompute(key: string, previous: UsageAggregate | undefined, corrections: number): UsageAggregate {
    const entry = this.windows.get(key);
    if (entry === undefined) throw new Error(`no window ${key} in the corrections index`);
    const work = startWork(undefined, entry.coords);
    const seen = new Set<string>();
    for (const m of entry.members.values()) {
      const newMember = m.member !== undefined && !seen.has(m.member);
      if (m.member !== undefined) seen.add(m.member);
      fold(work, { value: m.value, newMember, eventTime: m.eventTime, orderTime: m.orderTime, orderNode: m.orderNode });
    }
    const aggregate = finish(work);
    if (aggregate.count === 0) {
      // Every event of the window was voided or moved out: no event times, so the window's start (and value 0).
      aggregate.firstEventTime = entry.coords.windowStart;
      aggregate.lastEventTime = entry.coords.windowStart;
    }
    aggregate.version = (previous?.version ?? 0) + corrections;
    aggregate.corrections = (previous?.corrections ?? 0) + corrections;
    return aggregate;
  }

  /** Drops windows that can no longer change (ended more than the lateness before `now`). */
  sweep(now: number, allowedLatenessMs: number): void {
    for (const [key, entry] of this.windows) {
      if (entry.coords.windowEnd <= now - allowedLatenessMs) {
        this.memberCount -= entry.members.size;
        this.windows.delete(key);
      }
    }
  }

  clear(): void {
    this.windows.clear();
    this.memberCount = 0;
  }

  /** The windows an entry's readings fall in, per meter and window size the meter keeps. */
  windowsOf(c: Contribution): { key: string; coords: AggregateCoordinates; member: WindowMember }[] {
    const out: { key: string; coords: AggregateCoordinates; member: WindowMember }[] = [];
    const orderTime = parseServiceTime(c.o);
    for (const [slug, groupBy, value, member] of c.r) {
      const meter = this.meters.get(slug);
      if (meter === undefined) continue; // a meter removed from the file: its windows are not kept any more
      const prefix = keyPrefix(slug, c.s, groupBy);
      const m: WindowMember = { value: value === null ? undefined : Decimal.parse(value), member: member ?? undefined, eventTime: c.t, orderTime, orderNode: c.n };
      for (const size of meter.windows) {
        const start = windowStart(c.t, size);
        out.push({
          key: windowKey(prefix, size, new Date(start).toISOString()),
          coords: { meter: slug, aggregation: meter.aggregation, subject: c.s, groupBy, windowSize: size, windowStart: start, windowEnd: windowEnd(start, size) },
          member: m,
        });
      }
    }
    return out;
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
