import type { UsageAggregate } from '../usage/aggregation.js';
import type { MeterCatalog } from '../usage/meters.js';
import type { RetentionPolicy } from '../usage/retention.js';
import { MemorySource } from './memory-source.js';
import { type UsageQuery, planQuery } from './query-plan.js';
import { type UsageAnswer, collectParts, mergeParts } from './query-parts.js';

export { type UsageQuery, unknownMeter } from './query-plan.js';
export type { UsageAnswer, UsageRow } from './query-parts.js';

export interface ReadModelOptions {
  /** Refuse queries needing more stored-window lookups than this (default 100,000). */
  maxWindowsRead?: number;
  /** Expired window sizes are read from coarser ones where exact (usage/retention.ts). */
  retention?: RetentionPolicy;
}

/**
 * The `api` role's in-memory view of the compacted aggregates topic: a query is planned
 * (query-plan.ts), its cells collected from the held aggregates and merged (query-parts.ts),
 * the same steps a partitioned read side runs across replicas. Pure: the consumer feeds it
 * with `apply`.
 */
export class ReadModel {
  private readonly source = new MemorySource();

  constructor(
    private readonly meters: MeterCatalog,
    private readonly options: ReadModelOptions = {},
  ) {}

  /** Aggregates held. */
  get size(): number {
    return this.source.size;
  }

  /**
   * Applies one record of the aggregates topic, keeping the highest version per key: a
   * re-delivered older version is ignored. Aggregates of meters not in the catalog are kept
   * (the meter may come back in the configuration) but cannot be queried.
   */
  apply(key: string, aggregate: UsageAggregate): void {
    this.source.apply(key, aggregate);
  }

  /**
   * A tombstone of the aggregates topic (a subject deletion's sweep): the aggregate leaves.
   * The key says where it is (meter, subject, window): see usage/aggregation.ts aggregateKey.
   */
  remove(key: string): void {
    this.source.remove(key);
  }

  query(q: UsageQuery): UsageAnswer {
    const plan = planQuery(this.meters, q, this.options);
    return mergeParts(plan, [collectParts(plan, this.source)]);
  }
}
