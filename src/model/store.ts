/** Encodes a store's values for its changelog. */
export interface StoreCodec<V> {
  encode(value: V): Buffer;
  decode(bytes: Buffer): V;
}

export const stringCodec: StoreCodec<string> = {
  encode: (v) => Buffer.from(v, 'utf8'),
  decode: (b) => b.toString('utf8'),
};

/** Numbers as decimal text (timestamps and the like). */
export const numberCodec: StoreCodec<number> = {
  encode: (v) => Buffer.from(String(v), 'utf8'),
  decode: (b) => Number(b.toString('utf8')),
};

/** One changelog entry: a key and its new encoded value, or null for a delete (tombstone). */
export interface ChangelogEntry {
  key: string;
  value: Buffer | null;
}

/**
 * A task-local key-value store. Writes are staged until the batch's transaction commits
 * (`commit`) or aborts (`rollback`), so a failed batch never leaks into state. Behind this
 * interface the state lives in memory (InMemoryStore) or on disk (LmdbStore, engine/lmdb-store.ts).
 */
export interface KeyValueStore<V> {
  readonly name: string;
  get(key: string): V | undefined;
  put(key: string, value: V): void;
  delete(key: string): void;
  /** Committed entries (staged writes excluded): for sweeps such as expiry. */
  entries(): IterableIterator<[string, V]>;
  readonly size: number;
}
