import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RootDatabase, open } from 'lmdb';
import { COMMIT } from '../engine/lmdb-store.js';
import { type IndexEntries, type Position, type Receipt, type ReceiptTopic, type TrailEvent, eventKey, letterKey, serviceMillis, trailKeyOf } from './entries.js';

/**
 * The receipts index in lmdb, one environment per api replica. Layout (string keys):
 * - `e:<hash of source,id>:<kind><partition>:<offset>` a receipt; `d:<partition>:<offset>` a
 *   dead letter whose value does not decode;
 * - `t:<hash of trail id>:<order time>:<kind><partition>:<offset>` a trail event, and
 *   `s:<hash of trail id>` the trail's summary (for the open/stalled gauges);
 * - `r:<record ms, 15 digits>:<key>` the retention index: every entry under its record time;
 * - `o:<topic>:<partition>` the next offset to read, written in the same lmdb transaction as
 *   the entries of the batch it ends, so a restart resumes exactly there;
 * - `m:layout` which topics this index reads, `m:entries` how many receipts it holds.
 * Lookups are one B-tree descent and a short range read: their cost does not grow with
 * the number of entries beyond the tree's depth.
 */

const LAYOUT_VERSION = 1;
const TOPIC_CHAR: Record<ReceiptTopic, string> = { ordered: 'a', dlq: 'd', late: 'l', duplicates: 'u' };
/** Above every character a key part holds (hashes are base64url, numbers digits). */
const END = '\uffff';

export interface TrailSummary {
  id: string;
  /** Record time (ms) of its latest event. */
  lastAt: number;
  completed: boolean;
  firstTime: string;
  lastTime: string;
}

export interface AppliedBatch {
  /** Receipts added (the ordo_receipts_indexed_total outcomes). */
  outcomes: Receipt['kind'][];
  /** Trails that completed in this batch, with their duration (first to terminal service time). */
  completed: { id: string; durationMs: number }[];
}

export interface ReceiptIndexOptions {
  /** Where the lmdb environment lives; undefined: a fresh temporary directory, removed on close. */
  dir: string | undefined;
  /** The topic names read, by role: a change of names means another pipeline, so the index starts over. */
  topics: Record<ReceiptTopic, string>;
  terminalTypes: readonly string[];
}

export class ReceiptIndex {
  private readonly db: RootDatabase<unknown, string>;
  private readonly temporary: string | undefined;
  /** Trails not completed, by summary key: their last event time (ms). */
  private readonly open = new Map<string, number>();
  private readonly terminal: ReadonlySet<string>;
  /** Whether opening found an index of other topics (or none, or a broken one) and started it over. */
  readonly rebuilt: boolean;

  constructor(private readonly options: ReceiptIndexOptions) {
    this.terminal = new Set(options.terminalTypes);
    let dir = options.dir;
    if (dir === undefined) dir = this.temporary = mkdtempSync(join(tmpdir(), 'ordo-receipts-'));
    else mkdirSync(dir, { recursive: true });
    let db: RootDatabase<unknown, string>;
    try {
      db = open<unknown, string>({ path: dir, name: 'receipts' });
      db.get('m:layout');
    } catch {
      // An index is only a cache of the topics: one that does not open is started over.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      db = open<unknown, string>({ path: dir, name: 'receipts' });
    }
    this.db = db;
    const layout = JSON.stringify({ version: LAYOUT_VERSION, topics: options.topics });
    this.rebuilt = db.get('m:layout') !== layout;
    if (this.rebuilt) this.reset();
    for (const { key, value } of db.getRange({ start: 's:', end: `s:${END}` })) {
      const summary = value as TrailSummary;
      if (!summary.completed) this.open.set(key, summary.lastAt);
    }
  }

  /** Drops every entry and offset: the next read starts each topic from its beginning. */
  reset(): void {
    this.db.transactionSync(() => {
      for (const key of this.db.getKeys({})) void this.db.remove(key);
      void this.db.put('m:layout', JSON.stringify({ version: LAYOUT_VERSION, topics: this.options.topics }));
      void this.db.put('m:entries', 0);
    }, COMMIT);
    this.open.clear();
  }

  /** Next offset to read per partition of a topic's stored position. */
  positions(topic: ReceiptTopic): Map<number, bigint> {
    const positions = new Map<number, bigint>();
    const prefix = `o:${topic}:`;
    for (const { key, value } of this.db.getRange({ start: prefix, end: `${prefix}${END}` })) positions.set(Number(key.slice(prefix.length)), BigInt(value as string));
    return positions;
  }

  /**
   * One fetched batch of one topic partition: its entries and the next offset, in one lmdb
   * transaction (what makes a restart resume exactly after it).
   */
  apply(topic: ReceiptTopic, partition: number, next: bigint, records: readonly { at: number; entries: IndexEntries }[]): AppliedBatch {
    const applied: AppliedBatch = { outcomes: [], completed: [] };
    const db = this.db;
    db.transactionSync(() => {
      let added = 0;
      for (const { at, entries } of records) {
        for (const { key, receipt } of entries.receipts) {
          const full = `${key}:${receiptSuffix(topic, receipt)}`;
          // Each record position is applied once (its offset commits with it): no existence check.
          added += 1;
          void db.put(full, receipt);
          void db.put(timeKey(at, full), '');
          applied.outcomes.push(receipt.kind);
        }
        if (entries.trail !== undefined) this.addTrailEvent(entries.trail.id, entries.trail.event, applied);
      }
      if (added > 0) void db.put('m:entries', this.entries() + added);
      void db.put(`o:${topic}:${partition}`, next.toString());
    }, COMMIT);
    return applied;
  }

  /** Every receipt under the event's key (the caller keeps those of this exact source and id). */
  receipts(source: string, id: string): Receipt[] {
    const prefix = `${eventKey(source, id)}:`;
    return [...this.db.getRange({ start: prefix, end: `${prefix}${END}` })].map((e) => e.value as Receipt);
  }

  /** A dead letter by its DLQ position, when its value did not decode (else it is under its event). */
  letter(position: Position): Receipt | undefined {
    const prefix = `${letterKey(position)}:`;
    for (const { value } of this.db.getRange({ start: prefix, end: `${prefix}${END}`, limit: 1 })) return value as Receipt;
    return undefined;
  }

  /** A trail's events (at most `limit`, in order-key order), and its summary. */
  trail(id: string, limit: number): { events: TrailEvent[]; summary: TrailSummary | undefined } {
    const prefix = `${trailKeyOf(id)}:`;
    const events: TrailEvent[] = [];
    for (const { value } of this.db.getRange({ start: prefix, end: `${prefix}${END}`, limit })) {
      const stored = value as TrailEvent & { trail: string };
      if (stored.trail === id) events.push(stored);
    }
    const summary = this.db.get(`s:${trailKeyOf(id).slice(2)}`) as TrailSummary | undefined;
    return { events, summary: summary?.id === id ? summary : undefined };
  }

  /** Open trails (not completed) and, of those, the ones with no event since `stalledBefore` (ms). */
  trailCounts(stalledBefore: number): { open: number; stalled: number } {
    let stalled = 0;
    for (const lastAt of this.open.values()) if (lastAt < stalledBefore) stalled += 1;
    return { open: this.open.size - stalled, stalled };
  }

  /** Receipt records held (an event dead-lettered, then replayed and accepted, has two; its re-sends one each). */
  entries(): number {
    return (this.db.get('m:entries') as number | undefined) ?? 0;
  }

  /** The oldest record time still indexed (ms), if any. */
  oldest(): number | undefined {
    for (const { key } of this.db.getRange({ start: 'r:', end: `r:${END}`, limit: 1 })) return Number(key.slice(2, 17));
    return undefined;
  }

  /**
   * Removes at most `max` entries whose record time is before `horizon` (ms), in one lmdb
   * transaction: retention in bounded steps, so a prune never holds the index long.
   * Returns how many it removed (fewer than `max`: nothing older is left).
   */
  prune(horizon: number, max: number): number {
    const db = this.db;
    const doomed = [...db.getKeys({ start: 'r:', end: timeKey(horizon, ''), limit: max })];
    if (doomed.length === 0) return 0;
    db.transactionSync(() => {
      let removed = 0;
      for (const key of doomed) {
        const target = key.slice(18);
        if (target.startsWith('e:') || target.startsWith('d:')) removed += 1;
        if (target.startsWith('s:')) this.open.delete(target);
        void db.remove(target);
        void db.remove(key);
      }
      if (removed > 0) void db.put('m:entries', Math.max(0, this.entries() - removed));
    }, COMMIT);
    return doomed.length;
  }

  async close(): Promise<void> {
    await this.db.close();
    if (this.temporary !== undefined) rmSync(this.temporary, { recursive: true, force: true });
  }

  private addTrailEvent(id: string, event: TrailEvent, applied: AppliedBatch): void {
    const db = this.db;
    const hashed = trailKeyOf(id);
    const key = `${hashed}:${event.orderKey.time}:${TOPIC_CHAR[event.topic]}${event.position.partition}:${event.position.offset}`;
    void db.put(key, { ...event, trail: id });
    void db.put(timeKey(event.at, key), '');
    const summaryKey = `s:${hashed.slice(2)}`;
    const before = db.get(summaryKey) as TrailSummary | undefined;
    const summary: TrailSummary =
      before === undefined || before.id !== id
        ? { id, lastAt: event.at, completed: false, firstTime: event.orderKey.time, lastTime: event.orderKey.time }
        : {
            ...before,
            lastAt: Math.max(before.lastAt, event.at),
            firstTime: event.orderKey.time < before.firstTime ? event.orderKey.time : before.firstTime,
            lastTime: event.orderKey.time > before.lastTime ? event.orderKey.time : before.lastTime,
          };
    if (!summary.completed && event.outcome === 'accepted' && this.terminal.has(event.type)) {
      summary.completed = true;
      applied.completed.push({ id, durationMs: serviceMillis(summary.lastTime) - serviceMillis(summary.firstTime) });
    }
    // The summary leaves with the trail's last event: its retention entry moves with lastAt.
    if (before !== undefined && before.lastAt !== summary.lastAt) void db.remove(timeKey(before.lastAt, summaryKey));
    void db.put(summaryKey, summary);
    void db.put(timeKey(summary.lastAt, summaryKey), '');
    if (summary.completed) this.open.delete(summaryKey);
    else this.open.set(summaryKey, summary.lastAt);
  }
}

function receiptSuffix(topic: ReceiptTopic, receipt: Receipt): string {
  // The original's `corrected` entry sits at the correction's position: a kind of its own.
  const kind = receipt.kind === 'corrected' ? 'c' : TOPIC_CHAR[topic];
  return `${kind}${receipt.position.partition}:${receipt.position.offset}`;
}

/** `r:<ms, 15 digits>:<key>`: 15 digits hold every ms timestamp up to year 33658 (negative ones clamp to 0). */
function timeKey(at: number, key: string): string {
  return `r:${String(Math.max(0, Math.trunc(at))).padStart(15, '0')}:${key}`;
}
