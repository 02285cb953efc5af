import type { Admin, Kafka, PartitionMetadata, Producer } from 'kafkajs';
import { type KeyedMessage, assignPartitions, sendPlaced } from '../kafka/transactional-send.js';
import type { Logger } from '../observability/logger.js';
import { type ReplayRecord, encodeReplayRecord } from './replay-record.js';

/** Letters per transaction in a bulk replay (two sends of this many records each). */
export const REPLAYS_PER_TRANSACTION = 500;

/** One letter to write back to the input. */
export interface ReplayWrite {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  /** The input partition: the letter's own (the DLQ keeps the input's partition number), or by `subject` for a corrected value. */
  place: { partition: number } | { subject: string };
  /** The replay record, without where the input record went (known once it is sent). */
  record: Omit<ReplayRecord, 'input'>;
}

/**
 * The api role's one transactional producer: each replay writes the input record and its
 * replay record (replays topic) in ONE transaction, so a letter is recorded as replayed if
 * and only if its event is on the input. The input record is sent first, so the replay record
 * names its offset. Replays of this replica go one transaction at a time (`run` serialises
 * them), which also makes "already replayed?" then "write" atomic on the replica.
 */
export class ReplayWriter {
  private producer: Producer | undefined;
  private broken = false;
  private admin: Admin | undefined;
  private partitions: PartitionMetadata[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: { kafka: Kafka; inputTopic: string; replaysTopic: string; transactionalId: string; logger: Logger },
  ) {}

  /** Connects and initialises the transactional id (fencing a predecessor of this replica; a missing ACL stops the start). */
  async start(): Promise<void> {
    this.admin = this.options.kafka.admin();
    await this.admin.connect();
    this.producer = await this.connect();
  }

  /** Runs `task` alone: no other replay of this replica runs meanwhile. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Writes the letters (at most REPLAYS_PER_TRANSACTION) in one transaction; resolves with their replay records. Call within `run`. */
  async write(writes: readonly ReplayWrite[]): Promise<ReplayRecord[]> {
    if (writes.length === 0) return [];
    if (writes.length > REPLAYS_PER_TRANSACTION) throw new RangeError(`${writes.length} replays in one transaction; at most ${REPLAYS_PER_TRANSACTION}`);
    const o = this.options;
    if (this.partitions.length === 0 || writes.some((w) => 'partition' in w.place && w.place.partition >= this.partitions.length)) await this.refreshPartitions();
    const messages = writes.map((w) => ({ key: w.key, value: w.value ?? Buffer.alloc(0), headers: w.headers, partition: this.partitionOf(w) }));
    if (this.broken || this.producer === undefined) {
      await this.producer?.disconnect().catch(() => undefined);
      this.producer = undefined;
      this.producer = await this.connect();
      this.broken = false;
    }
    const transaction = await this.producer.transaction();
    try {
      const positions = await sendPlaced(transaction, o.inputTopic, messages);
      const records = writes.map((w, i): ReplayRecord => ({ ...w.record, input: positions[i]! }));
      await sendPlaced(
        transaction,
        o.replaysTopic,
        records.map((r) => ({ ...encodeReplayRecord(r), headers: {}, partition: 0 })),
      );
      await transaction.commit();
      return records;
    } catch (error) {
      // Aborted: neither the events nor their replay records are visible. The producer is not trusted again.
      this.broken = true;
      await transaction.abort().catch(() => undefined);
      throw error;
    }
  }

  private partitionOf(write: ReplayWrite): number {
    const place = write.place;
    if ('partition' in place) {
      if (place.partition >= this.partitions.length) throw new RangeError(`the input topic ${this.options.inputTopic} has no partition ${place.partition}`);
      return place.partition;
    }
    const keyed: KeyedMessage = { key: place.subject, value: Buffer.alloc(0), headers: {} };
    return assignPartitions(this.options.inputTopic, this.partitions, [keyed])[0]!.partition;
  }

  /** Partition count of the input topic (refreshed when a write names a partition not known yet). */
  async inputPartitions(): Promise<number> {
    if (this.partitions.length === 0) await this.refreshPartitions();
    return this.partitions.length;
  }

  private async refreshPartitions(): Promise<void> {
    const { topics } = await this.admin!.fetchTopicMetadata({ topics: [this.options.inputTopic] });
    const partitions = topics[0]?.partitions ?? [];
    if (partitions.length > 0) this.partitions = [...partitions].sort((a, b) => a.partitionId - b.partitionId);
  }

  private async connect(): Promise<Producer> {
    const producer = this.options.kafka.producer({ transactionalId: this.options.transactionalId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    const init = await producer.transaction();
    await init.abort();
    return producer;
  }

  async stop(): Promise<void> {
    await this.queue;
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
