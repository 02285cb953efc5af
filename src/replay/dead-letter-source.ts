import type { Admin, Kafka } from 'kafkajs';
import { asError, tooManyReaders } from '../engine/stream-reader.js';
import { PartitionFollower } from '../engine/stream-consumer.js';
import { QueryError } from '../errors.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';

export interface DeadLetterSourceOptions {
  kafka: Kafka;
  /** The DLQ topic (ORDO_DLQ_TOPIC). */
  topic: string;
  /** Prefix of the scans' consumer groups: each scan joins `<group>-<8 hex>`, never committed. */
  group: string;
  logger: Logger;
  /** Scans (a consumer each) at once; beyond it 503 too-many-readers. */
  maxScans?: number;
  /** How long one scan may take before it answers 503 (an open transaction holds the end, a broker is slow). */
  timeoutMs?: number;
}

/** Offsets [from, to) of one partition. */
export interface OffsetRange {
  from: bigint;
  to: bigint;
}

/**
 * Reads the DLQ on demand: one record at a partition/offset, or the records of a time
 * range. Each read is a PartitionFollower (the deliver role's catch-up consumer) from given
 * offsets to given ends; its batches report their last offset, transaction markers
 * included, so a range ending in a commit marker is known to be read to its end. Nothing is
 * kept between requests: the DLQ is the only copy (the api role holds no index of it).
 */
export class DeadLetterSource {
  private admin: Admin | undefined;
  private connected: Promise<void> | undefined;
  private readonly scans = new Set<PartitionFollower>();
  private stopped = false;

  constructor(private readonly options: DeadLetterSourceOptions) {}

  private async connect(): Promise<Admin> {
    const admin = (this.admin ??= this.options.kafka.admin());
    this.connected ??= admin.connect().catch((error: unknown) => {
      this.connected = undefined;
      throw error;
    });
    await this.connected;
    return admin;
  }

  /** Per partition the log start and the end (as read_committed readers see it); empty while the topic does not exist. */
  async bounds(): Promise<Map<number, OffsetRange>> {
    const admin = await this.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(this.options.topic);
      return new Map(offsets.map((o) => [o.partition, { from: BigInt(o.low), to: BigInt(o.high) }]));
    } catch (error) {
      if ((error as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return new Map();
      throw error;
    }
  }

  /** Per partition the first offset whose timestamp is at or after `ms` (the end when none is). */
  async offsetsAt(ms: number): Promise<Map<number, bigint>> {
    const admin = await this.connect();
    return new Map((await admin.fetchTopicOffsetsByTimestamp(this.options.topic, ms)).map((o) => [o.partition, BigInt(o.offset)]));
  }

  /** The record at `partition`/`offset`, or undefined when there is none (no such partition, out of range, a transaction marker or an aborted record). */
  async read(partition: number, offset: bigint): Promise<SourceRecord | undefined> {
    const range = (await this.bounds()).get(partition);
    if (range === undefined || offset < range.from || offset >= range.to) return undefined;
    let found: SourceRecord | undefined;
    await this.scan(new Map([[partition, { from: offset, to: offset + 1n }]]), (record) => {
      found = record;
      return false;
    });
    return found;
  }

  /**
   * Hands over every committed record of the ranges, per partition in offset order, until
   * `onRecord` answers false or every range is read. 503 too-many-readers when `maxScans`
   * are running, 503 dead-letters-slow past `timeoutMs`.
   */
  async scan(ranges: ReadonlyMap<number, OffsetRange>, onRecord: (record: SourceRecord) => boolean): Promise<void> {
    const o = this.options;
    const open = new Map([...ranges].filter(([, r]) => r.from < r.to));
    if (open.size === 0 || this.stopped) return;
    if (this.scans.size >= (o.maxScans ?? 4)) throw tooManyReaders();
    const partitions = (await this.bounds()).size;
    let finish: (error?: unknown) => void = () => undefined;
    const done = new Promise<void>((resolve, reject) => (finish = (error?: unknown) => (error === undefined ? resolve() : reject(asError(error)))));
    let stop = false;
    const follower = new PartitionFollower({
      kafka: o.kafka,
      topic: o.topic,
      partitions,
      group: o.group,
      logger: o.logger,
      maxWaitMs: 100,
      positions: () => new Map([...open].map(([p, r]) => [p, r.from])),
      onBatch: (partition, _first, last, records) => {
        const range = open.get(partition);
        if (range === undefined || stop) return;
        for (const record of records) {
          const offset = BigInt(record.offset);
          if (offset < range.from || offset >= range.to) continue;
          range.from = offset + 1n;
          if (!onRecord(record)) {
            stop = true;
            finish();
            return;
          }
        }
        if (last + 1n > range.from) range.from = last + 1n;
        if (range.from >= range.to) open.delete(partition);
        if (open.size === 0) finish();
      },
      onFailure: (error) => finish(new QueryError('dead-letters-unavailable', `reading the dead-letter topic failed: ${(error as Error).message}`, 503, { headers: { 'retry-after': '5' } })),
    });
    this.scans.add(follower);
    const timer = setTimeout(
      () => finish(new QueryError('dead-letters-slow', `reading the dead-letter topic took longer than ${o.timeoutMs ?? 30_000} ms (a transaction still open on it, or a slow broker); retry`, 503, { headers: { 'retry-after': '5' } })),
      o.timeoutMs ?? 30_000,
    );
    try {
      follower.start().catch((error: unknown) => finish(error));
      await done;
    } finally {
      clearTimeout(timer);
      this.scans.delete(follower);
      // Its group is left, not deleted: the broker drops an empty group without offsets (as
      // TopicReader's), and no Delete ACL is needed.
      await follower.stop();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.scans].map((s) => s.stop()));
    if (this.connected) await this.admin?.disconnect().catch(() => undefined);
  }
}
