import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { MergeWorker } from '../engine/merge-worker.js';
import { createKafka } from '../kafka/client.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { GlobalMerge, HELD_STORE, MERGE_META_STORE } from '../processors/merge.js';

/** The merge role's consumer group: derived from the pipeline's, so one setting names both. */
export function mergeGroupId(config: Pick<OrdoConfig, 'groupId'>): string {
  return `${config.groupId}-merge`;
}

/** The merge's topics as the engine sees them (also what `ordo topics` lists). */
export function mergeTopics(config: Pick<OrdoConfig, 'groupId' | 'topics'>): { groupId: string; orderedTopic: string; watermarksTopic: string; globalTopic: string; dlqTopic: string; storeNames: string[] } {
  return {
    groupId: mergeGroupId(config),
    orderedTopic: config.topics.ordered,
    watermarksTopic: config.topics.watermarks,
    globalTopic: config.topics.global,
    dlqTopic: config.topics.dlq,
    storeNames: [HELD_STORE, MERGE_META_STORE],
  };
}

/** Wires the `merge` role: the ordered topic's partitions -> the single-partition global topic. */
export function createMergeWorker(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics; kafka?: Kafka }): MergeWorker {
  const kafka = deps.kafka ?? createKafka({ brokers: config.brokers, clientId: config.clientId, logger: deps.logger, security: config.security.kafka });
  return new MergeWorker({
    ...config,
    kafka,
    ...mergeTopics(config),
    processorFactory: (partitions) => new GlobalMerge(partitions, { globalTopic: config.topics.global, dlqTopic: config.topics.dlq, nodeId: config.nodeId }),
    logger: deps.logger,
    metrics: deps.metrics,
  });
}
