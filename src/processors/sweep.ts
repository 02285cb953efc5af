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
    for (const [key, value] of store.entries()) {
      // An entry rewritten in this batch (staged) is not the one that expired.
      if (!this.isExpired(key, value, now) || store.get(key) !== value) continue;
      store.delete(key);
      if (++deleted >= this.maxPerBatch) return deleted; // not finished: sweep again next batch
    }
    this.nextAt = now + this.everyMs;
    return deleted;
  }
}
