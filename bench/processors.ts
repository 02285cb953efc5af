import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { loadConfig, type OrdoConfig } from '../src/config/config.js';
import type { Worker } from '../src/engine/worker.js';
import { OrdoMetrics } from '../src/metrics/metrics.js';
import { noopLogger } from '../src/observability/logger.js';
import { createPipelineWorker } from '../src/roles/pipeline.js';
import { type AnchorSetup, JavaPassthroughProcessor, ProducerPerfProcessor } from './anchors.js';
import { benchKafka, withTimeout } from './kafka.js';
import { BENCH_METERS, benchMetersFile } from './meters.js';
import { type BenchParams, type SystemName, WINDOW_MS } from './params.js';

/** One system under test: consumes `inputTopic` from the beginning, writes `outputTopic`. */
export interface Processor {
  readonly system: SystemName;
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly groupId: string;
  /** Resolves once the consumer runs (group join may still be under way). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Set when the processor failed for good. */
  failure(): Error | undefined;
  /** Counters worth recording (transactions, records...). */
  details(): Promise<Record<string, unknown>>;
  /** Registry subjects it registered (deleted at the end). */
  readonly subjects: string[];
  /**
   * Set for a system with no input (kafka-producer-perf): it writes `records` records of
   * `recordBytes` by itself; the bench pre-produces nothing and waits for these outputs.
   */
  readonly selfDriven?: { records: number; recordBytes: number };
  /** Set-up before the phase's clock starts (java-eos-passthrough: its JVM's warm-up). */
  prepare?(kafka: Kafka): Promise<void>;
  /** Topics of the phase that are set-up, not writes of the system (not counted). */
  readonly auxTopics?: string[];
  /** A system's own throughput figure, if it reports one (kafka-producer-perf). */
  selfReportedPerSecond?(): number | undefined;
}

/** What createProcessor needs besides the system: the anchors' JVM set-up, and a self-driven system's size. */
export interface ProcessorOptions {
  anchors?: AnchorSetup;
  /** java-eos-passthrough: events its JVM passes through before the phase (a new JVM is cold). */
  jvmWarmup?: Message[];
  selfDriven?: { records: number; recordBytes: number };
}

/**
 * The Ordo configuration for a phase: its own topics and group, Ordo's defaults for
 * everything else (ORDO_* environment variables still apply, so tuning can be compared).
 * The baselines take their batch size, fetch size and group timings from it too.
 * Aggregation is on only with a meters file (ordo-aggregate); otherwise it is off even if
 * ORDO_METERS_FILE is set in the environment, so ordo-pipeline stays the same system.
 */
export function ordoConfig(params: BenchParams, prefix: string, metersFile?: string, reorderWindowMs?: number, extra: Record<string, string> = {}): OrdoConfig {
  return loadConfig({
    ...process.env,
    KAFKA_BROKERS: params.brokers.join(','),
    SCHEMA_REGISTRY_URL: params.registryUrl,
    ORDO_CLIENT_ID: 'ordo-bench',
    ORDO_NODE_ID: 'bench-node',
    ORDO_GROUP_ID: `${prefix}-g`,
    ORDO_INPUT_TOPIC: `${prefix}-in`,
    ORDO_ORDERED_TOPIC: `${prefix}-ordered`,
    ORDO_DLQ_TOPIC: `${prefix}-dlq`,
    ORDO_LATE_TOPIC: `${prefix}-late`,
    ORDO_AGGREGATES_TOPIC: `${prefix}-aggregates`,
    ORDO_WATERMARKS_TOPIC: `${prefix}-watermarks`,
    ORDO_GLOBAL_TOPIC: `${prefix}-global`,
    ORDO_SCHEMAS_TOPIC: `${prefix}-schemas`,
    ORDO_METERS_FILE: metersFile ?? '',
    ORDO_TOPIC_PARTITIONS: String(params.partitions),
    ORDO_METRICS_PORT: '0',
    ORDO_LOG_LEVEL: 'silent',
    ...(reorderWindowMs === undefined ? {} : { ORDO_REORDER_WINDOW_MS: String(reorderWindowMs) }),
    ...extra,
  });
}

/** Ordo's Worker runs this many partitions' batches at once; the baselines do the same. */
const PARTITIONS_CONCURRENTLY = 4;

export function createProcessor(system: SystemName, params: BenchParams, prefix: string, options: ProcessorOptions = {}): Processor {
  const config = ordoConfig(params, prefix);
  switch (system) {
    case 'kafka-producer-perf':
      if (!options.selfDriven) throw new Error('kafka-producer-perf needs a record count and size');
      return new ProducerPerfProcessor(readyAnchors(options.anchors), params, config, `${prefix}-out`, options.selfDriven);
    case 'java-eos-passthrough':
      return new JavaPassthroughProcessor(readyAnchors(options.anchors), params, config, prefix, options.jvmWarmup ?? []);
    case 'baseline-plain':
      return new PassthroughProcessor(system, params, config, `${prefix}-out`, false);
    case 'baseline-tx':
      return new PassthroughProcessor(system, params, config, `${prefix}-out`, true);
    case 'ordo-window-0':
    case 'ordo-window-250':
    case 'ordo-pipeline':
    case 'ordo-window-3000':
      return new OrdoProcessor(system, ordoConfig(params, prefix, undefined, WINDOW_MS[system]));
    case 'ordo-aggregate':
      // At reorder window 0, like the issue 11 targets: aggregation's cost against ordo-window-0, not the window's.
      return new OrdoProcessor(system, ordoConfig(params, prefix, benchMetersFile(), 0));
    case 'ordo-aggregate-no-corrections':
      // The same, unable to correct: what keeping each event's contribution costs (ordo-aggregate is the default, corrections on).
      return new OrdoProcessor(system, ordoConfig(params, prefix, benchMetersFile(), 0, { ORDO_CORRECTIONS: 'false' }));
  }
}

function readyAnchors(setup: AnchorSetup | undefined): Extract<AnchorSetup, { state: 'ready' }>['anchors'] {
  if (setup?.state === 'ready') return setup.anchors;
  throw new Error(`the Java anchors are not available: ${setup?.reason ?? 'not prepared'}`);
}

/**
 * Raw kafkajs consume -> produce, no processing: every record's key, value and headers
 * go unchanged to the same partition of the output topic.
 * - plain: one non-transactional producer, offsets auto-committed (at-least-once);
 * - transactional: like Ordo's engine, one transactional producer per input partition
 *   (id `<group>-<topic>-<partition>`), and per chunk of at most `maxBatchRecords`
 *   records one transaction holding the outputs and the input offsets (sendOffsets).
 */
class PassthroughProcessor implements Processor {
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly groupId: string;
  readonly subjects: string[] = [];
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  private plainProducer: Producer | undefined;
  private readonly producers = new Map<number, Promise<Producer>>();
  private error: Error | undefined;
  private batches = 0;
  private records = 0;
  private commitMs = 0;

  constructor(
    readonly system: SystemName,
    params: BenchParams,
    private readonly config: OrdoConfig,
    outputTopic: string,
    private readonly transactional: boolean,
  ) {
    this.inputTopic = config.topics.input;
    this.outputTopic = outputTopic;
    this.groupId = config.groupId;
    this.kafka = benchKafka(params.brokers, `bench-${system}`);
  }

  async start(): Promise<void> {
    const c = this.config;
    if (!this.transactional) {
      this.plainProducer = this.kafka.producer({ allowAutoTopicCreation: false });
      await withTimeout(this.plainProducer.connect(), 30_000, 'baseline producer connect');
    }
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: c.sessionTimeoutMs,
      heartbeatInterval: c.heartbeatIntervalMs,
      rebalanceTimeout: c.rebalanceTimeoutMs,
      maxBytesPerPartition: c.maxBytesPerPartition,
      readUncommitted: false,
      allowAutoTopicCreation: false,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) this.error ??= event.payload.error;
    });
    await withTimeout(consumer.connect(), 30_000, 'baseline consumer connect');
    await consumer.subscribe({ topics: [this.inputTopic], fromBeginning: true });
    await consumer.run({
      autoCommit: !this.transactional,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: PARTITIONS_CONCURRENTLY,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const size = this.config.maxBatchRecords;
    const partition = batch.partition;
    for (let i = 0; i < batch.messages.length; i += size) {
      if (!isRunning() || isStale()) return;
      const chunk = batch.messages.slice(i, i + size);
      const last = chunk[chunk.length - 1]!;
      const messages = chunk.map((m) => passthrough(m, partition));
      const started = performance.now();
      if (this.transactional) await this.commitChunk(partition, messages, (BigInt(last.offset) + 1n).toString());
      else await this.plainProducer!.send({ topic: this.outputTopic, messages, acks: -1 });
      this.commitMs += performance.now() - started;
      this.batches++;
      this.records += chunk.length;
      resolveOffset(last.offset);
      await heartbeat();
    }
    if (!isStale()) resolveOffset(batch.lastOffset());
  }

  private async commitChunk(partition: number, messages: Message[], nextOffset: string): Promise<void> {
    const producer = await this.producerFor(partition);
    const transaction = await producer.transaction();
    try {
      await transaction.send({ topic: this.outputTopic, messages, acks: -1 });
      await transaction.sendOffsets({ consumerGroupId: this.groupId, topics: [{ topic: this.inputTopic, partitions: [{ partition, offset: nextOffset }] }] });
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
  }

  private producerFor(partition: number): Promise<Producer> {
    let pending = this.producers.get(partition);
    if (!pending) {
      const producer = this.kafka.producer({
        transactionalId: `${this.groupId}-${this.inputTopic}-${partition}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: this.config.transactionTimeoutMs,
        allowAutoTopicCreation: false,
      });
      pending = producer.connect().then(() => producer);
      this.producers.set(partition, pending);
    }
    return pending;
  }

  async stop(): Promise<void> {
    await withTimeout(this.consumer?.disconnect() ?? Promise.resolve(), 30_000, `${this.system} consumer disconnect`);
    const producers = [...this.producers.values()].map(async (p) => (await p).disconnect());
    if (this.plainProducer) producers.push(this.plainProducer.disconnect());
    await withTimeout(Promise.allSettled(producers), 30_000, `${this.system} producer disconnect`);
  }

  failure(): Error | undefined {
    return this.error;
  }

  details(): Promise<Record<string, unknown>> {
    return Promise.resolve({
      mode: this.transactional ? 'transactional (EOS: outputs + sendOffsets per chunk)' : 'plain (non-transactional producer, autoCommit)',
      recordsIn: this.records,
      batches: this.batches,
      recordsPerBatch: this.batches > 0 ? round(this.records / this.batches, 1) : null,
      meanBatchCommitMs: this.batches > 0 ? round(this.commitMs / this.batches, 2) : null,
    });
  }
}

function passthrough(m: KafkaMessage, partition: number): Message {
  return { key: m.key, value: m.value, headers: m.headers ?? {}, partition };
}

/**
 * The real Ordo `pipeline` role, in process: createPipelineWorker + Worker.start(); with
 * the bench meters (ordo-aggregate) or none (ordo-pipeline: dedupe, no aggregates).
 */
class OrdoProcessor implements Processor {
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly groupId: string;
  readonly subjects: string[];
  private worker: Worker | undefined;
  private readonly metrics = new OrdoMetrics();

  constructor(
    readonly system: Exclude<SystemName, 'baseline-plain' | 'baseline-tx' | 'kafka-producer-perf' | 'java-eos-passthrough'>,
    private readonly config: OrdoConfig,
  ) {
    this.inputTopic = config.topics.input;
    this.outputTopic = config.topics.ordered;
    this.groupId = config.groupId;
    this.subjects = [`${config.topics.ordered}-value`, `${config.topics.aggregates}-value`];
  }

  async start(): Promise<void> {
    this.worker = await withTimeout(createPipelineWorker(this.config, { logger: noopLogger, metrics: this.metrics }), 60_000, 'createPipelineWorker');
    await withTimeout(this.worker.start(), 60_000, 'Ordo worker start');
  }

  async stop(): Promise<void> {
    await withTimeout(this.worker?.stop() ?? Promise.resolve(), this.config.shutdownGraceMs + 10_000, 'Ordo worker stop');
  }

  failure(): Error | undefined {
    return this.worker?.state === 'failed' ? (this.worker.error ?? new Error('Ordo worker failed')) : undefined;
  }

  async details(): Promise<Record<string, unknown>> {
    const sum = async (metric: { get(): Promise<{ values: { value: number; metricName?: string; labels: object }[] }> }, name?: string): Promise<number> =>
      (await metric.get()).values.filter((v) => name === undefined || v.metricName === name).reduce((a, v) => a + v.value, 0);
    const transactions = await sum(this.metrics.transactionSeconds, 'ordo_transaction_commit_seconds_count');
    const txSeconds = await sum(this.metrics.transactionSeconds, 'ordo_transaction_commit_seconds_sum');
    const recordsIn = await sum(this.metrics.eventsIn);
    const outByTopic = Object.fromEntries((await this.metrics.eventsOut.get()).values.map((v) => [String(v.labels.topic), v.value]));
    const aggregatesOut = outByTopic[this.config.topics.aggregates] ?? 0;
    const aggregating = this.config.metersFile !== undefined;
    return {
      mode: aggregating
        ? `Ordo pipeline role with aggregation (decode -> stamp -> measure -> dedupe -> aggregate -> encode; meters ${BENCH_METERS.map((m) => m.slug).join(', ')}; ` +
          'aggregates + dedupe/aggregates/unique/meta changelogs in the same transaction)'
        : 'Ordo pipeline role without meters (decode -> stamp -> dedupe -> encode, exactly-once per batch, dedupe + meta changelogs)',
      recordsIn,
      eventsOutByTopic: outByTopic,
      aggregatesOut,
      aggregatesPerEvent: recordsIn > 0 ? round(aggregatesOut / recordsIn, 2) : null,
      duplicates: await sum(this.metrics.duplicates),
      late: await sum(this.metrics.late),
      deadLettered: await sum(this.metrics.deadLettered),
      transactions,
      recordsPerTransaction: transactions > 0 ? round(recordsIn / transactions, 1) : null,
      meanTransactionMs: transactions > 0 ? round((txSeconds / transactions) * 1000, 2) : null,
      transactionsAborted: await sum(this.metrics.transactionsAborted),
      config: {
        maxBatchRecords: this.config.maxBatchRecords,
        maxBytesPerPartition: this.config.maxBytesPerPartition,
        transactionTimeoutMs: this.config.transactionTimeoutMs,
        maxSkewMs: this.config.maxSkewMs,
        metersFile: this.config.metersFile ?? null,
        dedupeWindowMs: this.config.dedupeWindowMs,
        allowedLatenessMs: this.config.allowedLatenessMs,
      },
    };
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
