import type { CorrectionKind, OrderKey, Position, Receipt, TrailEvent } from './entries.js';
import { serviceMillis } from './entries.js';

/**
 * The pure answers: what the receipts of one event say (`receiptAnswer`) and what the events
 * of one trail say (`trailAnswer`). The index hands them its entries; nothing here reads it.
 */

export type ReceiptStatus = 'accepted' | 'voided' | 'amended' | 'duplicate' | 'dead-lettered' | 'late';

export interface AcceptedView {
  seq: string | null;
  serviceTime: string | null;
  serviceNode: string | null;
  orderKey: OrderKey;
  partition: number;
  offset: string;
  at: string;
  aggregates: string[];
}

export interface ReceiptAnswer {
  source: string;
  id: string;
  /** The latest outcome; `duplicate` only when no copy of it is known otherwise. */
  status: ReceiptStatus;
  subject: string | null;
  /** The latest accepted copy on the ordered topic. */
  accepted: AcceptedView | null;
  /** Re-sends dropped as duplicates, and the accepted copy they were duplicates of. */
  duplicates: { count: number; drops: { partition: number; offset: string; seenAt: string }[]; acceptedCopy: Position | null } | null;
  deadLetters: { reason: string; error: string; partition: number; offset: string; input: Position | null; at: string }[];
  late: { reason: string; detail: string; partition: number; offset: string; input: Position | null; at: string }[];
  /** Corrections that voided or amended this event, in order. */
  corrections: { correction: CorrectionKind; by: { source: string; id: string }; partition: number; offset: string; at: string }[];
  /** When this event is itself a correction: what it corrects. */
  corrects: { correction: CorrectionKind; source: string; id: string } | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * One event's receipts as an answer, or undefined when none is about (source, id) (an index
 * key is a hash: receipts of another pair under it are not this event's). Every record is
 * answered (dead-lettered, then replayed and accepted); the latest outcome is the status.
 */
export function receiptAnswer(source: string, id: string, all: readonly Receipt[]): ReceiptAnswer | undefined {
  const receipts = all.filter((r) => r.source === source && r.id === id).sort((a, b) => a.at - b.at || a.position.partition - b.position.partition || compareOffsets(a.position.offset, b.position.offset));
  if (receipts.length === 0) return undefined;
  const answer: ReceiptAnswer = { source, id, status: 'duplicate', subject: null, accepted: null, duplicates: null, deadLetters: [], late: [], corrections: [], corrects: null };
  let latest: ReceiptStatus | undefined;
  let acceptedAt = Number.NEGATIVE_INFINITY;
  for (const r of receipts) {
    if ('subject' in r && r.subject !== undefined) answer.subject = r.subject;
    switch (r.kind) {
      case 'accepted':
        answer.accepted = {
          seq: r.seq ?? null,
          serviceTime: r.serviceTime ?? null,
          serviceNode: r.serviceNode ?? null,
          orderKey: r.orderKey,
          partition: r.position.partition,
          offset: r.position.offset,
          at: iso(r.at),
          aggregates: r.aggregates,
        };
        if (r.corrects !== undefined) answer.corrects = { correction: r.corrects.kind, source: r.corrects.source, id: r.corrects.id };
        acceptedAt = r.at;
        latest = 'accepted';
        break;
      case 'dead-lettered':
        answer.deadLetters.push({ reason: r.reason, error: r.error, partition: r.position.partition, offset: r.position.offset, input: r.input ?? null, at: iso(r.at) });
        latest = 'dead-lettered';
        break;
      case 'late':
        answer.late.push({ reason: r.reason, detail: r.detail, partition: r.position.partition, offset: r.position.offset, input: r.input ?? null, at: iso(r.at) });
        latest = 'late';
        break;
      case 'duplicate':
        answer.duplicates ??= { count: 0, drops: [], acceptedCopy: null };
        answer.duplicates.count += 1;
        answer.duplicates.drops.push({ partition: r.input.partition, offset: r.input.offset, seenAt: iso(r.seenAt) });
        break;
      case 'corrected':
        answer.corrections.push({ correction: r.correction, by: r.by, partition: r.position.partition, offset: r.position.offset, at: iso(r.at) });
        // A correction comes after its original on the same partition: it changes an accepted status only.
        if (latest === 'accepted' || latest === 'voided' || latest === 'amended') latest = r.correction === 'void' ? 'voided' : 'amended';
        break;
    }
  }
  if (answer.duplicates !== null && answer.accepted !== null && acceptedAt > Number.NEGATIVE_INFINITY) {
    answer.duplicates.acceptedCopy = { partition: answer.accepted.partition, offset: answer.accepted.offset };
  }
  answer.status = latest ?? 'duplicate';
  return answer;
}

export type TrailStatus = 'completed' | 'stalled' | 'open';

export interface TrailAnswer {
  id: string;
  status: TrailStatus;
  events: (Omit<TrailEvent, 'at'> & { serviceTime: string; at: string })[];
  /** Events beyond the answer's limit are counted but not listed. */
  truncated: boolean;
  counts: { total: number; bySource: Record<string, number>; byType: Record<string, number>; byOutcome: Record<string, number> };
  firstServiceTime: string;
  lastServiceTime: string;
  durationMs: number;
  /** When the trail last had an event (record timestamp): what `stalled` is measured from. */
  lastEventAt: string;
}

export interface TrailRules {
  terminalTypes: readonly string[];
  stallMs: number;
  now: number;
  /** Events listed at most. */
  limit: number;
}

/** Causal order: order key time, then node, then where it was written. */
export function compareTrailEvents(a: TrailEvent, b: TrailEvent): number {
  if (a.orderKey.time !== b.orderKey.time) return a.orderKey.time < b.orderKey.time ? -1 : 1;
  if (a.orderKey.node !== b.orderKey.node) return a.orderKey.node < b.orderKey.node ? -1 : 1;
  return a.at - b.at || a.position.partition - b.position.partition || compareOffsets(a.position.offset, b.position.offset);
}

/**
 * A trail's events as an answer, or undefined when there are none. Completed: an accepted
 * event of a terminal type; else stalled when its last event is `stallMs` old; else open.
 */
export function trailAnswer(id: string, all: readonly TrailEvent[], rules: TrailRules): TrailAnswer | undefined {
  if (all.length === 0) return undefined;
  const events = [...all].sort(compareTrailEvents);
  const counts: TrailAnswer['counts'] = { total: events.length, bySource: {}, byType: {}, byOutcome: {} };
  const bump = (table: Record<string, number>, key: string): void => void Object.defineProperty(table, key, { value: (Object.hasOwn(table, key) ? table[key]! : 0) + 1, enumerable: true, writable: true, configurable: true });
  let lastAt = Number.NEGATIVE_INFINITY;
  let completed = false;
  for (const e of events) {
    bump(counts.bySource, e.source);
    bump(counts.byType, e.type);
    bump(counts.byOutcome, e.outcome);
    lastAt = Math.max(lastAt, e.at);
    if (e.outcome === 'accepted' && rules.terminalTypes.includes(e.type)) completed = true;
  }
  const first = events[0]!.orderKey.time;
  const last = events[events.length - 1]!.orderKey.time;
  const status: TrailStatus = completed ? 'completed' : rules.now - lastAt >= rules.stallMs ? 'stalled' : 'open';
  return {
    id,
    status,
    events: events.slice(0, rules.limit).map((e) => ({ ...e, serviceTime: iso(serviceMillis(e.orderKey.time)), at: iso(e.at) })),
    truncated: events.length > rules.limit,
    counts,
    firstServiceTime: iso(serviceMillis(first)),
    lastServiceTime: iso(serviceMillis(last)),
    durationMs: serviceMillis(last) - serviceMillis(first),
    lastEventAt: iso(lastAt),
  };
}

function compareOffsets(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
