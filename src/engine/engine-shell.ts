import type { Consumer, Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { Lifecycle, type LifecycleState, drainWithin, exportLifecycle } from './lifecycle.js';
import { Liveness, type StuckReport } from './liveness.js';

/**
 * The shell every consume loop of the engine runs in (the pipeline's Worker, the merge):
 * its lifecycle and liveness for /healthz, and the two ways it ends. `stop` drains: it
 * halts the timers, lets in-flight work finish (`drain`), bounded by the grace timeout, and
 * ends `stopped` (or `failed` if the drain failed). `fail` is for what cannot be recovered:
 * best effort and bounded (`abort`), and ends `failed` with the error kept for the exit.
 */
export abstract class EngineShell {
  readonly lifecycle = new Lifecycle();
  /** Failure streaks of the retry loops and the drain, for /healthz. */
  readonly liveness: Liveness;
  protected stopping: Promise<void> | undefined;
  private failure: Error | undefined;
  private readonly finished: Promise<LifecycleState>;

  protected constructor(
    protected readonly log: Logger,
    private readonly shell: { metrics: OrdoMetrics; shutdownGraceMs: number; stuckAfterMs: number },
  ) {
    this.finished = this.lifecycle.whenDone();
    exportLifecycle(this.lifecycle, shell.metrics.lifecycleState, log);
    this.liveness = new Liveness(shell.stuckAfterMs);
    this.liveness.watchDrain(this.lifecycle, shell.shutdownGraceMs);
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** Not failed, and nothing stuck (see Liveness): what /healthz answers. */
  get live(): boolean {
    return this.lifecycle.state !== 'failed' && this.stuck === undefined;
  }

  /** The retry loop (or drain) that has made no progress for longer than its bound, if any. */
  get stuck(): StuckReport | undefined {
    return this.liveness.stuck();
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Resolves with the final state (stopped or failed). */
  get done(): Promise<LifecycleState> {
    return this.finished;
  }

  /**
   * The loop's group consumer: read_committed, never creating topics, with the group timings
   * of the config; a crash kafkajs does not restart from fails the loop.
   */
  protected groupConsumer(kafka: Kafka, groupId: string, o: Pick<OrdoConfig, 'sessionTimeoutMs' | 'heartbeatIntervalMs' | 'rebalanceTimeoutMs' | 'maxBytesPerPartition'>): Consumer {
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      rebalanceTimeout: o.rebalanceTimeoutMs,
      maxBytesPerPartition: o.maxBytesPerPartition,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      retry: { retries: 10 },
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) void this.fail(event.payload.error);
    });
    return consumer;
  }

  /** Stops timers and observers; what it returns is awaited within the drain or abort. */
  protected abstract halt(): Promise<void>;
  /** A graceful end: in-flight work finishes, the group is left, producers close. */
  protected abstract drain(): Promise<void>;
  /** A best-effort end after a failure: disconnect everything, errors ignored. */
  protected abstract abort(): Promise<void>;

  /** Drains in-flight work, leaves the group, closes; bounded by the grace timeout. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.lifecycle.transition('draining');
    const halted = this.halt();
    this.stopping = (async () => {
      const error = await drainWithin(this.shell.shutdownGraceMs, async () => {
        await this.drain();
        await halted;
      });
      if (error) this.log.error('drain failed', { error });
      if (!error && !this.failure) this.lifecycle.transition('stopped');
      else {
        this.failure ??= error;
        this.lifecycle.transition('failed');
      }
    })();
    return this.stopping;
  }

  /** Ends the loop as `failed` with `error` (once; later failures are ignored). */
  protected async fail(error: Error, message = 'worker failed'): Promise<void> {
    if (this.lifecycle.done || this.failure) return;
    this.failure = error;
    this.log.error(message, { error });
    this.lifecycle.transition('draining');
    const halted = this.halt();
    // Best effort, and bounded: with the broker away a disconnect can wait a long time.
    await drainWithin(this.shell.shutdownGraceMs, async () => {
      await this.abort();
      await halted.catch(() => undefined);
    });
    this.lifecycle.transition('failed');
  }
}
