import { HybridClock } from '../clock/hybrid-clock.js';
import { systemClock } from '../clock/physical-clock.js';
import type { OrdoConfig } from '../config/config.js';
import { startSchemaLedger } from '../engine/schema-ledger.js';
import { Worker, type WorkerOptions } from '../engine/worker.js';
import { Liveness } from '../engine/liveness.js';
import { retrying } from '../engine/retry.js';
import { OrdoError } from '../errors.js';
import { createKafka } from '../kafka/client.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { PipelineProcessor, pipelineStores } from '../processors/pipeline.js';
import { usageAggregateSchema } from '../usage/aggregation.js';
import { MeterCatalog, loadMetersFile } from '../usage/meters.js';
import type avro from 'avsc';
import type { Kafka } from 'kafkajs';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { duplicatesTopicSpec } from '../accountability/topics.js';
import { ensureTopics, partitionCount } from '../kafka/topics.js';
import { usageEventSchema } from '../schema/usage-event.js';
import { startPipelineDeletions } from '../deletion/pipeline-deletions.js';
import { pipelineRetention } from '../retention/pipeline-retention.js';

/** Wires the `pipeline` role: registers the output schema, then runs the worker. */
export async function createPipelineWorker(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics; kafka?: Kafka }): Promise<Worker> {
  const kafka = deps.kafka ?? createKafka({ brokers: config.brokers, clientId: config.clientId, logger: deps.logger, security: config.security.kafka });
  // The meters file first: a bad one stops the start (exit 78) before anything connects.
  const meters = new MeterCatalog(config.metersFile === undefined ? [] : loadMetersFile(config.metersFile));
  const ledger = await startSchemaLedger(config, kafka, deps.logger);
  const catalog = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }, undefined, ledger);
  let outputSchemaId: number;
  let aggregateSchemaId: number;
  try {
    outputSchemaId = await registerWithRetry(catalog, `${config.topics.ordered}-value`, usageEventSchema, deps.logger, config.stuckAfterMs);
    aggregateSchemaId = await registerWithRetry(catalog, `${config.topics.aggregates}-value`, usageAggregateSchema, deps.logger, config.stuckAfterMs);
    await ensureDuplicatesTopic(config, kafka, deps.logger);
  } catch (error) {
    await ledger.stop();
    throw error;
  }
  deps.logger.info('meters loaded', { meters: meters.meters.map((m) => m.slug), file: config.metersFile ?? null });
  const clock = new HybridClock({ node: config.nodeId, physical: systemClock, maxSkewMs: config.maxSkewMs });
  // Deletions in force before the first task starts (its restore and policy depend on them).
  const deletions = await startPipelineDeletions(config, kafka, deps).catch(async (error: unknown) => {
    await ledger.stop();
    throw error;
  });
  const retention = pipelineRetention(config, kafka, { ...deps, deletions: deletions.view });
  const worker = new Worker({
    ...config,
    kafka,
    ...pipelineTopics(config),
    // Idle partitions also sweep deleted subjects: never without ticks.
    punctuateIntervalMs: punctuateInterval(config.reorderWindowMs, config.watermarkIntervalMs) ?? 1_000,
    processorFactory: () =>
      new PipelineProcessor({
        ...config,
        clock,
        orderedTopic: config.topics.ordered,
        dlqTopic: config.topics.dlq,
        lateTopic: config.topics.late,
        aggregatesTopic: config.topics.aggregates,
        outputSchemaId,
        aggregateSchemaId,
        catalog,
        meters,
        watermarksTopic: config.topics.watermarks,
        duplicatesTopic: config.topics.duplicates,
        sweeper: deletions.sweeper(clock.node),
        retentionSweeper: retention?.(),
      }),
    logger: deps.logger,
    metrics: deps.metrics,
  });
  void worker.lifecycle.whenDone().then(() => Promise.all([ledger.stop(), deletions.stop()]));
  return worker;
}

/** The pipeline's topics as the engine sees them (also what `ordo topics` lists). */
export function pipelineTopics(config: Pick<OrdoConfig, 'topics' | 'allowedLatenessMs'>): Pick<WorkerOptions, 'inputTopic' | 'outputTopics' | 'compactedTopics' | 'storeNames'> {
  const stores = pipelineStores({ aggregatesTopic: config.topics.aggregates, allowedLatenessMs: config.allowedLatenessMs, orderedTopic: config.topics.ordered, lateTopic: config.topics.late });
  return {
    inputTopic: config.topics.input,
    outputTopics: [config.topics.ordered, config.topics.dlq, config.topics.late, config.topics.aggregates, config.topics.watermarks],
    compactedTopics: [config.topics.aggregates, config.topics.watermarks],
    // Stores with a changelog of their own (the aggregates store restores from the aggregates
    // topic; the dedupe store is rebuilt from the ordered and late topics).
    storeNames: stores.filter((s) => s.changelog === undefined && !s.rebuilt).map((s) => s.name),
  };
}

/**
 * The duplicates topic (receipts) is an output written by input partition number, with the
 * receipts' retention: created here with its spec (the worker's outputs carry no configs).
 */
async function ensureDuplicatesTopic(config: OrdoConfig, kafka: Kafka, logger: Logger): Promise<void> {
  const result = await retrying(
    async () => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const partitions = (await partitionCount(admin, config.topics.input)) ?? config.topicPartitions;
        await ensureTopics(admin, [duplicatesTopicSpec(config, partitions)], { create: config.createTopics, replicationFactor: config.replicationFactor });
      } finally {
        await admin.disconnect();
      }
    },
    { what: 'duplicates topic setup', meta: { topic: config.topics.duplicates }, log: logger, liveness: new Liveness(config.stuckAfterMs) },
  );
  if (!result.ok) throw result.why === 'abandoned' ? new OrdoError('duplicates topic setup abandoned') : result.error;
}

/**
 * Idle partitions are ticked for two things: held events (a window above 0; with 0 nothing
 * is held past its batch) and the watermarks topic (an interval above 0). The tick is half
 * the shorter of those, within 50 ms..1 s; neither: no ticks. An idle partition's held
 * events leave at most window + 2 ticks after their key.
 */
export function punctuateInterval(reorderWindowMs: number, watermarkIntervalMs: number): number | undefined {
  const needs = [reorderWindowMs, watermarkIntervalMs].filter((ms) => ms > 0);
  if (needs.length === 0) return undefined;
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...needs) / 2)));
}

/**
 * The registry may still be starting (e.g. in a fresh cluster): retried like every transient
 * failure (engine/retry.ts), for up to ORDO_STUCK_AFTER_MS.
 */
export async function registerWithRetry(catalog: SchemaCatalog, subject: string, schema: avro.Schema, logger: Logger, stuckAfterMs: number): Promise<number> {
  const result = await retrying(() => catalog.register(subject, schema), { what: 'schema registration', meta: { subject }, log: logger, liveness: new Liveness(stuckAfterMs) });
  if (!result.ok) throw result.why === 'abandoned' ? new OrdoError(`schema registration under ${subject} abandoned`) : result.error;
  return result.value;
}
