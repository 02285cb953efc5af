import type { Logger } from '../observability/logger.js';

export interface PartitionProgress {
  partition: number;
  /** Next offset after what was applied (control records included), as a string. */
  appliedOffset: string;
  /** Log end offset (high watermark) last seen from the broker, or null if not known yet. */
  endOffset: string | null;
}

export interface ReaderProgress {
  /** Every partition applied up to the end offset last seen. */
  caughtUp: boolean;
  /** Records between what was applied and the end offsets (counts transaction markers too). */
  lagRecords: number | null;
  partitions: PartitionProgress[];
}

/** How long a catch-up waits before it says so (and again every as long). */
const SLOW_CATCH_UP_MS = 10_000;

/**
 * How far a reader has applied each partition against the log end, shared by the readers of
 * a whole topic (TopicReader) and of a group's share of it (PartitionedReader). A batch of
 * only transaction markers still moves the applied offset, so a caught-up reader reports no
 * lag; a log start above what was applied (compacted away, or deleted) counts as applied.
 */
export class ReadProgress {
  private readonly applied = new Map<number, bigint>();
  private readonly ends = new Map<number, bigint>();
  private readonly waiters: (() => void)[] = [];

  /** Moves forward only: an older batch (a re-delivery) or end (a stale answer) changes nothing. */
  advance(partition: number, applied: bigint | undefined, end: bigint | undefined): void {
    if (applied !== undefined && applied > (this.applied.get(partition) ?? 0n)) this.applied.set(partition, applied);
    if (end !== undefined && end > (this.ends.get(partition) ?? -1n)) this.ends.set(partition, end);
    this.wake();
  }

  /** The log's start and end as the broker answered them. */
  observeLog(partition: number, low: bigint, high: bigint): void {
    if ((this.applied.get(partition) ?? 0n) < low) this.applied.set(partition, low);
    this.advance(partition, undefined, high);
  }

  /** Where reading restarts (a seek): may go back, e.g. to the log start after the local copy was dropped. */
  reset(partition: number, applied: bigint): void {
    this.applied.set(partition, applied);
    this.wake();
  }

  appliedOf(partition: number): bigint {
    return this.applied.get(partition) ?? 0n;
  }

  endOf(partition: number): bigint | undefined {
    return this.ends.get(partition);
  }

  /** The end offsets known now (the target of a catch-up). */
  endsNow(partitions?: Iterable<number>): Map<number, bigint> {
    if (partitions === undefined) return new Map(this.ends);
    const out = new Map<number, bigint>();
    for (const p of partitions) {
      const end = this.ends.get(p);
      if (end !== undefined) out.set(p, end);
    }
    return out;
  }

  reached(target: ReadonlyMap<number, bigint>): boolean {
    return [...target].every(([p, end]) => this.appliedOf(p) >= end);
  }

  /** Progress of the given partitions (default: every partition whose end is known). */
  progress(partitions?: Iterable<number>): ReaderProgress {
    const list = [...(partitions ?? this.ends.keys())].sort((a, b) => a - b);
    const out: PartitionProgress[] = [];
    let lag = 0n;
    let known = list.length > 0;
    let caughtUp = known;
    for (const partition of list) {
      const end = this.ends.get(partition);
      const applied = this.appliedOf(partition);
      out.push({ partition, appliedOffset: applied.toString(), endOffset: end === undefined ? null : end.toString() });
      if (end === undefined) {
        known = false;
        caughtUp = false;
      } else if (applied < end) {
        lag += end - applied;
        caughtUp = false;
      }
    }
    return { caughtUp, lagRecords: known ? Number(lag) : null, partitions: out };
  }

  /**
   * Resolves once `target` is reached, the reader stops, or it fails (then rejects). Says every
   * SLOW_CATCH_UP_MS how far it got, so a stalled reader (a group join that does not complete,
   * a fetch that does not return) is visible.
   */
  async waitFor(target: ReadonlyMap<number, bigint>, until: { stopped(): boolean; failure(): Error | undefined; logger: Logger; meta: () => Record<string, unknown> }): Promise<void> {
    const started = Date.now();
    const slow = setInterval(() => {
      until.logger.warn('still reading the topic to its end', { ...until.meta(), seconds: Math.round((Date.now() - started) / 1000), partitions: this.progress(target.keys()).partitions });
    }, SLOW_CATCH_UP_MS);
    try {
      while (!this.reached(target) && !until.stopped() && until.failure() === undefined) await new Promise<void>((resolve) => this.waiters.push(resolve));
    } finally {
      clearInterval(slow);
    }
    const failure = until.failure();
    if (failure !== undefined) throw failure;
  }

  /** Wakes every wait (to re-check, or because the reader stopped or failed). */
  wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}
