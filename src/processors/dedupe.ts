import { millisOf } from '../clock/service-time.js';
import type { KeyValueStore } from '../model/store.js';
import type { StampedEvent } from '../model/records.js';
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

  run<E extends StampedEvent>(events: readonly E[], store: KeyValueStore<number>): { fresh: E[]; duplicates: number; expired: number } {
    const fresh: E[] = [];
    let duplicates = 0;
    let now = Number.NEGATIVE_INFINITY;
    for (const e of events) {
      const seenAt = millisOf(e.stamp.time);
      now = Math.max(now, seenAt);
      const key = dedupeKey(e.event.source, e.event.id);
      const previous = store.get(key);
      if (previous !== undefined && previous > seenAt - this.windowMs) {
        duplicates += 1;
        continue;
      }
      store.put(key, seenAt);
      fresh.push(e);
    }
    const expired = events.length > 0 ? this.sweeper.run(store, now) : 0;
    return { fresh, duplicates, expired };
  }
}

/** Length-prefixed, so no (source, id) pair collides with another whatever they contain. */
export function dedupeKey(source: string, id: string): string {
  return `${source.length}:${source}${id}`;
}
