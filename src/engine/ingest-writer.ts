import type { Admin, Kafka, PartitionMetadata, Producer } from 'kafkajs';
import { type KeyedMessage, type WrittenPosition, assignPartitions, sendInOneTransaction } from '../kafka/transactional-send.js';
import type { Logger } from '../observability/logger.js';
import { classify } from './error-policy.js';

export interface IngestWriterOptions {
  kafka: Kafka;
  topic: string;
  /** Transactional ids are `<prefix>-<n>`: stable per instance, so a restart fences its own zombies. */
  transactionalIdPrefix: string;
  /** Producers, i.e. requests written at the same time (one transaction each). */
  producers: number;
  logger: Logger;
  /** The topic's partitions are re-read this often (a topic may grow). */
  metadataRefreshMs?: number;
}

/** A write that did not happen: nothing of it is visible to read_committed readers. */
export class WriteFailed extends Error {
  override readonly name = 'WriteFailed';
}

interface Slot {
  producer: Producer | undefined;
  /** Its last transaction failed: it is replaced before the next one. */
  broken: boolean;
}

/**
 * Writes each request's records to the input topic in one transaction of its own (all or
 * nothing), with a small pool of transactional producers so that concurrent requests do not
 * wait for each other's round trips. The partition of every record is computed here with the
 * producer's own partitioner (so its offset is known); the partition count is read at start
 * and refreshed in the background.
 */
export class IngestWriter {
  private readonly slots: Slot[];
  private readonly idle: number[] = [];
  private readonly waiting: ((slot: number) => void)[] = [];
  /** Writes in progress, and who waits for there to be none (stop). */
  private busy = 0;
  private readonly drained: (() => void)[] = [];
  private admin: Admin | undefined;
  private partitions: PartitionMetadata[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: IngestWriterOptions) {
    this.slots = Array.from({ length: options.producers }, () => ({ producer: undefined, broken: false }));
  }

  /** Reads the topic's partitions and connects the producers (each initialises its transactional id, fencing an older one). */
  async start(): Promise<void> {
    const admin = (this.admin = this.options.kafka.admin());
    try {
      await admin.connect();
      await this.refreshPartitions();
      for (let i = 0; i < this.slots.length; i++) {
        this.slots[i]!.producer = await this.connect(i);
        this.idle.push(i);
      }
    } catch (error) {
      // A start that is retried begins again from nothing: no client of this attempt is left open.
      await this.disconnectAll();
      this.idle.length = 0;
      throw error;
    }
    this.timer = setInterval(() => {
      this.refreshPartitions().catch((error: unknown) => this.options.logger.warn('ingest: partition refresh failed; keeping the last known', { topic: this.options.topic, error }));
    }, this.options.metadataRefreshMs ?? 30_000);
    this.timer.unref();
  }

  /** True once started and not stopped. */
  get ready(): boolean {
    return this.partitions.length > 0 && !this.stopped;
  }

  /**
   * Writes the messages in one transaction; resolves with each one's position (in order).
   * Rejects with WriteFailed when the transaction did not commit (it was aborted, or the
   * producer failed before): nothing was written. `classifyFailure` says whether a retry may help.
   */
  async write(messages: readonly KeyedMessage[]): Promise<WrittenPosition[]> {
    if (this.stopped) throw new WriteFailed('the ingest writer is stopping');
    const placed = assignPartitions(this.options.topic, this.partitions, messages);
    this.busy += 1;
    const slot = await this.acquire();
    try {
      const state = this.slots[slot]!;
      if (state.broken || state.producer === undefined) {
        await state.producer?.disconnect().catch(() => undefined);
        state.producer = undefined;
        state.producer = await this.connect(slot);
        state.broken = false;
      }
      return await sendInOneTransaction(state.producer, this.options.topic, placed);
    } catch (error) {
      // Aborted (or never begun); a producer whose transaction failed is not trusted again.
      this.slots[slot]!.broken = true;
      throw new WriteFailed(`writing ${messages.length} events to ${this.options.topic} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      this.release(slot);
      this.busy -= 1;
      if (this.busy === 0) for (const wake of this.drained.splice(0)) wake();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // Every write in progress (or waiting for a producer) ends first: its transaction commits
    // or aborts, never half.
    while (this.busy > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    await this.disconnectAll();
  }

  private async disconnectAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => (s.producer ? s.producer.disconnect().catch(() => undefined) : Promise.resolve())));
    for (const slot of this.slots) slot.producer = undefined;
    await this.admin?.disconnect().catch(() => undefined);
    this.admin = undefined;
  }

  private async connect(slot: number): Promise<Producer> {
    const producer = this.options.kafka.producer({
      transactionalId: `${this.options.transactionalIdPrefix}-${slot}`,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    // InitProducerId now, not at the first request: it fences a predecessor with this id (a
    // killed instance's open transaction is aborted) and a missing ACL stops the start.
    const init = await producer.transaction();
    await init.abort();
    return producer;
  }

  private async refreshPartitions(): Promise<void> {
    const { topics } = await this.admin!.fetchTopicMetadata({ topics: [this.options.topic] });
    const partitions = topics[0]?.partitions ?? [];
    if (partitions.length > 0) this.partitions = [...partitions].sort((a, b) => a.partitionId - b.partitionId);
  }

  private acquire(): Promise<number> {
    const slot = this.idle.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: number): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.idle.push(slot);
  }
}

/** A failed write: `retry` (the broker, a leader, a timeout: 503 and Retry-After) or `fatal` (e.g. an ACL: still 503, but logged as an error). */
export function classifyFailure(error: WriteFailed): 'retry' | 'fatal' {
  const kind = classify(error.cause ?? error);
  return kind === 'fatal' ? 'fatal' : 'retry';
}
