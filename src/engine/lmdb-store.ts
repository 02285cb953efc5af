import { createHash } from 'node:crypto';
import { type Database, TransactionFlags } from 'lmdb';
import { type ChangelogEntry, type StoreCodec } from '../model/store.js';
import { StagedWrites, type TaskStore } from './state-store.js';

/**
 * lmdb-js accepts keys of 1 to 1,978 bytes; others (and any that start with the marker,
 * so nothing collides) are stored under the marker plus their SHA-256, with the
 * real key inside the value.
 */
const MAX_KEY_BYTES = 1_900;
const HASHED = Buffer.from([0, 0x23]);

/** Decoded committed values kept in memory (the hot keys of a batch): decoding is the cost of a read. */
const DEFAULT_CACHE_ENTRIES = 10_000;
/** Restored records written per lmdb transaction. */
const RESTORE_WRITES_PER_TRANSACTION = 20_000;

/**
 * Committed, visible to every reader, flushed to disk by lmdb after returning. A write lost
 * to a machine crash loses every later one too (lmdb commits in order), and the state
 * directory's checkpoint protocol (state-dir.ts) never trusts state a crash may have cut.
 */
export const COMMIT = TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH;

/**
 * A task store whose committed state lives in one named lmdb database, with the contract
 * of InMemoryStore: writes staged until `commit` (one synchronous lmdb transaction) or
 * `rollback`; `get` sees the staged writes; `entries`/`size` the committed state only.
 * Values are stored as their changelog bytes (codec-encoded), so a restore copies bytes.
 */
export class LmdbStore<V> implements TaskStore<V> {
  private readonly staged = new StagedWrites<V>();
  private readonly cache = new Map<string, V>();
  /** Restored records not yet written: reads see them, anything else writes them first. */
  private readonly restoring = new Map<string, Buffer | null>();

  constructor(
    readonly name: string,
    private readonly codec: StoreCodec<V>,
    private readonly db: Database<Buffer, Buffer>,
    private readonly cacheEntries = DEFAULT_CACHE_ENTRIES,
  ) {}

  get(key: string): V | undefined {
    return this.staged.get(key, (k) => this.committed(k));
  }

  put(key: string, value: V): void {
    this.staged.put(key, value);
  }

  delete(key: string): void {
    this.staged.delete(key);
  }

  *entries(): IterableIterator<[string, V]> {
    this.settle();
    for (const { key, value } of this.db.getRange({ snapshot: true })) {
      const entry = fromStored(key, value);
      yield [entry.key, this.cache.get(entry.key) ?? this.codec.decode(entry.value)];
    }
  }

  get size(): number {
    this.settle();
    return (this.db.getStats() as { entryCount: number }).entryCount; // O(1), unlike getCount()
  }

  changes(): ChangelogEntry[] {
    return this.staged.changes(this.codec);
  }

  /** One lmdb transaction (or part of the caller's: LmdbTaskState commits every store in one). */
  commit(): void {
    this.settle();
    if (this.staged.size === 0) return;
    // Encoded first: the transaction itself only writes.
    const writes: { key: string; value: V | undefined; bytes: Buffer | undefined }[] = [];
    this.staged.drain((key, value) => writes.push({ key, value, bytes: value === undefined ? undefined : this.codec.encode(value) }));
    this.db.transactionSync(() => {
      for (const { key, bytes } of writes) {
        if (bytes === undefined) this.db.removeSync(storedKey(key));
        else this.db.putSync(storedKey(key), storedValue(key, bytes));
      }
    }, COMMIT);
    for (const { key, value } of writes) {
      if (value === undefined) this.cache.delete(key);
      else this.remember(key, value);
    }
  }

  rollback(): void {
    this.staged.clear();
  }

  restore(key: string, value: Buffer | null): void {
    this.cache.delete(key);
    this.restoring.delete(key); // the newest record last, so the flush keeps it
    this.restoring.set(key, value);
    if (this.restoring.size >= RESTORE_WRITES_PER_TRANSACTION) this.settle();
  }

  /** Drops every entry (a restore from the start follows). */
  wipe(): void {
    this.staged.clear();
    this.restoring.clear();
    this.cache.clear();
    this.db.clearSync();
  }

  private committed(key: string): V | undefined {
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    if (this.restoring.has(key)) {
      const bytes = this.restoring.get(key);
      return bytes == null ? undefined : this.codec.decode(bytes);
    }
    const stored = this.db.get(storedKey(key));
    if (stored === undefined) return undefined;
    const value = this.codec.decode(fromStored(storedKey(key), stored).value);
    this.remember(key, value);
    return value;
  }

  private remember(key: string, value: V): void {
    if (this.cacheEntries <= 0) return;
    this.cache.delete(key);
    this.cache.set(key, value);
    if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
  }

  /** Writes the restored records still held in memory (reads see them either way). */
  settle(): void {
    if (this.restoring.size === 0) return;
    this.db.transactionSync(() => {
      for (const [key, value] of this.restoring) {
        if (value === null) this.db.removeSync(storedKey(key));
        else this.db.putSync(storedKey(key), storedValue(key, value));
      }
    }, COMMIT);
    this.restoring.clear();
  }
}

function isHashed(utf8: Buffer): boolean {
  return utf8.length === 0 || utf8.length > MAX_KEY_BYTES || (utf8.length >= HASHED.length && utf8[0] === HASHED[0] && utf8[1] === HASHED[1]);
}

function storedKey(key: string): Buffer {
  const utf8 = Buffer.from(key, 'utf8');
  return isHashed(utf8) ? Buffer.concat([HASHED, createHash('sha256').update(utf8).digest()]) : utf8;
}

/** A hashed key's value: 4-byte length of the real key, the key, then the value bytes. */
function storedValue(key: string, value: Buffer): Buffer {
  const utf8 = Buffer.from(key, 'utf8');
  if (!isHashed(utf8)) return value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(utf8.length);
  return Buffer.concat([length, utf8, value]);
}

function fromStored(key: Buffer, value: Buffer): { key: string; value: Buffer } {
  if (!(key.length === HASHED.length + 32 && key[0] === HASHED[0] && key[1] === HASHED[1])) return { key: key.toString('utf8'), value };
  const length = value.readUInt32BE(0);
  return { key: value.subarray(4, 4 + length).toString('utf8'), value: value.subarray(4 + length) };
}
