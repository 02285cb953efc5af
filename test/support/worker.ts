import { loadConfig, type OrdoConfig } from '../../src/config/config.js';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { jsonLogger, noopLogger } from '../../src/observability/logger.js';
import { createPipelineWorker } from '../../src/roles/pipeline.js';
import { BROKERS, REGISTRY_URL } from './cluster.js';

/** Config for a test's own topics and group (all named after `prefix`). */
export function testConfig(prefix: string, overrides: Record<string, string> = {}): OrdoConfig {
  return loadConfig(childEnv(prefix, 'ordo-test', overrides));
}

/** An in-process pipeline worker; set ORDO_TEST_LOGS=1 to see its logs. */
export async function startPipeline(config: OrdoConfig): Promise<{ worker: Worker; metrics: OrdoMetrics }> {
  const logger = process.env.ORDO_TEST_LOGS ? jsonLogger('info') : noopLogger;
  const metrics = new OrdoMetrics();
  const worker = await createPipelineWorker(config, { logger, metrics });
  await worker.start();
  return { worker, metrics };
}

/** The environment of an `ordo pipeline` child process for a test's own topics and group. */
export function childEnv(prefix: string, nodeId: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    KAFKA_BROKERS: BROKERS.join(','),
    SCHEMA_REGISTRY_URL: REGISTRY_URL,
    ORDO_GROUP_ID: `${prefix}-g`,
    ORDO_INPUT_TOPIC: `${prefix}-in`,
    ORDO_ORDERED_TOPIC: `${prefix}-ordered`,
    ORDO_DLQ_TOPIC: `${prefix}-dlq`,
    ORDO_LATE_TOPIC: `${prefix}-late`,
    ORDO_AGGREGATES_TOPIC: `${prefix}-aggregates`,
    ORDO_WATERMARKS_TOPIC: `${prefix}-watermarks`,
    ORDO_GLOBAL_TOPIC: `${prefix}-global`,
    ORDO_SCHEMAS_TOPIC: `${prefix}-schemas`,
    ORDO_SESSIONS_TOPIC: `${prefix}-sessions`,
    ORDO_NODES_TOPIC: `${prefix}-nodes`,
    ORDO_FORWARD_TOPIC: `${prefix}-forward`,
    ORDO_REPLIES_TOPIC: `${prefix}-replies`,
    ORDO_DELETIONS_TOPIC: `${prefix}-deletions`,
    ORDO_REPLAYS_TOPIC: `${prefix}-replays`,
    ORDO_DUPLICATES_TOPIC: `${prefix}-duplicates`,
    ORDO_API_NODES_TOPIC: `${prefix}-api-nodes`,
    ORDO_NODE_ID: nodeId,
    ORDO_SESSION_TIMEOUT_MS: '10000',
    ORDO_HEARTBEAT_INTERVAL_MS: '1000',
    ORDO_SHUTDOWN_GRACE_MS: '20000',
    ORDO_METRICS_PORT: '0',
    ...overrides,
  };
}
