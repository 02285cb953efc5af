import { systemClock } from '../clock/physical-clock.js';
import type { OrdoConfig } from '../config/config.js';
import { Worker } from '../engine/worker.js';
import { createKafka } from '../kafka/client.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { PipelineProcessor } from '../processors/pipeline.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { usageEventSchema } from '../schema/usage-event.js';

/** Wires the `pipeline` role: registers the output schema, then runs the worker. */
export async function createPipelineWorker(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics }): Promise<Worker> {
  const catalog = new SchemaCatalog(config.registryUrl);
  const outputSchemaId = await catalog.register(`${config.topics.ordered}-value`, usageEventSchema);
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger: deps.logger });
  return new Worker({
    kafka,
    groupId: config.groupId,
    inputTopic: config.topics.input,
    outputTopics: [config.topics.ordered, config.topics.dlq],
    storeNames: [],
    processorFactory: () =>
      new PipelineProcessor({
        nodeId: config.nodeId,
        maxSkewMs: config.maxSkewMs,
        orderedTopic: config.topics.ordered,
        dlqTopic: config.topics.dlq,
        outputSchemaId,
        catalog,
        physical: systemClock,
      }),
    topicPartitions: config.topicPartitions,
    replicationFactor: config.replicationFactor,
    createTopics: config.createTopics,
    maxBatchRecords: config.maxBatchRecords,
    maxBytesPerPartition: config.maxBytesPerPartition,
    sessionTimeoutMs: config.sessionTimeoutMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    rebalanceTimeoutMs: config.rebalanceTimeoutMs,
    transactionTimeoutMs: config.transactionTimeoutMs,
    shutdownGraceMs: config.shutdownGraceMs,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}
