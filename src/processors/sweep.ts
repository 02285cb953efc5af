import type { KeyValueStore } from '../model/store.js';

/** Deletions one batch carries at most, so an expiry sweep never makes a giant transaction. */
export const MAX_EXPIRED_PER_BATCH = 5_000;

/**
 * Expires store entries by scanning the committed state at most once every `everyMs` of
 * stamp time (not wall-clock timers: processors stay pure). A sweep that hits the
 * per-batch cap runs again with the next batch until it finishes.
 */
export class Sweeper<V> {
  private nextAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly everyMs: number,
    private readonly isExpired: (key: string, value: V, now: number) => boolean,
    private readonly maxPerBatch = MAX_EXPIRED_PER_BATCH,
  ) {}

  /** Stages deletes of expired entries; returns how many. */
  run(store: KeyValueStore<V>, now: number): number {
    if (now < this.nextAt) return 0;
    let deleted = 0;
    for (const [key, committed] of store.entries()) {
      if (!this.isExpired(key, committed, now)) continue;
      // An entry rewritten in this batch (staged) counts as its new value. (Compared by
      // value, not identity: a persistent store decodes a fresh object per read.)
      const current = store.get(key);
      if (current === undefined || (current !== committed && !this.isExpired(key, current, now))) continue;
      store.delete(key);
      if (++deleted >= this.maxPerBatch) return deleted; // not finished: sweep again next batch
    }
    this.nextAt = now + this.everyMs;
    return deleted;
  }
}
