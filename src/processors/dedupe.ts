import { millisOf } from '../clock/service-time.js';
import type { KeyValueStore } from '../model/store.js';
import type { OutputRecord, StampedEvent } from '../model/records.js';
import { Sweeper } from './sweep.js';

/** Store of claimed ids: key from dedupeKey, value the stamp millisecond it was first seen. */
export const DEDUPE_STORE = 'dedupe';

/** How often (in stamp time) the store is swept for expired ids. */
const SWEEP_EVERY_MS = 60_000;

/**
 * Drops an event whose (source, id) was seen within the dedupe window. Claims are store
 * writes, staged with the batch: an id is only claimed once the batch that carries it
 * commits, so a failed write never swallows the retry. The window runs in stamp time (when
 * Ordo saw the event), and ids are kept per input partition, which holds because upstream
 * retries keep the record key.
 */
export class DedupeStep {
  private readonly sweeper: Sweeper<number>;

  constructor(private readonly windowMs: number) {
    this.sweeper = new Sweeper(SWEEP_EVERY_MS, (_key, seenAt, now) => seenAt <= now - windowMs);
  }

  run<E extends StampedEvent>(events: readonly E[], store: KeyValueStore<number>): { fresh: E[]; duplicates: number; dropped: E[]; expired: number } {
    const fresh: E[] = [];
    const dropped: E[] = [];
    let duplicates = 0;
    let now = Number.NEGATIVE_INFINITY;
    for (const e of events) {
      const seenAt = millisOf(e.stamp.time);
      now = Math.max(now, seenAt);
      const key = dedupeKey(e.event.source, e.event.id);
      const previous = store.get(key);
      if (previous !== undefined && previous > seenAt - this.windowMs) {
        duplicates += 1;
        dropped.push(e);
        continue;
      }
      store.put(key, seenAt);
      fresh.push(e);
    }
    const expired = events.length > 0 ? this.sweeper.run(store, now) : 0;
    return { fresh, duplicates, dropped, expired };
  }
}

/**
 * The batch's dropped re-sends as one record of the duplicates topic (written in the batch's
 * transaction, so it exists exactly when the drop does): key the input partition, value
 * `{"duplicates":[{"source","id","partition","offset","seenAt"}]}`. Receipts count re-sends
 * from it; accepted events cost no such write.
 */
export function toDuplicatesRecord(dropped: readonly StampedEvent[], topic: string, partition: number): OutputRecord {
  const duplicates = dropped.map((e) => ({ source: e.event.source, id: e.event.id, partition: e.source.partition, offset: e.source.offset, seenAt: millisOf(e.stamp.time) }));
  return { topic, key: String(partition), value: JSON.stringify({ duplicates }), headers: {} };
}

/** Length-prefixed, so no (source, id) pair collides with another whatever they contain. */
export function dedupeKey(source: string, id: string): string {
  return `${source.length}:${source}${id}`;
}
