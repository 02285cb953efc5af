import type { Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import { PartitionFollower } from './stream-consumer.js';
import { PartitionRing } from './stream-ring.js';

export interface StreamTailOptions {
  kafka: Kafka;
  topic: string;
  partitions: number;
  /** Consumer group prefix: the tail joins `<group>-tail-<8 hex>`. */
  group: string;
  /** Where each partition's tail starts (the end when the source started). */
  starts: ReadonlyMap<number, bigint>;
  /** Records kept per partition; 0: no tail consumer at all (every reader catches up by itself). */
  capacity: number;
  logger: Logger;
  /** New records (or markers) were read: readers waiting at the tail may go on. */
  onAppend(): void;
  onFailure(error: unknown): void;
}

/**
 * The one consumer per stream source that follows the topic's end and keeps the last
 * records of each partition (PartitionRing) for every reader at the tail, so a thousand
 * readers at the tail cost one consumer. It starts at the source's start offsets and only
 * moves forward; a batch that starts past its position (the log start moved past it)
 * restarts that ring there, so readers that had not read the missing records fall off.
 */
export class StreamTail {
  readonly rings = new Map<number, PartitionRing>();
  private follower: PartitionFollower | undefined;
  private seq = 0;
  private readonly nextSeq = (): number => this.seq++;

  constructor(private readonly options: StreamTailOptions) {
    for (const [partition, start] of options.starts) this.rings.set(partition, new PartitionRing(options.capacity, start));
  }

  async start(): Promise<void> {
    const o = this.options;
    if (o.capacity === 0) return;
    const positions = (): Map<number, bigint> => new Map([...this.rings].map(([p, ring]) => [p, ring.next]));
    const follower = new PartitionFollower({
      kafka: o.kafka,
      topic: o.topic,
      partitions: o.partitions,
      group: `${o.group}-tail`,
      logger: o.logger,
      // Short fetch waits: the tail's freshness is every reader's latency.
      maxWaitMs: 100,
      positions,
      onBatch: (partition, first, last, records) => {
        const ring = this.rings.get(partition);
        if (ring === undefined) return;
        if (!ring.append(first, last, records, this.nextSeq)) {
          o.logger.warn('the stream tail found records deleted under it; readers that had not read them catch up', { topic: o.topic, partition, from: first.toString() });
        }
        o.onAppend();
      },
      onFailure: o.onFailure,
    });
    this.follower = follower;
    // A failed start (retried by the source) leaves nothing behind: the next attempt is a new consumer.
    await follower.start().catch(async (error: unknown) => {
      await follower.stop();
      throw error;
    });
  }

  /** The consumer group the tail joined (undefined without a tail consumer). */
  get groupId(): string | undefined {
    return this.follower?.groupId;
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
  }
}
