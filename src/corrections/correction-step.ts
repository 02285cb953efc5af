import type { HybridClock } from '../clock/hybrid-clock.js';
import { type Stamp, millisOf, parseServiceTime } from '../clock/service-time.js';
import { HEADER, type DeadLetter, type DecodedEvent, type HeaderValue, type OutputRecord, type SourceRecord, type StampedEvent, type StepResult } from '../model/records.js';
import type { KeyValueStore } from '../model/store.js';
import { type AggregateStep, type MeasuredEvent, type Reading, aggregateCodec, readMeter } from '../processors/aggregate.js';
import { dedupeKey } from '../processors/dedupe.js';
import { type UsageEvent, usageEventType } from '../schema/usage-event.js';
import { frame, unframe } from '../schema/wire-format.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import type { MeterCatalog } from '../usage/meters.js';
import { type Contribution, type KeptReading, WindowIndex, orderText, reachOf } from './contributions.js';
import { type CorrectionKind, type CorrectionTarget, headerText, readCorrection } from './correction.js';
import { type PendingCorrection, pendingKey } from './pending.js';
import { Sweeper } from '../processors/sweep.js';

/** How long (stamp time) a correction that came before its original waits for it, by default. */
export const HOLD_MS = 10 * 60_000;
/** At most this many corrections wait per task, by default; beyond, a correction of an unknown original is dead-lettered at once. */
export const MAX_PENDING = 10_000;
const SWEEP_EVERY_MS = 60_000;

export interface CorrectionSettings {
  /** ORDO_CORRECTIONS: off, every correction is dead-lettered `invalid-correction` (never counted as a plain event). */
  enabled: boolean;
  meters: MeterCatalog;
  allowedLatenessMs: number;
  maxFutureMs: number;
  aggregatesTopic: string;
  aggregateSchemaId: number;
  /** Restamps a correction that would otherwise order before its original. */
  clock: HybridClock;
  holdMs?: number;
  maxPending?: number;
}

export type CorrectionOutcome = 'applied' | 'pending' | 'late' | 'dead-lettered';

/** What the engine counts in `ordo_corrections_total{kind,outcome}`. */
export interface CorrectionCount {
  kind: CorrectionKind;
  outcome: CorrectionOutcome;
}

export interface CorrectionLate {
  source: SourceRecord;
  reason: 'correction-too-late';
  detail: string;
  seenAt: number;
}

export interface CorrectionResult {
  /** Applied corrections, for the ordered topic (after their originals). */
  applied: MeasuredEvent[];
  late: CorrectionLate[];
  dead: DeadLetter[];
  /** Recomputed aggregates: these replace the aggregate step's record of the same key. */
  outputs: OutputRecord[];
  counts: CorrectionCount[];
  expired: number;
}

export interface CorrectionStores {
  contributions: KeyValueStore<Contribution>;
  pending: KeyValueStore<PendingCorrection>;
  aggregates: KeyValueStore<UsageAggregate>;
  unique: KeyValueStore<number>;
  dedupe: KeyValueStore<number>;
}

interface Work {
  event: MeasuredEvent;
  target: CorrectionTarget;
}

/**
 * Corrections of past events (docs/corrections.md). A correction is a UsageEvent with the
 * `ordo-correction` headers; it is deduplicated by its own (source, id) like any event. Within
 * the allowed lateness, it removes (void) or replaces (amend) what its original contributed,
 * and every window it touched is recomputed from the events that remain in it, so every
 * aggregation stays exact. One that comes before its original waits (bounded) for it.
 */
export class CorrectionStep {
  private readonly targets = new WeakMap<SourceRecord, CorrectionTarget>();
  private readonly index: WindowIndex;
  /** Mirror of the pending store: original key -> pending keys. */
  private readonly pendingByOriginal = new Map<string, string[]>();
  private pendingCount = 0;
  private readonly sweeper: Sweeper<Contribution>;
  private pendingCheckedAt = Number.NEGATIVE_INFINITY;
  /** Final windows leave the index at most once a minute of stamp time, like the stores' sweeps. */
  private indexSweptAt = Number.NEGATIVE_INFINITY;
  /** Restore: replayed corrections whose original had not been replayed yet. */
  private deferred: { key: string; target: CorrectionTarget; event: UsageEvent; stampMs: number; order: { o: string; n: string } }[] = [];
  private readonly restored = new Map<string, Contribution>();

  constructor(private readonly settings: CorrectionSettings) {
    this.index = new WindowIndex(settings.meters);
    const lateness = settings.allowedLatenessMs;
    this.sweeper = new Sweeper(SWEEP_EVERY_MS, (_key, c, now) => c.u <= now - lateness);
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** Readings kept (one per event and meter), their series (meter, subject, group values), and corrections waiting. */
  get kept(): { readings: number; series: number; pending: number } {
    return { readings: this.index.size, series: this.index.windowCount, pending: this.pendingCount };
  }

  /**
   * Before stamping: malformed corrections (and every correction while corrections are off)
   * are dead-lettered `invalid-correction` without claiming their id; a correction's time
   * context is dropped, so its order key is Ordo's stamp, after the original's (the clock
   * has witnessed it).
   */
  classify(items: readonly DecodedEvent[]): StepResult<DecodedEvent> {
    const out: DecodedEvent[] = [];
    const dead: DeadLetter[] = [];
    for (const item of items) {
      const read = readCorrection(item.source.headers, item.event);
      if (read === undefined) out.push(item);
      else if (typeof read === 'string') dead.push({ source: item.source, reason: 'invalid-correction', message: read });
      else if (!this.settings.enabled) dead.push({ source: item.source, reason: 'invalid-correction', message: `corrections are disabled (ORDO_CORRECTIONS=false): this ${read.kind} is not applied, nor counted as an event` });
      else {
        this.targets.set(item.source, read);
        out.push(item.context === undefined ? item : { ...item, context: undefined });
      }
    }
    return { items: out, dead };
  }

  isCorrection(e: { source: SourceRecord }): boolean {
    return this.targets.has(e.source);
  }

  /** Measures plain events and amends (an amend's readings replace the original's); a void has none. */
  measure(aggregate: AggregateStep, items: readonly StampedEvent[]): StepResult<MeasuredEvent> {
    if (!items.some((e) => this.targets.get(e.source)?.kind === 'void')) return aggregate.measure(items);
    const measured = aggregate.measure(items.filter((e) => this.targets.get(e.source)?.kind !== 'void'));
    const bySource = new Map(measured.items.map((m) => [m.source, m]));
    const out: MeasuredEvent[] = [];
    for (const e of items) {
      if (this.targets.get(e.source)?.kind === 'void') out.push({ ...e, readings: [] });
      else {
        const m = bySource.get(e.source);
        if (m !== undefined) out.push(m);
      }
    }
    return { items: out, dead: measured.dead };
  }

  /** Deduplicated events in arrival order -> plain events and corrections. */
  split<E extends { source: SourceRecord }>(fresh: readonly E[]): { events: E[]; corrections: E[] } {
    const events: E[] = [];
    const corrections: E[] = [];
    for (const e of fresh) (this.targets.has(e.source) ? corrections : events).push(e);
    return { events, corrections };
  }

  /**
   * After the aggregate step folded the batch's plain events (`kept`: not late): records what
   * they contributed, then applies the corrections that waited for them and the batch's own
   * corrections, in arrival order, and recomputes every window a correction touched.
   */
  apply(kept: readonly MeasuredEvent[], corrections: readonly MeasuredEvent[], stores: CorrectionStores): CorrectionResult {
    const result: CorrectionResult = { applied: [], late: [], dead: [], outputs: [], counts: [], expired: 0 };
    if (!this.settings.enabled) return result; // nothing kept: classify dead-letters every correction
    let now = Number.NEGATIVE_INFINITY;
    for (const e of [...kept, ...corrections]) now = Math.max(now, millisOf(e.stamp.time));
    const queue: Work[] = [];
    const release = (originalKey: string): void => {
      const keys = this.pendingByOriginal.get(originalKey);
      if (keys === undefined) return;
      this.pendingByOriginal.delete(originalKey);
      this.pendingCount -= keys.length;
      const waiting = keys.map((k) => [k, stores.pending.get(k)] as const).filter((p): p is readonly [string, PendingCorrection] => p[1] !== undefined);
      waiting.sort((a, b) => (a[1].stamp.time < b[1].stamp.time ? -1 : a[1].stamp.time > b[1].stamp.time ? 1 : 0));
      for (const [k, p] of waiting) {
        stores.pending.delete(k);
        queue.push({ event: this.measurePending(p), target: p.target });
      }
    };
    for (const e of kept) {
      const key = dedupeKey(e.event.source, e.event.id);
      const c = this.contributionOf(e);
      stores.contributions.put(key, c);
      this.index.add(key, c);
      release(key);
    }
    for (const e of corrections) queue.push({ event: e, target: this.targets.get(e.source)! });

    const touched = new Map<string, { corrections: number; members: Set<string> }>();
    for (let i = 0; i < queue.length; i++) {
      const w = queue[i]!;
      const ownKey = this.handle(w, stores, touched, result);
      if (ownKey !== undefined) release(ownKey);
    }

    for (const [key, t] of touched) {
      const coords = this.index.coordinates(key);
      if (coords === undefined) continue; // a meter no longer configured
      const aggregate = this.index.recompute(key, stores.aggregates.get(key), t.corrections);
      stores.aggregates.put(key, aggregate);
      result.outputs.push({ topic: this.settings.aggregatesTopic, key, value: frame(this.settings.aggregateSchemaId, aggregateCodec.encode(aggregate)), headers: {} });
      if (coords.aggregation === 'UNIQUE_COUNT' && t.members.size > 0) {
        // The `unique` store says which members an event of this window would not count again.
        const present = this.index.members(key);
        for (const m of t.members) {
          const memberKey = `${key}\u0000${m}`;
          const stored = stores.unique.get(memberKey) !== undefined;
          if (present.has(m) && !stored) stores.unique.put(memberKey, coords.windowEnd);
          else if (!present.has(m) && stored) stores.unique.delete(memberKey);
        }
      }
    }

    this.index.endBatch();
    if (Number.isFinite(now)) {
      this.expirePending(now, stores, result);
      result.expired += this.sweeper.run(stores.contributions, now);
      if (now - this.indexSweptAt >= SWEEP_EVERY_MS) {
        this.index.sweep(now, this.settings.allowedLatenessMs);
        this.indexSweptAt = now;
      }
    }
    return result;
  }

  /** Aggregate records of the aggregate step, without those a recompute replaced, then the recomputed ones. */
  static mergeOutputs(aggregated: readonly OutputRecord[], recomputed: readonly OutputRecord[]): OutputRecord[] {
    if (recomputed.length === 0) return [...aggregated];
    const replaced = new Set(recomputed.map((r) => r.key as string));
    return [...aggregated.filter((r) => !replaced.has(r.key as string)), ...recomputed];
  }

  /** Applies one correction, or holds, late-routes or dead-letters it. Returns its own key when applied. */
  private handle(w: Work, stores: CorrectionStores, touched: Map<string, { corrections: number; members: Set<string> }>, result: CorrectionResult): string | undefined {
    const { event: e, target } = w;
    const kind = target.kind;
    const ownKey = dedupeKey(e.event.source, e.event.id);
    const targetKey = dedupeKey(target.source, target.id);
    const stampMs = millisOf(e.stamp.time);
    const dead = (reason: DeadLetter['reason'], message: string): undefined => {
      result.dead.push({ source: e.source, reason, message });
      result.counts.push({ kind, outcome: 'dead-lettered' });
      stores.dedupe.delete(ownKey); // a dead-lettered event never claims its id: a fixed re-send is applied
      return undefined;
    };
    const original = stores.contributions.get(targetKey);
    const named = `${JSON.stringify(target.source)}/${JSON.stringify(target.id)}`;
    if (original === undefined) {
      const max = this.settings.maxPending ?? MAX_PENDING;
      if (this.pendingCount >= max) {
        return dead('correction-unknown-original', `${kind} of ${named}: no such event was accepted within the allowed lateness, and ${max} corrections already wait for their originals`);
      }
      const key = pendingKey(targetKey, ownKey);
      stores.pending.put(key, { source: e.source, event: e.event, target, stamp: e.stamp });
      this.addPending(targetKey, key);
      result.counts.push({ kind, outcome: 'pending' });
      return undefined;
    }
    if (original.k !== undefined) return dead('invalid-correction', `${kind} of ${named}, which is itself a ${original.k}: a correction cannot be corrected (correct the original instead)`);
    if (original.v !== undefined) return dead('invalid-correction', `${kind} of ${named}, which was already voided by ${JSON.stringify(original.v[0])}/${JSON.stringify(original.v[1])}`);
    if (original.s !== e.event.subject) return dead('invalid-correction', `${kind} of ${named} under subject ${JSON.stringify(e.event.subject.slice(0, 100))}, but the original's subject is ${JSON.stringify(original.s.slice(0, 100))}: a correction keeps the original's subject`);
    const lateness = this.settings.allowedLatenessMs;
    const checkAt = Math.max(stampMs, original.st);
    const tooLate =
      original.r.length > 0 && original.t < checkAt - lateness
        ? `the original's event time ${new Date(original.t).toISOString()}`
        : kind === 'amend' && e.readings.length > 0 && e.event.time < checkAt - lateness
          ? `the amended event time ${new Date(e.event.time).toISOString()}`
          : undefined;
    if (tooLate !== undefined) {
      result.late.push({ source: e.source, reason: 'correction-too-late', detail: `${kind} of ${named}: ${tooLate} is more than ${lateness} ms before ${new Date(checkAt).toISOString()}: its windows are final`, seenAt: stampMs });
      result.counts.push({ kind, outcome: 'late' });
      return undefined;
    }
    const note = (keys: string[], c: Contribution): void => {
      for (const key of new Set(keys)) {
        let t = touched.get(key);
        if (t === undefined) touched.set(key, (t = { corrections: 0, members: new Set() }));
        for (const r of c.r) if (r[3] !== null) t.members.add(r[3]);
      }
    };
    const removedFrom = this.index.remove(targetKey, original);
    note(removedFrom, original);
    let updated: Contribution;
    const by: [string, string] = [e.event.source, e.event.id];
    if (kind === 'void') updated = { ...original, r: [], v: by };
    else {
      const r = keptReadings(e.readings);
      updated = { ...original, t: e.event.time, r, a: by, u: Math.max(original.u, reachOf(this.settings.meters, e.event.time, r)) };
      note(this.index.add(targetKey, updated, true), updated);
    }
    // Each correction counts once per window it changed (an amend within one window: once).
    const windows = new Set(kind === 'void' ? removedFrom : [...removedFrom, ...this.index.windowsOf(updated)]);
    for (const key of windows) touched.get(key)!.corrections += 1;
    stores.contributions.put(targetKey, updated);
    // Ordo's stamp as it is applied: after its original (the clock witnessed the original's
    // key), and after every correction applied before it, so the ordered topic carries the
    // corrections of an event in the order they were applied (a restore replays that order).
    const stamp: Stamp = { time: this.settings.clock.now(), node: this.settings.clock.node };
    const applied: MeasuredEvent = { ...e, stamp, orderKey: stamp };
    stores.contributions.put(ownKey, { s: e.event.subject, k: kind, t: millisOf(applied.stamp.time), st: millisOf(applied.stamp.time), o: orderText(applied.orderKey.time), n: applied.orderKey.node, r: [], u: millisOf(applied.stamp.time) });
    result.applied.push(applied);
    result.counts.push({ kind, outcome: 'applied' });
    return ownKey;
  }

  /** A waiting correction, as it was measured on arrival (an amend that did not measure was dead-lettered then). */
  private measurePending(p: PendingCorrection): MeasuredEvent {
    const stamped: StampedEvent = { source: p.source, event: p.event, context: undefined, stamp: p.stamp, orderKey: p.stamp };
    return { ...stamped, readings: p.target.kind === 'void' ? [] : measureReadings(this.settings.meters, p.event) };
  }

  /**
   * An idle partition's tick (wall clock `now`): corrections that waited longer than the
   * hold are dead-lettered even when no batch comes, so a correction of an event that never
   * existed is answered within the hold.
   */
  expireIdle(now: number, stores: Pick<CorrectionStores, 'pending' | 'dedupe'>): Pick<CorrectionResult, 'dead' | 'counts'> {
    const result: CorrectionResult = { applied: [], late: [], dead: [], outputs: [], counts: [], expired: 0 };
    if (this.settings.enabled) this.expirePending(now, stores, result);
    return { dead: result.dead, counts: result.counts };
  }

  /** A correction that waited longer than the hold for its original: dead-lettered `correction-unknown-original`. */
  private expirePending(now: number, stores: Pick<CorrectionStores, 'pending' | 'dedupe'>, result: CorrectionResult): void {
    if (this.pendingCount === 0 || now - this.pendingCheckedAt < 1_000) return;
    this.pendingCheckedAt = now;
    const hold = this.settings.holdMs ?? HOLD_MS;
    for (const [originalKey, keys] of [...this.pendingByOriginal]) {
      const left: string[] = [];
      for (const k of keys) {
        const p = stores.pending.get(k);
        if (p === undefined) continue;
        if (millisOf(p.stamp.time) > now - hold) {
          left.push(k);
          continue;
        }
        stores.pending.delete(k);
        stores.dedupe.delete(dedupeKey(p.event.source, p.event.id));
        result.dead.push({
          source: p.source,
          reason: 'correction-unknown-original',
          message: `${p.target.kind} of ${JSON.stringify(p.target.source)}/${JSON.stringify(p.target.id)}: no such event was accepted within the allowed lateness (waited ${hold} ms for it)`,
        });
        result.counts.push({ kind: p.target.kind, outcome: 'dead-lettered' });
      }
      this.pendingCount -= keys.length - left.length;
      if (left.length === 0) this.pendingByOriginal.delete(originalKey);
      else this.pendingByOriginal.set(originalKey, left);
    }
  }

  private addPending(originalKey: string, key: string): void {
    const keys = this.pendingByOriginal.get(originalKey);
    if (keys === undefined) this.pendingByOriginal.set(originalKey, [key]);
    else if (!keys.includes(key)) keys.push(key);
    else return;
    this.pendingCount += 1;
  }

  private contributionOf(e: MeasuredEvent): Contribution {
    const r = keptReadings(e.readings);
    const st = millisOf(e.stamp.time);
    return { s: e.event.subject, t: e.event.time, st, o: orderText(e.orderKey.time), n: e.orderKey.node, r, u: Math.max(st, reachOf(this.settings.meters, e.event.time, r)) };
  }

  // ---- restore --------------------------------------------------------------------------

  /**
   * Where the ordered topic must be replayed from (record timestamp = Ordo's stamp on
   * arrival): every event whose windows can still change, i.e. whose time is within the
   * lateness (and the max future) of `hwmMs`, or earlier in a window that is still open.
   */
  replayFrom(hwmMs: number): number {
    const longest = Math.max(0, ...this.settings.meters.meters.flatMap((m) => m.windows.map((w) => WINDOW_SPAN_MS[w])));
    return hwmMs - this.settings.allowedLatenessMs - this.settings.maxFutureMs - longest;
  }

  /**
   * Restore: one accepted record, in offset order, from the ordered topic (or an event the
   * late topic took as `out-of-order`: it was aggregated too). Applies it as it was applied
   * live: an event records its contribution, a correction voids or amends its original.
   */
  replayRecord(record: SourceRecord, contributions: KeyValueStore<Contribution>, hwmMs: number): void {
    if (record.value === null) return;
    const event = usageEventType.fromBuffer(unframe(record.value).body) as UsageEvent;
    const order = { o: orderText(parseServiceTime(headerText(record.headers[HEADER.originServiceTime]) ?? '0000000000000000')), n: headerText(record.headers[HEADER.originServiceNode]) ?? '' };
    this.replayEvent(record.headers, event, record.timestamp, order, contributions, hwmMs);
  }

  /** Restore: the held events (accepted and aggregated, not yet on the ordered topic), in order-key order. */
  replayHeld(held: readonly StampedEvent[], contributions: KeyValueStore<Contribution>, hwmMs: number): void {
    for (const e of held) this.replayEvent(e.source.headers, e.event, millisOf(e.stamp.time), { o: orderText(e.orderKey.time), n: e.orderKey.node }, contributions, hwmMs);
  }

  /**
   * Restore, last: corrections replayed before their original are applied now; the window
   * index is built from the store; corrections still waiting are re-read (and their ids
   * claimed, `claim`): they are on no topic the dedupe restore reads.
   */
  finishRestore(stores: Pick<CorrectionStores, 'contributions' | 'pending'>, hwmMs: number, claim: (source: string, id: string, seenAt: number) => void): void {
    for (let round = 0; round < 2 && this.deferred.length > 0; round++) {
      const again = this.deferred;
      this.deferred = [];
      for (const d of again) this.applyReplayed(d.key, d.target, d.event, d.stampMs, d.order, stores.contributions, hwmMs);
    }
    this.deferred = [];
    this.index.clear();
    for (const [key, c] of stores.contributions.entries()) if (!this.restored.has(key)) this.index.add(key, c);
    for (const [key, c] of this.restored) this.index.add(key, c);
    this.restored.clear();
    this.pendingByOriginal.clear();
    this.pendingCount = 0;
    for (const [key, p] of stores.pending.entries()) {
      this.addPending(dedupeKey(p.target.source, p.target.id), key);
      claim(p.event.source, p.event.id, millisOf(p.stamp.time));
    }
  }

  private replayEvent(headers: Record<string, HeaderValue>, event: UsageEvent, stampMs: number, order: { o: string; n: string }, contributions: KeyValueStore<Contribution>, hwmMs: number): void {
    const target = readCorrection(headers, event);
    const key = dedupeKey(event.source, event.id);
    if (typeof target === 'object') {
      this.applyReplayed(key, target, event, stampMs, order, contributions, hwmMs);
      return;
    }
    const r = keptReadings(measureReadings(this.settings.meters, event));
    const c: Contribution = { s: event.subject, t: event.time, st: stampMs, o: order.o, n: order.n, r, u: Math.max(stampMs, reachOf(this.settings.meters, event.time, r)) };
    if (c.u <= hwmMs - this.settings.allowedLatenessMs) return; // no correction can reach it any more
    this.put(key, c, contributions);
  }

  private applyReplayed(key: string, target: CorrectionTarget, event: UsageEvent, stampMs: number, order: { o: string; n: string }, contributions: KeyValueStore<Contribution>, hwmMs: number): void {
    const targetKey = dedupeKey(target.source, target.id);
    const original = contributions.get(targetKey);
    if (original === undefined) {
      // Its original comes later in this replay (another topic), or is beyond reach (then so is this).
      this.deferred.push({ key, target, event, stampMs, order });
      return;
    }
    const by: [string, string] = [event.source, event.id];
    if (target.kind === 'void') this.put(targetKey, { ...original, r: [], v: by }, contributions);
    else if (original.v !== undefined) this.put(targetKey, { ...original, a: by }, contributions); // applied before the void (a later amend is refused)
    else {
      const r = keptReadings(measureReadings(this.settings.meters, event));
      this.put(targetKey, { ...original, t: event.time, r, a: by, u: Math.max(original.u, reachOf(this.settings.meters, event.time, r)) }, contributions);
    }
    if (stampMs > hwmMs - this.settings.allowedLatenessMs) this.put(key, { s: event.subject, k: target.kind, t: stampMs, st: stampMs, o: order.o, n: order.n, r: [], u: stampMs }, contributions);
  }

  private put(key: string, c: Contribution, contributions: KeyValueStore<Contribution>): void {
    contributions.put(key, c);
    this.restored.set(key, c);
  }
}

const WINDOW_SPAN_MS = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000, MONTH: 31 * 86_400_000 } as const;

function keptReadings(readings: readonly Reading[]): KeptReading[] {
  return readings.map((r) => [r.meter.slug, r.groupBy, r.value === undefined ? null : r.value.toString(), r.member ?? null]);
}

/**
 * An event's readings for every meter that selects it, for events that measured once already
 * (restore, corrections that waited); a reading that no longer measures (the meters changed
 * since) is left out.
 */
function measureReadings(meters: MeterCatalog, event: UsageEvent): Reading[] {
  const readings: Reading[] = [];
  for (const meter of meters.forEventType(event.type)) {
    const reading = readMeter(meter, { event } as StampedEvent);
    if (typeof reading !== 'string') readings.push(reading);
  }
  return readings;
}
