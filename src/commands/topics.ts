import type { OrdoConfig } from '../config/config.js';
import { mergeTopicSpecs } from '../engine/merge-worker.js';
import { schemaLedgerTopicSpec } from '../engine/schema-ledger.js';
import { workerTopicSpecs } from '../engine/worker.js';
import { createKafka } from '../kafka/client.js';
import { type TopicSpec, ensureTopics, partitionCount } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import { mergeTopics } from '../roles/merge.js';
import { pipelineTopics } from '../roles/pipeline.js';
import { ingestTopicSpecs } from '../roles/ingest.js';
import { deliverTopicSpecs } from '../roles/deliver.js';
import { deletionsTopicSpec, duplicatesTopicSpec, replaysTopicSpec } from '../accountability/topics.js';
import { apiNodesTopicSpec } from '../api/partitioned-read-side.js';

export interface PlannedTopic extends TopicSpec {
  /** The roles that create, write or read it. */
  roles: string[];
}

/**
 * Every topic the roles need, from the same functions the engine creates them with at
 * start, for an input topic of `partitions` partitions: what to provision when
 * ORDO_CREATE_TOPICS=false. The api role only reads the aggregates topic.
 */
export function topicPlan(config: OrdoConfig, partitions: number): PlannedTopic[] {
  const byTopic = new Map<string, PlannedTopic>();
  const add = (role: string, specs: TopicSpec[]): void => {
    for (const spec of specs) {
      const known = byTopic.get(spec.topic);
      if (!known) byTopic.set(spec.topic, { ...spec, roles: [role] });
      else {
        known.compacted = (known.compacted ?? false) || (spec.compacted ?? false);
        if (!known.roles.includes(role)) known.roles.push(role);
      }
    }
  };
  add('pipeline', workerTopicSpecs({ groupId: config.groupId, ...pipelineTopics(config) }, partitions));
  add('merge', [{ topic: config.topics.ordered, partitions }, ...mergeTopicSpecs(mergeTopics(config), partitions)]);
  add('api', [{ topic: config.topics.aggregates, partitions, compacted: true }]);
  add('ingest', ingestTopicSpecs({ ...config, topicPartitions: partitions }));
  add('deliver', [{ topic: config.topics.ordered, partitions }, { topic: config.topics.global, partitions: 1 }, ...deliverTopicSpecs(config)]);
  for (const role of ['pipeline', 'api', 'ingest', 'deliver']) add(role, [schemaLedgerTopicSpec(config.topics.schemas)]);
  // Accountability: the pipeline writes duplicates and sweeps deletions; the api indexes
  // receipts (ordered, DLQ, late, duplicates), replays dead letters and takes deletions.
  add('pipeline', [duplicatesTopicSpec(config, partitions), deletionsTopicSpec(config)]);
  add('api', [
    { topic: config.topics.ordered, partitions },
    { topic: config.topics.dlq, partitions },
    { topic: config.topics.late, partitions },
    duplicatesTopicSpec(config, partitions),
    deletionsTopicSpec(config),
    replaysTopicSpec(config),
    apiNodesTopicSpec(config),
  ]);
  add('deliver', [deletionsTopicSpec(config)]);
  return [...byTopic.values()];
}

export function formatPlan(plan: PlannedTopic[], replicationFactor: number): string {
  const rows = [['topic', 'partitions', 'replication', 'cleanup.policy', 'roles']];
  for (const t of plan) rows.push([t.topic, String(t.partitions), String(replicationFactor), t.compacted ? 'compact' : 'delete', t.roles.join(',')]);
  const width = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(width[i]!)).join('  ').trimEnd()).join('\n');
}

/**
 * `ordo topics --create`: creates the missing ones (whatever ORDO_CREATE_TOPICS says) and
 * checks the existing ones as the roles would at start. The partition count is the input
 * topic's when it exists, else ORDO_TOPIC_PARTITIONS.
 */
export async function createPlannedTopics(config: OrdoConfig, logger: Logger): Promise<{ plan: PlannedTopic[]; created: string[] }> {
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const partitions = (await partitionCount(admin, config.topics.input)) ?? config.topicPartitions;
    const plan = topicPlan(config, partitions);
    const before = new Set(await admin.listTopics());
    for (let attempt = 1; ; attempt++) {
      try {
        await ensureTopics(admin, plan, { create: true, replicationFactor: config.replicationFactor });
        break;
      } catch (error) {
        // A fresh broker may not know the leaders of topics it has just created yet.
        if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' || attempt >= 8) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
    return { plan, created: plan.map((t) => t.topic).filter((t) => !before.has(t)) };
  } finally {
    await admin.disconnect();
  }
}
