import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { aggregateRangeReader } from '../deletion/aggregate-scan.js';
import type { DeletionsView } from '../deletion/sweep.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { formatRetention, retentionWarnings } from '../usage/retention.js';
import { RetentionSweeper } from './retention-sweep.js';

/** The pipeline role's part in retention: a sweeper per task (undefined: every size is kept for ever). */
export function pipelineRetention(
  config: Pick<OrdoConfig, 'retention' | 'allowedLatenessMs' | 'maxFutureMs' | 'maxSkewMs' | 'topics' | 'groupId'>,
  kafka: Kafka,
  deps: { logger: Logger; metrics: Pick<OrdoMetrics, 'retentionTombstones'>; deletions?: DeletionsView },
): (() => RetentionSweeper) | undefined {
  const policy = config.retention.windows;
  if (formatRetention(policy) === '') return undefined;
  const logger = deps.logger.child({ component: 'retention-sweep' });
  logger.info('window retention', { retention: formatRetention(policy), allowedLatenessMs: config.allowedLatenessMs, sweepBatch: config.retention.sweepBatch });
  for (const warning of retentionWarnings(policy)) logger.warn(`ORDO_WINDOW_RETENTION: ${warning}`);
  const read = aggregateRangeReader(kafka, { topic: config.topics.aggregates, groupId: config.groupId, logger });
  return () =>
    new RetentionSweeper({
      policy,
      allowedLatenessMs: config.allowedLatenessMs,
      maxFutureMs: config.maxFutureMs,
      maxSkewMs: config.maxSkewMs,
      sweepBatch: config.retention.sweepBatch,
      aggregatesTopic: config.topics.aggregates,
      read,
      deletions: deps.deletions,
      onTombstoned: (size, count) => deps.metrics.retentionTombstones.inc({ size }, count),
      onReadError: (error) => logger.warn('reading the aggregates topic for the retention sweep failed; reading it again', { error }),
    });
}
