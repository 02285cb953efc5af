import type { Admin, Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import { waitForTopic } from '../kafka/topics.js';
import { classify, fatalMessage } from './error-policy.js';
import { Liveness } from './liveness.js';
import { ReadProgress } from './read-progress.js';
import { RepeatedFailures, retrying } from './retry.js';

export interface TopicFollowerOptions {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** How often the end offsets are refreshed from the broker. */
  refreshMs?: number;
  /** Bounds the retries of transient failures (and reports them to /healthz); default: 2 minutes. */
  liveness?: Liveness;
  /** After start: the reader cannot go on (its consumer crashed for good, or end offsets failed past the bound). */
  onFailure?: (error: unknown) => void;
}

/**
 * What every reader that follows a topic into a table shares (TopicReader: the whole topic;
 * PartitionedReader: a group's share of it): the wait for the topic, the consumer under the
 * engine's error policy, the end offsets refreshed on a timer, the progress against them,
 * and one way to stop or fail.
 */
export abstract class TopicFollower {
  protected admin: Admin | undefined;
  protected consumer: Consumer | undefined;
  protected readonly read = new ReadProgress();
  protected readonly liveness: Liveness;
  protected stopped = false;
  protected failure: Error | undefined;
  private readonly refreshFailures: RepeatedFailures;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly follow: TopicFollowerOptions,
    /** The consumer group, as errors name it. */
    private readonly group: () => string,
  ) {
    this.liveness = follow.liveness ?? new Liveness(120_000);
    this.refreshFailures = new RepeatedFailures({ what: 'end offset refresh', meta: { topic: follow.topic }, log: follow.logger, liveness: this.liveness });
  }

  /** Refreshes what the reader knows of the log (at least the end offsets). */
  protected abstract refreshEnds(): Promise<void>;

  /**
   * Connects the admin, waits for the topic (a topic just created by another role, a leader
   * moving: retried) and runs `first`; false when stopped meanwhile, throws what retrying
   * cannot fix.
   */
  protected async connect(what: string, first: () => Promise<void>): Promise<boolean> {
    const o = this.follow;
    const admin = (this.admin = o.kafka.admin());
    const ready = await retrying(
      async () => {
        await admin.connect();
        await waitForTopic(admin, o.topic, { stopped: () => this.stopped, logger: o.logger });
        await first();
      },
      { what, meta: { topic: o.topic }, log: o.logger, liveness: this.liveness, abandoned: () => this.stopped },
    );
    if (!ready.ok) {
      if (ready.why === 'abandoned') return false;
      throw ready.error;
    }
    return !this.stopped;
  }

  /**
   * A read_committed consumer that never creates the topic. kafkajs restarts a crashed
   * consumer by default, whatever the error: only the shared policy's `retry` kind is
   * restarted; anything else (a missing ACL) stops the reader.
   */
  protected createConsumer(config: ConsumerConfig): Consumer {
    const consumer = this.follow.kafka.consumer({
      ...config,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      retry: { restartOnFailure: (error) => Promise.resolve(classify(error) === 'retry') },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart && !this.stopped) this.fail(event.payload.error);
    });
    return consumer;
  }

  /** Refreshes the end offsets on a timer; only a gauge goes stale when it fails, until the liveness bound. */
  protected followEnds(): void {
    this.timer = setInterval(() => {
      this.refreshEnds().then(
        () => this.refreshFailures.succeeded(),
        (error: unknown) => {
          const next = this.refreshFailures.failed(error);
          if (!next.ok && !this.stopped) this.fail(next.error);
        },
      );
    }, this.follow.refreshMs ?? 2_000);
    this.timer.unref();
  }

  /** The end offsets refreshed now (retried); false when stopped meanwhile. */
  protected async endsRefreshed(): Promise<boolean> {
    const refreshed = await retrying(() => this.refreshEnds(), { what: 'end offset refresh', meta: { topic: this.follow.topic }, log: this.follow.logger, liveness: this.liveness, abandoned: () => this.stopped });
    if (!refreshed.ok) {
      if (refreshed.why === 'abandoned') return false;
      throw refreshed.error;
    }
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.refreshFailures.close();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.read.wake();
  }

  /** The reader stops for good: said once, with what to fix, to the log and to `onFailure`. */
  protected fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    const o = this.follow;
    o.logger.error(`reader stopped: ${fatalMessage(error, `reading ${o.topic} as group ${this.group()}`)}`, { topic: o.topic, error });
    o.onFailure?.(error);
    this.read.wake();
  }
}
