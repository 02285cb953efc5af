import { HybridClock } from '../clock/hybrid-clock.js';
import { systemClock } from '../clock/physical-clock.js';
import type { OrdoConfig } from '../config/config.js';
import { Worker } from '../engine/worker.js';
import { OrdoError } from '../errors.js';
import { createKafka } from '../kafka/client.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { PipelineProcessor } from '../processors/pipeline.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { usageEventSchema } from '../schema/usage-event.js';

/** Wires the `pipeline` role: registers the output schema, then runs the worker. */
export async function createPipelineWorker(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics }): Promise<Worker> {
  const catalog = new SchemaCatalog(config.registryUrl);
  const outputSchemaId = await registerWithRetry(catalog, `${config.topics.ordered}-value`, deps.logger);
  const clock = new HybridClock({ node: config.nodeId, physical: systemClock, maxSkewMs: config.maxSkewMs });
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger: deps.logger });
  return new Worker({
    ...config,
    kafka,
    inputTopic: config.topics.input,
    outputTopics: [config.topics.ordered, config.topics.dlq],
    storeNames: [],
    processorFactory: () =>
      new PipelineProcessor({ clock, orderedTopic: config.topics.ordered, dlqTopic: config.topics.dlq, outputSchemaId, catalog }),
    logger: deps.logger,
    metrics: deps.metrics,
  });
}

/** The registry may still be starting (e.g. in a fresh cluster): retry for about a minute. */
async function registerWithRetry(catalog: SchemaCatalog, subject: string, logger: Logger): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await catalog.register(subject, usageEventSchema);
    } catch (error) {
      if (!(error instanceof OrdoError && error.retriable) || attempt >= 12) throw error;
      const delayMs = Math.min(8_000, 250 * 2 ** (attempt - 1));
      logger.warn('schema registration failed; retrying', { subject, attempt, delayMs, error });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
