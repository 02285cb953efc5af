import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { aggregateScanner } from './aggregate-scan.js';
import { ensureDeletionsTopic } from './deletion-api.js';
import { pipelineDeletionsGroupId, startDeletionFollower } from './deletion-follower.js';
import { type DeletionsView, DeletionSweeper } from './sweep.js';

/** The pipeline role's part in deletions: the followed set, and a sweeper per task. */
export interface PipelineDeletions {
  /** The deletions in force, as followed (the retention sweep leaves their subjects to the deletion sweep). */
  readonly view: DeletionsView;
  /** A new task's sweeper (its policy for deleted subjects' events and its lazy sweep). */
  sweeper(node: string): DeletionSweeper;
  stop(): Promise<void>;
}

export async function startPipelineDeletions(
  config: Pick<OrdoConfig, 'topics' | 'deletion' | 'groupId' | 'nodeId' | 'stuckAfterMs' | 'createTopics' | 'replicationFactor'>,
  kafka: Kafka,
  deps: { logger: Logger; metrics: Pick<OrdoMetrics, 'deletionsPending' | 'deletionTombstones' | 'deletionSeconds'> },
): Promise<PipelineDeletions> {
  await ensureDeletionsTopic(config, kafka, deps.logger);
  const follower = await startDeletionFollower(config, kafka, deps.logger, pipelineDeletionsGroupId(config));
  const scan = aggregateScanner(kafka, { topic: config.topics.aggregates, groupId: config.groupId, logger: deps.logger.child({ component: 'deletion-sweep' }) });
  const { metrics } = deps;
  // Deletions some task of the pipeline (any worker) has not marked swept yet, as this worker reads the markers.
  const gauge = (): void => {
    let pending = 0;
    for (const d of follower.set.values()) if (!sweptEverywhere(follower.sweptOf(d.id).filter((m) => m.topic === config.topics.input).length)) pending += 1;
    metrics.deletionsPending.set(pending);
  };
  let partitions: number | undefined;
  const sweptEverywhere = (swept: number): boolean => partitions !== undefined && swept >= partitions;
  const admin = kafka.admin();
  const timer = setInterval(() => {
    if (partitions === undefined) {
      admin
        .connect()
        .then(() => admin.fetchTopicMetadata({ topics: [config.topics.input] }))
        .then((meta) => (partitions = meta.topics[0]?.partitions.length))
        .catch(() => undefined);
    }
    gauge();
  }, 5_000);
  timer.unref();
  return {
    view: follower,
    sweeper: (node) =>
      new DeletionSweeper({
        deletions: follower,
        separator: config.deletion.separator,
        policy: config.deletion.policy,
        sweepBatch: config.deletion.sweepBatch,
        aggregatesTopic: config.topics.aggregates,
        lateTopic: config.topics.late,
        deletionsTopic: config.topics.deletions,
        node,
        scan,
        now: Date.now,
        onRemoved: (count) => metrics.deletionTombstones.inc(count),
        onScanError: (error) => deps.logger.warn('reading the aggregates topic for a deletion sweep failed; reading it again', { error }),
        onSwept: (deletion, marker) => {
          metrics.deletionSeconds.observe(Math.max(0, marker.sweptAt - deletion.requestedAt) / 1000);
          deps.logger.info('deletion swept', { deletion: deletion.id, subject: deletion.subject, partition: marker.partition, removed: marker.removed, late: marker.late });
        },
      }),
    async stop() {
      clearInterval(timer);
      await admin.disconnect().catch(() => undefined);
      await follower.stop();
    },
  };
}
