import type { ChangelogEntry, KeyValueStore, StoreCodec } from '../model/store.js';

export class InMemoryStore<V> implements KeyValueStore<V> {
  private readonly committed = new Map<string, V>();
  private readonly staged = new Map<string, V | typeof DELETED>();

  constructor(
    readonly name: string,
    private readonly codec: StoreCodec<V>,
  ) {}

  get(key: string): V | undefined {
    const staged = this.staged.get(key);
    if (staged === DELETED) return undefined;
    return staged !== undefined ? staged : this.committed.get(key);
  }

  put(key: string, value: V): void {
    this.staged.set(key, value);
  }

  delete(key: string): void {
    this.staged.set(key, DELETED);
  }

  entries(): IterableIterator<[string, V]> {
    return this.committed.entries();
  }

  get size(): number {
    return this.committed.size;
  }

  /** Staged writes as changelog entries (one per key: the last write wins). */
  changes(): ChangelogEntry[] {
    const out: ChangelogEntry[] = [];
    for (const [key, value] of this.staged) out.push({ key, value: value === DELETED ? null : this.codec.encode(value) });
    return out;
  }

  commit(): void {
    for (const [key, value] of this.staged) {
      if (value === DELETED) this.committed.delete(key);
      else this.committed.set(key, value);
    }
    this.staged.clear();
  }

  rollback(): void {
    this.staged.clear();
  }

  /** Applies one changelog record during restore. */
  restore(key: string, value: Buffer | null): void {
    if (value === null) this.committed.delete(key);
    else this.committed.set(key, this.codec.decode(value));
  }
}

const DELETED: unique symbol = Symbol('deleted');
