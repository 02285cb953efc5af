import { type InputPosition, highestPerPartition } from '../model/consistency-token.js';
import { decodePositionMetadata } from '../model/position-metadata.js';
import { type Logger, noopLogger } from '../observability/logger.js';

/** One input partition's position as the pipeline's group committed it. */
export interface CommittedPosition {
  /** The next input offset to process; -1n: nothing committed yet. */
  offset: bigint;
  /** The offset commit's metadata (model/position-metadata.ts), as the broker returned it. */
  metadata: string | null;
}

/** Where the waiter learns how far the pipeline and the read model are. */
export interface ConsistencySources {
  /** The pipeline group's committed positions on the input topic, every partition (one OffsetFetch). */
  committed(): Promise<ReadonlyMap<number, CommittedPosition>>;
  /** Per partition of the aggregates topic: the offset after what the read model has applied. */
  applied(): ReadonlyMap<number, bigint>;
  /**
   * The aggregates topic's end offsets now: the target when a committed position carries no
   * Ordo metadata (a pipeline of an older version).
   */
  endOffsets(): Promise<ReadonlyMap<number, bigint>>;
}

/** A position not reached yet, as a 503 reports it. */
export interface AwaitedPosition {
  partition: number;
  /** The token's input offset. */
  offset: string;
  /** `pipeline`: not committed by the pipeline yet; `read-model`: committed, not yet read by this replica. */
  waitingFor: 'pipeline' | 'read-model';
  /** The pipeline's committed position on that partition (next offset), null when none. */
  committedOffset: string | null;
  /** The aggregates offset the read model must reach (once committed), and how far it is. */
  aggregatesOffset: string | null;
  appliedOffset: string;
}

/**
 * `unavailable`: the positions cannot be read at all (e.g. a missing ACL), which waiting
 * does not fix; the log says why.
 */
export type ConsistencyOutcome =
  /** `targets` (pipelineOnly waits): per aggregates partition, the offset a reader must reach. */
  | { consistent: true; targets?: Map<number, bigint> }
  | { consistent: false; awaiting: AwaitedPosition[] }
  | { consistent: false; unknownPartitions: number[] }
  | { consistent: false; unavailable: true };

export interface ConsistencyWaiterOptions {
  aggregatesTopic: string;
  sources: ConsistencySources;
  /** How often the committed positions are fetched (and the read model checked) while anyone waits. */
  pollMs?: number;
  /**
   * Says which failures of the sources retrying cannot fix (the engine's error policy): they
   * end every wait at once as `unavailable`, logged as errors. Others are retried until the
   * requests' bounds. Default: none.
   */
  describeFatal?: (error: unknown) => string | undefined;
  logger?: Logger;
}

interface Pending {
  positions: Map<number, { offset: bigint; target: bigint | undefined; committed: bigint | undefined }>;
  /** Resolve once the targets are known: the readers of the partitions wait themselves (the partitioned read side). */
  pipelineOnly: boolean;
  resolve(outcome: ConsistencyOutcome): void;
  timer: NodeJS.Timeout;
}

const DEFAULT_POLL_MS = 50;

/**
 * Read-your-writes for usage queries: waits until the read model holds every aggregate the
 * pipeline committed up to and including some input offsets. Two steps per input partition:
 * 1. the pipeline's group has committed a position past the offset: every event up to it is
 *    in aggregates its transactions wrote (or was a duplicate, dead-lettered or late);
 * 2. the read model has read the aggregates topic's partition up to where that commit's
 *    transaction left it (the offset commit's metadata says where).
 * One poller serves every waiting request: one OffsetFetch per tick while anyone waits, none
 * otherwise.
 */
export class ConsistencyWaiter {
  private readonly pending = new Set<Pending>();
  private running = false;
  private readonly pollMs: number;
  private readonly log: Logger;
  private warnedNoMetadata = false;
  /** The last tick failed: a failure streak is logged once. */
  private failing = false;

  constructor(private readonly options: ConsistencyWaiterOptions) {
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.log = options.logger ?? noopLogger;
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * Resolves once every position is reached, or after `timeoutMs` with what is still awaited.
   * `pipelineOnly`: once the pipeline has committed past every position, with the aggregates
   * offsets to reach (`targets`); the replicas holding those partitions wait for them.
   */
  wait(positions: readonly InputPosition[], timeoutMs: number, options: { pipelineOnly?: boolean } = {}): Promise<ConsistencyOutcome> {
    return new Promise((resolve) => {
      const byPartition = new Map<number, { offset: bigint; target: bigint | undefined; committed: bigint | undefined }>();
      // Positions of one topic (the input's): the highest offset per partition covers the rest.
      for (const p of highestPerPartition(positions)) byPartition.set(p.partition, { offset: BigInt(p.offset), target: undefined, committed: undefined });
      const entry: Pending = {
        positions: byPartition,
        pipelineOnly: options.pipelineOnly === true,
        resolve: (outcome) => {
          clearTimeout(entry.timer);
          this.pending.delete(entry);
          resolve(outcome);
        },
        timer: setTimeout(() => entry.resolve({ consistent: false, awaiting: this.awaited(entry) }), timeoutMs),
      };
      this.pending.add(entry);
      if (byPartition.size === 0) entry.resolve({ consistent: true, ...(entry.pipelineOnly ? { targets: new Map() } : {}) });
      else this.run();
    });
  }

  /** Ends every wait (as not consistent): the role stops. */
  close(): void {
    for (const entry of [...this.pending]) entry.resolve({ consistent: false, awaiting: this.awaited(entry) });
  }

  private run(): void {
    if (this.running) return;
    this.running = true;
    void (async () => {
      try {
        while (this.pending.size > 0) {
          try {
            await this.tick();
            this.failing = false;
          } catch (error) {
            const fatal = this.options.describeFatal?.(error);
            if (fatal !== undefined) {
              this.log.error(`read-your-writes cannot read the pipeline's committed positions: ${fatal}`, { error });
              for (const entry of [...this.pending]) entry.resolve({ consistent: false, unavailable: true });
            } else if (!this.failing) {
              // The broker may be briefly away: keep trying until the requests' bounds end them.
              this.log.warn('consistency check failed; retrying', { error });
            }
            this.failing = true;
          }
          if (this.pending.size > 0) await new Promise((resolve) => setTimeout(resolve, this.pollMs));
        }
      } finally {
        this.running = false;
      }
    })();
  }

  private async tick(): Promise<void> {
    const entries = [...this.pending];
    if (entries.some((e) => [...e.positions.values()].some((p) => p.target === undefined))) {
      const committed = await this.options.sources.committed();
      let needEnds = false;
      for (const entry of entries) {
        const unknown = [...entry.positions.keys()].filter((partition) => committed.size > 0 && !committed.has(partition));
        if (unknown.length > 0) {
          entry.resolve({ consistent: false, unknownPartitions: unknown });
          continue;
        }
        for (const [partition, p] of entry.positions) {
          if (p.target !== undefined) continue;
          const c = committed.get(partition);
          if (c === undefined) continue;
          p.committed = c.offset;
          if (c.offset <= p.offset) continue;
          const end = decodePositionMetadata(c.metadata)?.ends.get(this.options.aggregatesTopic);
          if (end !== undefined) p.target = end;
          else needEnds = true;
        }
      }
      if (needEnds) {
        if (!this.warnedNoMetadata) {
          this.warnedNoMetadata = true;
          this.log.warn('a committed pipeline position carries no aggregates offset (a pipeline of an older version?): waiting for the aggregates end offsets instead');
        }
        const ends = await this.options.sources.endOffsets();
        for (const entry of entries) {
          for (const [partition, p] of entry.positions) {
            if (p.target === undefined && p.committed !== undefined && p.committed > p.offset) p.target = ends.get(partition) ?? 0n;
          }
        }
      }
    }
    const applied = this.options.sources.applied();
    for (const entry of this.pending) {
      if (entry.pipelineOnly) {
        if ([...entry.positions.values()].every((p) => p.target !== undefined)) entry.resolve({ consistent: true, targets: new Map([...entry.positions].map(([partition, p]) => [partition, p.target!])) });
        continue;
      }
      const done = [...entry.positions].every(([partition, p]) => p.target !== undefined && (applied.get(partition) ?? 0n) >= p.target);
      if (done) entry.resolve({ consistent: true });
    }
  }

  private awaited(entry: Pending): AwaitedPosition[] {
    const applied = this.options.sources.applied();
    const out: AwaitedPosition[] = [];
    for (const [partition, p] of [...entry.positions].sort((a, b) => a[0] - b[0])) {
      const reached = applied.get(partition) ?? 0n;
      if (p.target !== undefined && (entry.pipelineOnly || reached >= p.target)) continue;
      out.push({
        partition,
        offset: p.offset.toString(),
        waitingFor: p.target === undefined ? 'pipeline' : 'read-model',
        committedOffset: p.committed === undefined || p.committed < 0n ? null : p.committed.toString(),
        aggregatesOffset: p.target === undefined ? null : p.target.toString(),
        appliedOffset: reached.toString(),
      });
    }
    return out;
  }
}
