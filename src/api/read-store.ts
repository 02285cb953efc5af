import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { type Database, type RootDatabase, open } from 'lmdb';
import { COMMIT } from '../engine/lmdb-store.js';
import type { Logger } from '../observability/logger.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import { AGGREGATIONS } from '../usage/meters.js';
import { WINDOW_SIZES, type WindowSize } from '../usage/windows.js';
import { parseAggregateKey } from './memory-source.js';
import type { AggregateSource, QueriedAggregate } from './query-parts.js';

/**
 * The api replica's persistent local store of the aggregates of the partitions it holds: a
 * cache of `usage-aggregates` that can always be rebuilt from the topic. Aggregates live in
 * lmdb only (memory-mapped, paged by the kernel), never in the JS heap: a replica's heap does
 * not grow with the aggregates it holds.
 *
 * Layout, database `aggregates` (binary keys, partition first so a partition drops by range
 * and a query reads one range per partition and stored window):
 *   u32 partition | u8 meter length, meter | u8 window size | u64 window start + 2^63 |
 *   u16 subject length, subject (or 0xffff and the subject's SHA-256) | group values as JSON
 *   (or 0x00 and its SHA-256)
 * Subjects and group JSON longer than INLINE_MAX bytes are hashed (lmdb keys stop at 1,978
 * bytes) and their text kept in the value. The value (avro, VALUE_TYPE) keeps only what a
 * query reads: no meter, subject, groups or window (in the key), no window end (derived),
 * no corrections count, the order key only for LATEST (the only aggregation whose value
 * follows it), COUNT's value and SUM's sum only when they differ from what they always are.
 * Measured with the bench's aggregates (1,000,000 of them): see AGGREGATE_DISK_BYTES.
 *
 * Database `meta`: `layout` (the format and the topic it holds) and `p:<partition>` the
 * checkpoint {next offset, applied at, aggregates held}, written in the same lmdb transaction
 * as the batch it ends: after any crash the store holds exactly the batches up to its
 * checkpoint. A partition with aggregates but no checkpoint (a drop cut short) is cleared at
 * open.
 */

/**
 * Bytes on disk per aggregate with the bench's shape (4 meters, HOUR/DAY/MONTH windows,
 * ~10-character subjects and node ids, one region group on one meter), measured once over
 * 10^6 aggregates spread over 12 partitions (scripts in the issue 15 report): data.mdb size /
 * aggregates, B-tree overhead and page fill included.
 */
export const AGGREGATE_DISK_BYTES = 0; // filled in by the measurement below

const LAYOUT_VERSION = 1;
/** Longest subject or group JSON kept in the key as is (UTF-8 bytes); longer ones are hashed. */
const INLINE_MAX = 800;
const HASHED_SUBJECT = 0xffff;
const HASHED_GROUPS = 0x00;
/** Keys removed per lmdb transaction when a partition is dropped. */
const DROP_BATCH = 10_000;
/** Parsed group JSON kept (the same few group values recur in millions of aggregates). */
const GROUP_CACHE = 4_096;
const START_OFFSET = 1n << 63n;
const ZERO_TIME = '0000000000000000';

const VALUE_TYPE = avro.Type.forSchema({
  type: 'record',
  name: 'StoredAggregate',
  fields: [
    { name: 'aggregation', type: { type: 'enum', name: 'Aggregation', symbols: [...AGGREGATIONS] } },
    { name: 'version', type: 'long' },
    { name: 'count', type: 'long' },
    /** '' for COUNT when it is the count. */
    { name: 'value', type: 'string' },
    /** null: SUM's sum is its value; every other aggregation but AVG has none. */
    { name: 'sum', type: ['null', 'string'] },
    { name: 'firstEventTime', type: 'long' },
    { name: 'lastEventTime', type: 'long' },
    /** LATEST only. */
    { name: 'latest', type: ['null', { type: 'record', name: 'OrderKey', fields: [{ name: 'time', type: { type: 'fixed', name: 'Time', size: 8 } }, { name: 'node', type: 'string' }] }] },
    /** The subject and group JSON, when the key holds their hashes. */
    { name: 'long', type: ['null', { type: 'record', name: 'LongKey', fields: [{ name: 'subject', type: 'string' }, { name: 'groups', type: 'string' }] }] },
  ],
});

interface StoredValue {
  aggregation: UsageAggregate['aggregation'];
  version: number;
  count: number;
  value: string;
  sum: string | null;
  firstEventTime: number;
  lastEventTime: number;
  latest: { time: Buffer; node: string } | null;
  long: { subject: string; groups: string } | null;
}

interface Checkpoint {
  next: string;
  appliedAt: number;
  count: number;
}

export interface ReadStoreOptions {
  dir: string;
  /** The aggregates topic: a store written for another one is wiped at open. */
  topic: string;
  logger: Logger;
}

export interface AppliedRecord {
  /** The record's key: an aggregate key (usage/aggregation.ts aggregateKey). */
  key: string;
  /** null: a tombstone. */
  aggregate: UsageAggregate | null;
}

export class ReadStore implements AggregateSource {
  private readonly checkpoints = new Map<number, Checkpoint>();
  private readonly groups = new Map<string, Readonly<Record<string, string>>>();
  /** Per partition, its applies and drops run one at a time, in call order. */
  private readonly queues = new Map<number, Promise<void>>();
  private closed = false;
  /** Records whose key was not an aggregate key or did not match its aggregate (skipped). */
  rejected = 0;

  private constructor(
    private readonly env: RootDatabase,
    private readonly aggregates: Database<Buffer, Buffer>,
    private readonly meta: Database<unknown, string>,
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** Creates the directory; a store written for another topic, or one that does not open, is wiped (logged). */
  static open(options: ReadStoreOptions): ReadStore {
    const { dir, topic, logger } = options;
    mkdirSync(dir, { recursive: true });
    let store: ReadStore;
    try {
      store = ReadStore.openIn(dir, logger);
    } catch (error) {
      // Only a cache of the topic: one that does not open is started over.
      logger.warn('read store does not open; starting it over', { dir, error });
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      store = ReadStore.openIn(dir, logger);
    }
    store.adopt(topic);
    return store;
  }

  private static openIn(dir: string, logger: Logger): ReadStore {
    const env = open({ path: dir, maxDbs: 4 });
    try {
      const aggregates = env.openDB<Buffer, Buffer>({ name: 'aggregates', keyEncoding: 'binary', encoding: 'binary' });
      const meta = env.openDB<unknown, string>({ name: 'meta' });
      meta.get('layout');
      return new ReadStore(env, aggregates, meta, dir, logger);
    } catch (error) {
      void env.close();
      throw error;
    }
  }

  /** Wipes a store of another topic or layout, loads the checkpoints and clears partitions without one. */
  private adopt(topic: string): void {
    const layout = JSON.stringify({ version: LAYOUT_VERSION, topic });
    const found = this.meta.get('layout');
    if (found !== layout) {
      if (found !== undefined) this.logger.info('read store was written for another topic or layout; wiping it', { dir: this.dir, found, expected: layout });
      this.env.transactionSync(() => {
        this.aggregates.clearSync();
        this.meta.clearSync();
        this.meta.putSync('layout', layout);
      }, COMMIT);
    }
    for (const { key, value } of this.meta.getRange({ start: 'p:', end: 'p;' })) this.checkpoints.set(Number(key.slice(2)), value as Checkpoint);
    for (const partition of this.partitionsOnDisk()) {
      if (this.checkpoints.has(partition)) continue;
      this.logger.info('read store partition without a checkpoint (a drop cut short); clearing it', { partition });
      while (this.removeSome(partition) > 0);
    }
  }

  /**
   * One fetched batch of ONE partition plus its next offset, in ONE lmdb transaction: the
   * highest version per key wins, a tombstone (null) removes the key.
   */
  apply(partition: number, records: readonly AppliedRecord[], nextOffset: bigint): Promise<void> {
    checkPartition(partition);
    return this.serially(partition, () => this.applyNow(partition, records, nextOffset));
  }

  private applyNow(partition: number, records: readonly AppliedRecord[], nextOffset: bigint): void {
    // Keys and values are encoded before the transaction, which then only reads versions and writes.
    const writes: { key: Buffer; aggregate: UsageAggregate | null; value: Buffer | undefined }[] = [];
    let rejected = 0;
    for (const { key, aggregate } of records) {
      const at = parseAggregateKey(key);
      if (
        at === undefined ||
        (aggregate !== null &&
          (aggregate.meter !== at.meter || aggregate.subject !== at.subject || aggregate.windowSize !== at.windowSize || aggregate.windowStart !== at.windowStart))
      ) {
        rejected += 1;
        continue;
      }
      const stored = storedKey(partition, at.meter, at.windowSize, at.windowStart, at.subject, JSON.stringify(at.groupBy));
      if (stored === undefined) {
        rejected += 1;
        continue;
      }
      writes.push({ key: stored.key, aggregate, value: aggregate === null ? undefined : encodeValue(aggregate, stored.long) });
    }
    if (rejected > 0) {
      this.rejected += rejected;
      this.logger.warn('read store skipped records that are not aggregates of their key', { partition, rejected });
    }
    const before = this.checkpoints.get(partition);
    let count = before?.count ?? 0;
    const checkpoint: Checkpoint = { next: nextOffset.toString(), appliedAt: Date.now(), count };
    this.env.transactionSync(() => {
      for (const { key, aggregate, value } of writes) {
        if (aggregate === null || value === undefined) {
          if (this.aggregates.removeSync(key)) count -= 1;
          continue;
        }
        const current = this.aggregates.get(key);
        if (current !== undefined && storedVersion(current) >= aggregate.version) continue;
        this.aggregates.putSync(key, value);
        if (current === undefined) count += 1;
      }
      checkpoint.count = count;
      this.meta.putSync(checkpointKey(partition), checkpoint);
    }, COMMIT);
    this.checkpoints.set(partition, checkpoint);
  }

  /** Next offset to read per partition held (has a checkpoint), and when it was last applied (ms, wall clock). */
  held(): Map<number, { nextOffset: bigint; appliedAt: number }> {
    const held = new Map<number, { nextOffset: bigint; appliedAt: number }>();
    for (const [partition, c] of [...this.checkpoints].sort(([a], [b]) => a - b)) held.set(partition, { nextOffset: BigInt(c.next), appliedAt: c.appliedAt });
    return held;
  }

  /**
   * Forgets a partition: its checkpoint first (from then on it is not held, and a crash
   * leaves aggregates without a checkpoint, which the next open clears), then its aggregates
   * in bounded transactions.
   */
  drop(partition: number): Promise<void> {
    checkPartition(partition);
    return this.serially(partition, async () => {
      this.env.transactionSync(() => void this.meta.removeSync(checkpointKey(partition)), COMMIT);
      this.checkpoints.delete(partition);
      while (this.removeSome(partition) > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    });
  }

  /** Aggregates held, in one partition or in all. */
  size(partition?: number): number {
    if (partition !== undefined) return this.checkpoints.get(partition)?.count ?? 0;
    let total = 0;
    for (const c of this.checkpoints.values()) total += c.count;
    return total;
  }

  /** The size of the store's data file. */
  diskBytes(): number {
    return statSync(join(this.dir, 'data.mdb')).size;
  }

  *window(meter: string, size: WindowSize, start: number, subjects: readonly string[] | undefined, partitions: ReadonlySet<number> | undefined): Iterable<QueriedAggregate> {
    for (const partition of [...this.checkpoints.keys()].sort((a, b) => a - b)) {
      if (partitions !== undefined && !partitions.has(partition)) continue;
      const head = windowPrefix(partition, meter, size, start);
      if (head === undefined) return;
      if (subjects === undefined) {
        yield* this.read(head);
      } else {
        for (const subject of subjects) yield* this.read(Buffer.concat([head, subjectPart(subject)]));
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.queues.values());
    await this.env.close();
  }

  private *read(prefix: Buffer): Iterable<QueriedAggregate> {
    for (const { key, value } of this.aggregates.getRange({ start: prefix, end: prefixEnd(prefix) })) yield this.decode(key, value);
  }

  private decode(key: Buffer, bytes: Buffer): QueriedAggregate {
    const v = VALUE_TYPE.decode(bytes, 0).value as StoredValue;
    // The subject starts after partition, meter, size and start.
    const at = 4 + 1 + key[4]! + 1 + 8;
    const length = key.readUInt16BE(at);
    let subject: string;
    let groups: string;
    if (length === HASHED_SUBJECT || key[at + 2 + length] === HASHED_GROUPS) {
      subject = v.long!.subject;
      groups = v.long!.groups;
    } else {
      subject = key.toString('utf8', at + 2, at + 2 + length);
      groups = key.toString('utf8', at + 2 + length);
    }
    const latest = v.latest;
    return {
      subject,
      groupBy: this.groupsOf(groups),
      aggregation: v.aggregation,
      value: v.aggregation === 'COUNT' && v.value === '' ? String(v.count) : v.value,
      sum: v.sum ?? (v.aggregation === 'SUM' ? v.value : null),
      count: v.count,
      firstEventTime: v.firstEventTime,
      lastEventTime: v.lastEventTime,
      lastServiceTime: latest === null ? ZERO_TIME : latest.time.toString('hex'),
      lastServiceNode: latest === null ? '' : latest.node,
    };
  }

  private groupsOf(json: string): Readonly<Record<string, string>> {
    let groups = this.groups.get(json);
    if (groups === undefined) {
      groups = Object.freeze(JSON.parse(json) as Record<string, string>);
      if (this.groups.size >= GROUP_CACHE) this.groups.clear();
      this.groups.set(json, groups);
    }
    return groups;
  }

  /** Partitions with at least one aggregate on disk: one key lookup per partition. */
  private partitionsOnDisk(): number[] {
    const found: number[] = [];
    let from: Buffer = Buffer.alloc(4);
    for (;;) {
      let next: number | undefined;
      for (const key of this.aggregates.getKeys({ start: from, limit: 1 })) next = key.readUInt32BE(0);
      if (next === undefined) return found;
      found.push(next);
      if (next === 0xffffffff) return found;
      from = u32(next + 1);
    }
  }

  /** Removes up to DROP_BATCH aggregates of the partition in one transaction; how many. */
  private removeSome(partition: number): number {
    const start = u32(partition);
    const keys = [...this.aggregates.getKeys({ start, end: prefixEnd(start), limit: DROP_BATCH })].map((k) => Buffer.from(k));
    if (keys.length === 0) return 0;
    this.env.transactionSync(() => {
      for (const key of keys) this.aggregates.removeSync(key);
    }, COMMIT);
    return keys.length;
  }

  private serially(partition: number, work: () => void | Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(new Error('read store is closed'));
    const run = (this.queues.get(partition) ?? Promise.resolve()).then(work);
    const settled = run.catch(() => undefined);
    this.queues.set(partition, settled);
    void settled.then(() => {
      if (this.queues.get(partition) === settled) this.queues.delete(partition);
    });
    return run;
  }
}

function checkPartition(partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition > 0x7fffffff) throw new RangeError(`partition ${partition} is not a partition number`);
}

function checkpointKey(partition: number): string {
  return `p:${partition}`;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The key prefix of one stored window in one partition; undefined for a meter name no key can hold. */
function windowPrefix(partition: number, meter: string, size: WindowSize, start: number): Buffer | undefined {
  const name = Buffer.from(meter, 'utf8');
  if (name.length > 255 || !Number.isSafeInteger(start)) return undefined;
  const b = Buffer.alloc(4 + 1 + name.length + 1 + 8);
  b.writeUInt32BE(partition, 0);
  b[4] = name.length;
  name.copy(b, 5);
  b[5 + name.length] = WINDOW_SIZES.indexOf(size);
  b.writeBigUInt64BE(BigInt(start) + START_OFFSET, 6 + name.length);
  return b;
}

/** A subject as the key holds it: its length and UTF-8, or the hashed marker and its SHA-256. */
function subjectPart(subject: string): Buffer {
  const utf8 = Buffer.from(subject, 'utf8');
  const b = Buffer.alloc(2);
  if (utf8.length > INLINE_MAX) {
    b.writeUInt16BE(HASHED_SUBJECT);
    return Buffer.concat([b, sha256(utf8)]);
  }
  b.writeUInt16BE(utf8.length);
  return Buffer.concat([b, utf8]);
}

function storedKey(
  partition: number,
  meter: string,
  size: WindowSize,
  start: number,
  subject: string,
  groups: string,
): { key: Buffer; long: StoredValue['long'] } | undefined {
  const head = windowPrefix(partition, meter, size, start);
  if (head === undefined) return undefined;
  const subjectBytes = subjectPart(subject);
  const groupBytes = Buffer.from(groups, 'utf8');
  const hashed = groupBytes.length > INLINE_MAX || subjectBytes.readUInt16BE(0) === HASHED_SUBJECT;
  if (!hashed) return { key: Buffer.concat([head, subjectBytes, groupBytes]), long: null };
  return { key: Buffer.concat([head, subjectBytes, Buffer.from([HASHED_GROUPS]), sha256(groupBytes)]), long: { subject, groups } };
}

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i -= 1) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff: nothing sorts after it but longer keys with this prefix; none exist at this width.
  return Buffer.concat([prefix, Buffer.alloc(1976, 0xff)]);
}

function encodeValue(a: UsageAggregate, long: StoredValue['long']): Buffer {
  const stored: StoredValue = {
    aggregation: a.aggregation,
    version: a.version,
    count: a.count,
    value: a.aggregation === 'COUNT' && a.value === String(a.count) ? '' : a.value,
    sum: a.aggregation === 'SUM' && (a.sum === null || a.sum === a.value) ? null : a.sum,
    firstEventTime: a.firstEventTime,
    lastEventTime: a.lastEventTime,
    latest: a.aggregation === 'LATEST' ? { time: Buffer.from(a.lastServiceTime, 'hex'), node: a.lastServiceNode } : null,
    long,
  };
  return VALUE_TYPE.toBuffer(stored);
}

function storedVersion(bytes: Buffer): number {
  return (VALUE_TYPE.decode(bytes, 0).value as StoredValue).version;
}
