import { accessSync, constants, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { type Database, type RootDatabase, TransactionFlags, open } from 'lmdb';
import type { Logger } from '../observability/logger.js';
import { COMMIT, LmdbStore } from './lmdb-store.js';
import { InMemoryStore, type TaskStore } from './state-store.js';
import { type StoreCodec } from '../model/store.js';

/** Where one store restores from: a partition of its changelog (or of the output topic it is rebuilt from). */
export interface RestoreSource {
  store: string;
  topic: string;
  partition: number;
}

/** How a task's state came back: what `begin` decided. */
export type RestorePlan =
  | { kind: 'full'; why: 'in-memory' | 'no checkpoint' | 'corrupt checkpoint' | 'checkpoint of other stores or sources' | 'offsets out of range' }
  | { kind: 'tail'; from: ReadonlyMap<string, string> };

/**
 * One task's stores and their persistence. The protocol (Kafka Streams' under exactly-once):
 * `begin` reads the checkpoint and deletes it durably before anything is processed, so a
 * crash at any later point leaves no checkpoint and the next start restores fully; only a
 * clean close writes one again (`checkpoint`).
 */
export interface TaskStateStores {
  readonly stores: ReadonlyMap<string, TaskStore<unknown>>;
  /** Reads and deletes the checkpoint; a full plan has wiped every store. */
  begin(sources: readonly RestoreSource[]): RestorePlan;
  /** Drops every store's entries (a tail restore turned out impossible; a full one follows). */
  wipe(): void;
  /** Makes every store's staged writes state, in one write (one lmdb transaction). */
  commit(): void;
  /** Whether a checkpoint is worth its end-offset fetch (false: in memory, nothing survives). */
  readonly persistent: boolean;
  /** After the last commit of a clean close: the sources' end offsets, written atomically with the state. */
  checkpoint(ends: readonly (RestoreSource & { offset: string })[]): Promise<void>;
  close(): Promise<void>;
}

export interface TaskStateSpec {
  groupId: string;
  topic: string;
  partition: number;
  stores: readonly { name: string; codec: StoreCodec<unknown> }[];
}

/** `memory` (ORDO_STATE_DIR unset) or `lmdb` (a directory per task under ORDO_STATE_DIR). */
export interface StateBackend {
  open(spec: TaskStateSpec): Promise<TaskStateStores>;
}

export const memoryBackend: StateBackend = {
  open(spec) {
    const stores = new Map<string, InMemoryStore<unknown>>(spec.stores.map((s) => [s.name, new InMemoryStore(s.name, s.codec)]));
    return Promise.resolve({
      stores,
      persistent: false,
      begin: () => ({ kind: 'full', why: 'in-memory' }),
      wipe: () => wipeAll(stores.values()),
      commit: () => {
        for (const store of stores.values()) store.commit();
      },
      checkpoint: () => Promise.resolve(),
      close: () => Promise.resolve(),
    });
  },
};

function wipeAll(stores: Iterable<TaskStore<unknown>>): void {
  for (const store of stores) store.wipe();
}

/** The backend ORDO_STATE_DIR asks for; a directory that cannot be made or written is a config error (exit 78). */
export function stateBackend(stateDir: string | undefined, logger: Logger): StateBackend {
  if (stateDir === undefined) return memoryBackend;
  const dir = resolve(stateDir);
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.R_OK | constants.W_OK);
  } catch (error) {
    throw new ConfigError('ORDO_STATE_DIR', `${dir} cannot be used for task state: ${(error as Error).message}`);
  }
  return new LmdbBackend(dir, logger);
}

export const CHECKPOINT_VERSION = 1;
const CHECKPOINT_DB = 'ordo:checkpoint';
const CHECKPOINT_KEY = 'checkpoint';
const STORE_DB_PREFIX = 'store:';

interface Checkpoint {
  version: number;
  stores: string[];
  sources: (RestoreSource & { offset: string })[];
}

/**
 * Persistent task state: per task an lmdb environment at
 * `<dir>/<groupId>/<topic>-<partition>/` with one named database per store and one for the
 * checkpoint. A task of the same partition opened again in this process waits for the
 * previous one to close (a revoked task may still be closing when its partition comes back).
 */
export class LmdbBackend implements StateBackend {
  private readonly open_ = new Map<string, Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** The task's lmdb directory. */
  path(spec: Pick<TaskStateSpec, 'groupId' | 'topic' | 'partition'>): string {
    return join(this.dir, safeName(spec.groupId), `${safeName(spec.topic)}-${spec.partition}`);
  }

  async open(spec: TaskStateSpec): Promise<TaskStateStores> {
    const path = this.path(spec);
    while (this.open_.has(path)) await this.open_.get(path);
    let closed!: () => void;
    this.open_.set(path, new Promise<void>((resolve) => (closed = resolve)));
    try {
      mkdirSync(path, { recursive: true });
      const env = open({ path, maxDbs: 2 * spec.stores.length + 8 });
      this.logger.debug('task state opened', { path });
      return new LmdbTaskState(env, spec, () => {
        this.open_.delete(path);
        closed();
      });
    } catch (error) {
      this.open_.delete(path);
      closed();
      throw error;
    }
  }
}

class LmdbTaskState implements TaskStateStores {
  readonly persistent = true;
  readonly stores: Map<string, LmdbStore<unknown>>;
  private readonly checkpoints: Database<string, string>;

  constructor(
    private readonly env: RootDatabase,
    spec: TaskStateSpec,
    private readonly onClose: () => void,
  ) {
    this.checkpoints = env.openDB<string, string>(CHECKPOINT_DB, { encoding: 'string' });
    this.stores = new Map(
      spec.stores.map((s) => [s.name, new LmdbStore(s.name, s.codec, env.openDB<Buffer, Buffer>(`${STORE_DB_PREFIX}${s.name}`, { encoding: 'binary', keyEncoding: 'binary' }))]),
    );
  }

  begin(sources: readonly RestoreSource[]): RestorePlan {
    const stored = this.checkpoints.get(CHECKPOINT_KEY);
    // Deleted and flushed before anything is processed: from here on a crash leaves no checkpoint.
    if (stored !== undefined) this.checkpoints.transactionSync(() => this.checkpoints.removeSync(CHECKPOINT_KEY));
    const plan = planFrom(stored, [...this.stores.keys()], sources);
    if (plan.kind === 'full') this.wipe();
    return plan;
  }

  wipe(): void {
    this.env.transactionSync(() => wipeAll(this.stores.values()));
  }

  commit(): void {
    this.env.transactionSync(() => {
      for (const store of this.stores.values()) store.commit();
    }, COMMIT | TransactionFlags.ABORTABLE); // a store failing aborts every store's writes
  }

  async checkpoint(ends: readonly (RestoreSource & { offset: string })[]): Promise<void> {
    const checkpoint: Checkpoint = { version: CHECKPOINT_VERSION, stores: [...this.stores.keys()].sort(), sources: [...ends] };
    // Any restored record not yet written goes in the same (flushed) transaction as the checkpoint.
    this.env.transactionSync(() => {
      for (const store of this.stores.values()) store.settle();
      this.checkpoints.putSync(CHECKPOINT_KEY, JSON.stringify(checkpoint));
    });
    await this.env.flushed;
  }

  async close(): Promise<void> {
    try {
      for (const store of this.stores.values()) store.settle();
      await this.env.close();
    } finally {
      this.onClose();
    }
  }
}

/** Pure: what a stored checkpoint allows, given the task's stores and restore sources now. */
export function planFrom(stored: string | undefined, stores: readonly string[], sources: readonly RestoreSource[]): RestorePlan {
  if (stored === undefined) return { kind: 'full', why: 'no checkpoint' };
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(JSON.parse(stored));
  } catch {
    return { kind: 'full', why: 'corrupt checkpoint' };
  }
  const sameStores = sameList(checkpoint.stores, [...stores].sort());
  const sourceKey = (s: RestoreSource): string => JSON.stringify([s.store, s.topic, s.partition]);
  const sameSources = sameList(checkpoint.sources.map(sourceKey).sort(), sources.map(sourceKey).sort());
  if (!sameStores || !sameSources) return { kind: 'full', why: 'checkpoint of other stores or sources' };
  return { kind: 'tail', from: new Map(checkpoint.sources.map((s) => [s.store, s.offset])) };
}

function parseCheckpoint(value: unknown): Checkpoint {
  const c = value as Partial<Checkpoint> | null;
  const validSource = (s: Partial<RestoreSource & { offset: string }> | null): boolean =>
    s !== null && typeof s === 'object' && typeof s.store === 'string' && typeof s.topic === 'string' && Number.isInteger(s.partition) && typeof s.offset === 'string' && /^\d+$/.test(s.offset);
  if (
    c === null || typeof c !== 'object' || c.version !== CHECKPOINT_VERSION ||
    !Array.isArray(c.stores) || !c.stores.every((s) => typeof s === 'string') ||
    !Array.isArray(c.sources) || !c.sources.every(validSource)
  ) {
    throw new Error('not a checkpoint of this version');
  }
  return c as Checkpoint;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A Kafka name as one path segment ('.' and '..' are valid group ids, '/' is not a topic character but is a group id one). */
function safeName(name: string): string {
  const encoded = encodeURIComponent(name);
  return /^\.+$/.test(encoded) ? encoded.replace(/\./g, '%2E') : encoded;
}
