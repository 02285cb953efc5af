import type { ChangelogEntry, KeyValueStore, StoreCodec } from '../model/store.js';

/**
 * The writes of one batch, staged until its transaction commits: what `get` sees first,
 * what `changes()` sends to the changelog, what `commit` applies. Shared by every store
 * kind, so each only says how it reads and writes its committed state.
 */
export class StagedWrites<V> {
  private readonly writes = new Map<string, V | typeof DELETED>();

  /** The staged value (null: staged delete), or `committed(key)` when the key has no staged write. */
  get(key: string, committed: (key: string) => V | undefined): V | undefined {
    const staged = this.writes.get(key);
    if (staged === DELETED) return undefined;
    return staged !== undefined ? staged : committed(key);
  }

  put(key: string, value: V): void {
    this.writes.set(key, value);
  }

  delete(key: string): void {
    this.writes.set(key, DELETED);
  }

  get size(): number {
    return this.writes.size;
  }

  /** Staged writes as changelog entries (one per key: the last write wins). */
  changes(codec: StoreCodec<V>): ChangelogEntry[] {
    const out: ChangelogEntry[] = [];
    for (const [key, value] of this.writes) out.push({ key, value: value === DELETED ? null : codec.encode(value) });
    return out;
  }

  /** Hands every staged write to `apply` (undefined: delete), then forgets them. */
  drain(apply: (key: string, value: V | undefined) => void): void {
    for (const [key, value] of this.writes) apply(key, value === DELETED ? undefined : value);
    this.writes.clear();
  }

  clear(): void {
    this.writes.clear();
  }
}

/** What the engine does with a task's store around a batch and at restore (Task). */
export interface TaskStore<V> extends KeyValueStore<V> {
  /** Staged writes as changelog entries (one per key: the last write wins). */
  changes(): ChangelogEntry[];
  /** The batch's transaction committed: staged writes become state. */
  commit(): void;
  /** The batch's transaction aborted (or was never made): staged writes are dropped. */
  rollback(): void;
  /** Applies one changelog record during restore. */
  restore(key: string, value: Buffer | null): void;
  /** Drops every entry, committed and staged (a restore from the start follows). */
  wipe(): void;
}

export class InMemoryStore<V> implements TaskStore<V> {
  private readonly committed = new Map<string, V>();
  private readonly staged = new StagedWrites<V>();

  constructor(
    readonly name: string,
    private readonly codec: StoreCodec<V>,
  ) {}

  get(key: string): V | undefined {
    return this.staged.get(key, (k) => this.committed.get(k));
  }

  put(key: string, value: V): void {
    this.staged.put(key, value);
  }

  delete(key: string): void {
    this.staged.delete(key);
  }

  entries(): IterableIterator<[string, V]> {
    return this.committed.entries();
  }

  get size(): number {
    return this.committed.size;
  }

  changes(): ChangelogEntry[] {
    return this.staged.changes(this.codec);
  }

  commit(): void {
    this.staged.drain((key, value) => {
      if (value === undefined) this.committed.delete(key);
      else this.committed.set(key, value);
    });
  }

  rollback(): void {
    this.staged.clear();
  }

  restore(key: string, value: Buffer | null): void {
    if (value === null) this.committed.delete(key);
    else this.committed.set(key, this.codec.decode(value));
  }

  wipe(): void {
    this.committed.clear();
    this.staged.clear();
  }
}

const DELETED: unique symbol = Symbol('deleted');
