import type { UsageAggregate } from '../usage/aggregation.js';
import type { WindowSize } from '../usage/windows.js';
import type { AggregateSource } from './query-parts.js';

/** aggregate key -> aggregate, for one subject in one stored window. */
type SubjectAggregates = Map<string, UsageAggregate>;
/** subject -> its aggregates, for one (meter, window size, window start). */
type Bucket = Map<string, SubjectAggregates>;

/**
 * Aggregates in the JS heap, indexed by partition and stored window so that a query reads
 * only the windows it asks about: its cost is the number of windows, never the number of
 * events. Keeps the highest version per key, like every holder of the aggregates topic.
 */
export class MemorySource implements AggregateSource {
  /** partition -> bucket id -> bucket. */
  private readonly partitions = new Map<number, Map<string, Bucket>>();
  private held = 0;

  /** Aggregates held. */
  get size(): number {
    return this.held;
  }

  /** Keeps the aggregate unless the key already holds this version or a higher one (a re-delivery). */
  apply(key: string, aggregate: UsageAggregate, partition = 0): void {
    let buckets = this.partitions.get(partition);
    if (buckets === undefined) {
      buckets = new Map();
      this.partitions.set(partition, buckets);
    }
    const id = bucketId(aggregate.meter, aggregate.windowSize, aggregate.windowStart);
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      bucket = new Map();
      buckets.set(id, bucket);
    }
    let aggregates = bucket.get(aggregate.subject);
    if (aggregates === undefined) {
      aggregates = new Map();
      bucket.set(aggregate.subject, aggregates);
    }
    const current = aggregates.get(key);
    if (current === undefined) this.held += 1;
    else if (current.version >= aggregate.version) return;
    aggregates.set(key, aggregate);
  }

  /** A tombstone: the key says where the aggregate is (meter, subject, window; see usage/aggregation.ts aggregateKey). */
  remove(key: string, partition = 0): void {
    const at = parseAggregateKey(key);
    const buckets = this.partitions.get(partition);
    if (at === undefined || buckets === undefined) return;
    const id = bucketId(at.meter, at.windowSize, at.windowStart);
    const bucket = buckets.get(id);
    const aggregates = bucket?.get(at.subject);
    if (bucket === undefined || aggregates === undefined || !aggregates.delete(key)) return;
    this.held -= 1;
    if (aggregates.size === 0) bucket.delete(at.subject);
    if (bucket.size === 0) buckets.delete(id);
    if (buckets.size === 0) this.partitions.delete(partition);
  }

  *window(meter: string, size: WindowSize, start: number, subjects: readonly string[] | undefined, partitions: ReadonlySet<number> | undefined): Iterable<UsageAggregate> {
    const id = bucketId(meter, size, start);
    for (const [partition, buckets] of this.partitions) {
      if (partitions !== undefined && !partitions.has(partition)) continue;
      const bucket = buckets.get(id);
      if (bucket === undefined) continue;
      if (subjects === undefined) {
        for (const aggregates of bucket.values()) yield* aggregates.values();
      } else {
        for (const subject of subjects) {
          const aggregates = bucket.get(subject);
          if (aggregates !== undefined) yield* aggregates.values();
        }
      }
    }
  }
}

/** Where an aggregate key points: its meter, subject, group values and UTC window. undefined: not an aggregate key. */
export function parseAggregateKey(key: string): { meter: string; subject: string; groupBy: Record<string, string>; windowSize: WindowSize; windowStart: number } | undefined {
  let parts: unknown;
  try {
    parts = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parts) || parts.length !== 5) return undefined;
  const [meter, subject, groupBy, windowSize, startIso] = parts as unknown[];
  if (typeof meter !== 'string' || typeof subject !== 'string' || typeof startIso !== 'string' || !isSize(windowSize)) return undefined;
  if (typeof groupBy !== 'object' || groupBy === null || Array.isArray(groupBy) || Object.values(groupBy).some((v) => typeof v !== 'string')) return undefined;
  const windowStart = Date.parse(startIso);
  if (Number.isNaN(windowStart)) return undefined;
  return { meter, subject, groupBy: groupBy as Record<string, string>, windowSize, windowStart };
}

function isSize(value: unknown): value is WindowSize {
  return value === 'MINUTE' || value === 'HOUR' || value === 'DAY' || value === 'MONTH';
}

function bucketId(meter: string, size: WindowSize, start: number): string {
  // Slugs are [a-z0-9_-]: a NUL never occurs in them.
  return `${meter}\u0000${size}\u0000${start}`;
}
