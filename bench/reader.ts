import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import { TimeoutError, nowMs, withTimeout } from './kafka.js';

/**
 * A read_committed consumer on an output topic that notes when records become visible.
 * "Visible at" = the time (ms, sub-ms resolution) when kafkajs hands the fetched batch to us, so it includes
 * the commit, the broker's last-stable-offset advance and one fetch round trip (a fetch
 * waits at most `maxWaitMs` when nothing is there yet).
 */
export class OutputWatcher {
  count = 0;
  /** When the first non-empty batch arrived, and how many records it had. */
  firstAt: number | undefined;
  firstCount = 0;
  lastAt: number | undefined;
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly groupId: string,
    private readonly maxWaitMs: number,
    private readonly onRecords?: (messages: KafkaMessage[], visibleAt: number) => void,
  ) {}

  /** Joins its group and starts fetching from the beginning; resolves once partitions are assigned. */
  async start(timeoutMs = 30_000): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      maxWaitTimeInMs: this.maxWaitMs,
      allowAutoTopicCreation: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
    });
    this.consumer = consumer;
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await withTimeout(consumer.connect(), timeoutMs, 'reader connect');
    await consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: 1,
      eachBatch: ({ batch }) => {
        const now = nowMs();
        const n = batch.messages.length;
        if (n === 0) return Promise.resolve();
        if (this.firstAt === undefined) {
          this.firstAt = now;
          this.firstCount = n;
        }
        this.lastAt = now;
        this.count += n;
        this.onRecords?.(batch.messages, now);
        return Promise.resolve();
      },
    });
    await withTimeout(joined, timeoutMs, `reader joining group ${this.groupId}`);
  }

  async stop(): Promise<void> {
    await withTimeout(this.consumer?.disconnect() ?? Promise.resolve(), 20_000, 'reader disconnect').catch((error: unknown) => {
      if (!(error instanceof TimeoutError)) throw error;
    });
  }
}
