import type { Admin, Batch, Kafka } from 'kafkajs';
import type { ConsumerLagSample, ConsumerLagSource, OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';

/**
 * Consumer lag per owned input partition, in records and in seconds, computed at scrape
 * time from the broker's offsets (refreshed on an interval) and the worker's own exact
 * knowledge of what it fetched and committed. docs/consumer-lag.md explains the numbers.
 *
 * PartitionLag is the pure part (no Kafka, no timers: every time is passed in);
 * ConsumerLag is the Kafka-facing part the worker feeds through a few hooks.
 */

/** A stretch of the log a read_committed fetch returned: every offset in it is accounted for. */
export interface FetchedRange {
  /** First offset covered (the fetch offset). */
  from: bigint;
  /** One past the last offset covered; transaction markers and aborted records included. */
  to: bigint;
  /** The committed data records in [from, to), ascending: what read_committed hands out. */
  records: readonly { offset: bigint; timestamp: number }[];
}

/** One broker observation of a partition (ListOffsets read_committed + OffsetFetch). */
export interface BrokerOffsets {
  /** Last stable offset: the end a read_committed consumer can reach. */
  end: bigint;
  /** Log start offset: nothing below it can be consumed any more. */
  start: bigint;
  /** The group's committed offset (next offset to read); undefined when it has none. */
  committed: bigint | undefined;
}

export interface LagValue {
  /** Committed data records at or after the committed offset (unfetched offsets count as records). */
  records: number;
  /** Age of the oldest record not yet committed; 0 when there is none. */
  seconds: number;
  /** The age comes from that record's own timestamp (false: estimated in a gap, see estimateHead). */
  exact: boolean;
}

/** "By `firstAt` the log was visible up to `end`"; `lastAt`: the last time it was seen to end exactly there. */
interface Sighting {
  end: bigint;
  firstAt: number;
  lastAt: number | undefined;
}

/** Sightings kept ahead of the committed offset; beyond this every other one is dropped (bounds get looser, never wrong). */
const MAX_SIGHTINGS = 64;

/**
 * What one consumer knows about the lag of one partition. Offsets only move forward: a
 * commit or observation below what is known already changes nothing.
 */
export class PartitionLag {
  private committed: bigint | undefined;
  private logStart: bigint | undefined;
  private brokerEnd: bigint | undefined;
  /** The fetched range at or after the committed offset: offsets[head..] are the records not committed yet. */
  private range: { from: bigint; to: bigint; offsets: bigint[]; timestamps: number[]; head: number } | undefined;
  /** Timestamp of the last record below the committed offset, when it was fetched here. */
  private lastCommittedTimestamp: number | undefined;
  /** Ascending by end and by firstAt; only those ahead of the committed offset (plus caughtUpUntil). */
  private sightings: Sighting[] = [];
  /** Latest time the visible end was seen at or below the committed offset. */
  private caughtUpUntil: number | undefined;

  /** True once the broker was asked at least once: only then is the lag known. */
  get observed(): boolean {
    return this.brokerEnd !== undefined;
  }

  observeBroker(offsets: BrokerOffsets, at: number): void {
    this.brokerEnd = offsets.end;
    if (this.logStart === undefined || offsets.start > this.logStart) this.logStart = offsets.start;
    if (offsets.committed !== undefined) this.raiseCommitted(offsets.committed);
    this.sight(offsets.end, at, true);
    this.prune();
  }

  observeFetch(fetched: FetchedRange, at: number): void {
    if (fetched.to <= fetched.from) return;
    const current = this.range;
    const offsets = fetched.records.map((r) => r.offset);
    const timestamps = fetched.records.map((r) => r.timestamp);
    if (current && fetched.from >= current.from && fetched.from <= current.to) {
      // Contiguous with (or overlapping) what is known: the log is immutable, so extend it.
      if (fetched.to > current.to) {
        const first = offsets.findIndex((o) => o >= current.to);
        if (first >= 0) {
          current.offsets.push(...offsets.slice(first));
          current.timestamps.push(...timestamps.slice(first));
        }
        current.to = fetched.to;
      }
    } else if (current && fetched.from < current.from && fetched.to >= current.from) {
      const tail = current.offsets.slice(current.head).findIndex((o) => o >= fetched.to);
      if (tail >= 0) {
        offsets.push(...current.offsets.slice(current.head + tail));
        timestamps.push(...current.timestamps.slice(current.head + tail));
      }
      this.range = { from: fetched.from, to: current.to > fetched.to ? current.to : fetched.to, offsets, timestamps, head: 0 };
    } else {
      // Disjoint (e.g. the consumer was moved): the newest fetch is where the consumer is.
      this.range = { from: fetched.from, to: fetched.to, offsets, timestamps, head: 0 };
    }
    this.sight(fetched.to, at, false);
    this.prune();
  }

  /** The worker committed (or restored) `nextOffset` as the group's position. */
  commit(nextOffset: bigint): void {
    this.raiseCommitted(nextOffset);
    this.prune();
  }

  /** Undefined until both the broker and a position are known. */
  sample(now: number): LagValue | undefined {
    const c = this.position();
    if (c === undefined || this.brokerEnd === undefined) return undefined;
    const range = this.range;
    let end = this.brokerEnd;
    if (range && range.to > end) end = range.to;
    let unknown: bigint;
    let known = 0;
    if (!range || range.to <= c) {
      unknown = end > c ? end - c : 0n;
    } else {
      unknown = (range.from > c ? range.from - c : 0n) + (end - range.to);
      known = range.offsets.length - range.head;
    }
    const records = Number(unknown) + known;
    if (records === 0) return { records: 0, seconds: 0, exact: true };
    if (range && range.from <= c && known > 0) {
      // The record at the committed offset is in hand: its own timestamp, exactly.
      return { records, seconds: age(now, range.timestamps[range.head]!), exact: true };
    }
    return { records, seconds: age(now, this.estimateHead(c)), exact: false };
  }

  /**
   * The timestamp of the record at `c` when it has not been fetched yet: the latest one
   * consistent with what is known (so the largest age), i.e. the later of the last
   * committed record's timestamp (timestamps grow along a partition) and the last time the
   * log was seen to end at or before `c` (the record was not visible then), but never later
   * than when the log was first seen past `c` or the first fetched record after the gap.
   */
  private estimateHead(c: bigint): number {
    let latest: number | undefined;
    for (const candidate of [this.lastCommittedTimestamp, this.caughtUpUntil]) {
      if (candidate !== undefined && (latest === undefined || candidate > latest)) latest = candidate;
    }
    let earliest = this.sightings.find((s) => s.end > c)?.firstAt;
    const range = this.range;
    if (range && range.from > c && range.head < range.offsets.length) {
      const first = range.timestamps[range.head]!;
      if (earliest === undefined || first < earliest) earliest = first;
    }
    if (latest === undefined) return earliest ?? Number.POSITIVE_INFINITY;
    return earliest !== undefined && earliest < latest ? earliest : latest;
  }

  /** Next offset to consume: the committed one, or the log start when none (the worker reads from the beginning). */
  private position(): bigint | undefined {
    const c = this.committed ?? this.logStart;
    if (c === undefined) return undefined;
    return this.logStart !== undefined && this.logStart > c ? this.logStart : c;
  }

  private raiseCommitted(offset: bigint): void {
    if (this.committed === undefined || offset > this.committed) this.committed = offset;
  }

  private sight(end: bigint, at: number, exact: boolean): void {
    const last = this.sightings[this.sightings.length - 1];
    if (!last || end > last.end) {
      this.sightings.push({ end, firstAt: at, lastAt: exact ? at : undefined });
    } else if (end === last.end && exact) {
      last.lastAt = at;
    }
    if (this.sightings.length > MAX_SIGHTINGS) {
      const n = this.sightings.length;
      this.sightings = this.sightings.filter((_, i) => i === 0 || i === n - 1 || i % 2 === 0);
    }
  }

  /** Drops what lies below the position: it never matters again (the position only grows). */
  private prune(): void {
    const c = this.position();
    if (c === undefined) return;
    const range = this.range;
    if (range) {
      while (range.head < range.offsets.length && range.offsets[range.head]! < c) {
        this.lastCommittedTimestamp = range.timestamps[range.head];
        range.head += 1;
      }
      if (range.to <= c) this.range = undefined;
      else {
        if (range.from < c) range.from = c;
        if (range.head > 1024 && range.head * 2 > range.offsets.length) {
          range.offsets = range.offsets.slice(range.head);
          range.timestamps = range.timestamps.slice(range.head);
          range.head = 0;
        }
      }
    }
    let drop = 0;
    for (const s of this.sightings) {
      if (s.end > c) break;
      if (s.lastAt !== undefined && (this.caughtUpUntil === undefined || s.lastAt > this.caughtUpUntil)) this.caughtUpUntil = s.lastAt;
      drop += 1;
    }
    if (drop > 0) this.sightings.splice(0, drop);
  }
}

function age(now: number, timestamp: number): number {
  return Number.isFinite(timestamp) ? Math.max(0, now - timestamp) / 1000 : 0;
}

/** How often the broker's end and committed offsets are refreshed by default. */
export const DEFAULT_LAG_REFRESH_MS = 5_000;
/** A scrape right after an assignment waits this long for the first broker offsets. */
const FIRST_REFRESH_WAIT_MS = 2_000;
/** Longest a stop waits for the admin connection to close. */
const STOP_WAIT_MS = 2_000;

export interface ConsumerLagOptions {
  kafka: Kafka;
  groupId: string;
  topic: string;
  metrics: OrdoMetrics;
  logger: Logger;
  refreshMs?: number;
  now?: () => number;
}

/**
 * The Kafka-facing part: one admin connection refreshing the end and committed offsets of
 * the owned partitions every `refreshMs`, the worker's hooks, and the scrape-time samples
 * the lag gauges read (registered with OrdoMetrics.consumerLagSources).
 */
export class ConsumerLag implements ConsumerLagSource {
  private readonly partitions = new Map<number, PartitionLag>();
  private readonly refreshMs: number;
  private readonly now: () => number;
  private admin: Admin | undefined;
  private connecting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private sampling: Promise<readonly ConsumerLagSample[]> | undefined;
  private failures = 0;
  private stopped = false;

  constructor(private readonly options: ConsumerLagOptions) {
    this.refreshMs = options.refreshMs ?? DEFAULT_LAG_REFRESH_MS;
    this.now = options.now ?? Date.now;
    options.metrics.consumerLagSources.add(this);
  }

  /** The worker's new assignment: series of partitions no longer owned disappear. */
  assign(partitions: Iterable<number>): void {
    if (this.stopped) return;
    const next = new Set(partitions);
    for (const partition of this.partitions.keys()) if (!next.has(partition)) this.partitions.delete(partition);
    let added = false;
    for (const partition of next) {
      if (!this.partitions.has(partition)) {
        this.partitions.set(partition, new PartitionLag());
        added = true;
      }
    }
    if (added) void this.refresh();
    if (!this.timer) {
      this.timer = setInterval(() => void this.refresh(), this.refreshMs);
      this.timer.unref();
    }
  }

  /** A batch handed to the worker (before it is processed). */
  fetched(batch: Batch): void {
    const lag = this.partitions.get(batch.partition);
    const first = batch.firstOffset();
    if (!lag || first === null) return;
    // kafkajs keeps the fetch offset on the batch (not in its types): offsets from there to
    // the first record returned hold no record at all.
    const fetchedOffset = (batch as { fetchedOffset?: unknown }).fetchedOffset;
    const firstOffset = BigInt(first);
    const fetchOffset = typeof fetchedOffset === 'string' && /^\d+$/.test(fetchedOffset) ? BigInt(fetchedOffset) : undefined;
    const from = fetchOffset !== undefined && fetchOffset <= firstOffset ? fetchOffset : firstOffset;
    const records = batch.messages.map((m) => ({ offset: BigInt(m.offset), timestamp: Number(m.timestamp) }));
    lag.observeFetch({ from, to: BigInt(batch.lastOffset()) + 1n, records }, this.now());
  }

  /**
   * kafkajs's END_BATCH_PROCESS event: a fetch that held only transaction markers or aborted
   * records never reaches eachBatch, but it does move the consumer past them.
   */
  scanned(event: { partition: number; batchSize: number; firstOffset: string | null; lastOffset: string }): void {
    const lag = this.partitions.get(event.partition);
    if (!lag || event.batchSize > 0 || event.firstOffset === null) return;
    lag.observeFetch({ from: BigInt(event.firstOffset), to: BigInt(event.lastOffset) + 1n, records: [] }, this.now());
  }

  /** The worker committed `nextOffset` for `partition` (or restored it as the task's position). */
  committed(partition: number, nextOffset: string): void {
    this.partitions.get(partition)?.commit(BigInt(nextOffset));
  }

  /**
   * Scrape time: one sample per owned partition whose lag is known. A scrape asks for both
   * gauges in one synchronous pass: they share one sample, so they always agree.
   */
  sample(): Promise<readonly ConsumerLagSample[]> {
    if (!this.sampling) {
      this.sampling = this.sampleNow();
      queueMicrotask(() => (this.sampling = undefined));
    }
    return this.sampling;
  }

  /** Ends the refresh timer and the admin connection; the series are gone from the next scrape. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.partitions.clear();
    this.options.metrics.consumerLagSources.delete(this);
    const admin = this.admin;
    this.admin = undefined;
    if (!admin) return;
    // Bounded: a drain must not wait on a broker that is down (a refresh still connecting
    // disconnects by itself once connected).
    await withTimeout(this.connecting?.catch(() => undefined) ?? Promise.resolve(), STOP_WAIT_MS);
    await withTimeout(admin.disconnect().catch(() => undefined), STOP_WAIT_MS);
  }

  private async sampleNow(): Promise<readonly ConsumerLagSample[]> {
    if ([...this.partitions.values()].some((p) => !p.observed)) await withTimeout(this.refresh(), FIRST_REFRESH_WAIT_MS);
    const now = this.now();
    const { groupId: group, topic } = this.options;
    const samples: ConsumerLagSample[] = [];
    for (const [partition, lag] of [...this.partitions].sort((a, b) => a[0] - b[0])) {
      const value = lag.sample(now);
      if (value) samples.push({ group, topic, partition, records: value.records, seconds: value.seconds });
    }
    return samples;
  }

  /** One refresh at a time; callers during one share it. Never rejects. */
  private refresh(): Promise<void> {
    if (this.stopped || this.partitions.size === 0) return Promise.resolve();
    this.refreshing ??= this.refreshNow().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshNow(): Promise<void> {
    const { kafka, groupId, topic, logger } = this.options;
    try {
      const admin = (this.admin ??= kafka.admin());
      this.connecting ??= admin.connect().catch((error: unknown) => {
        this.connecting = undefined;
        throw error;
      });
      await this.connecting;
      if (this.stopped) return void (await admin.disconnect().catch(() => undefined));
      const at = this.now();
      // The admin client lists offsets read_committed: `high` is the last stable offset.
      const [ends, groups] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
      const committed = new Map<number, bigint>();
      for (const { partition, offset } of groups.find((g) => g.topic === topic)?.partitions ?? []) {
        if (BigInt(offset) >= 0n) committed.set(partition, BigInt(offset));
      }
      for (const { partition, high, low } of ends) {
        this.partitions.get(partition)?.observeBroker({ end: BigInt(high), start: BigInt(low), committed: committed.get(partition) }, at);
      }
      if (this.failures > 0) logger.info('consumer lag offsets refreshed again', { topic, failures: this.failures });
      this.failures = 0;
    } catch (error) {
      this.failures += 1;
      // Logged on the first failure and then once a minute or so: the last offsets stay in use.
      if (this.failures === 1 || this.failures % Math.max(1, Math.round(60_000 / this.refreshMs)) === 0) {
        logger.warn('consumer lag offsets refresh failed', { topic, failures: this.failures, error });
      }
    }
  }
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
