import type { OrdoConfig } from '../config/config.js';
import type { TopicSpec } from '../kafka/topics.js';

/** The deliver's schema ledger reads as its own group (`<group>-deliver-schemas-<node>`). */
export function deliverLedgerConfig<C extends Pick<OrdoConfig, 'groupId'>>(config: C): C {
  return { ...config, groupId: `${config.groupId}-deliver` };
}

/**
 * The prefix of every consumer group of one deliver replica (`<group>-deliver-<node>-<reader>-<8 hex>`):
 * each reader joins a group of its own per start and never commits offsets.
 */
export function deliverGroupPrefix(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-deliver-${config.nodeId}`.slice(0, 200);
}

/** Forwarded requests and their answers are worthless after seconds: an hour of retention is plenty. */
const FORWARD_RETENTION_MS = String(3_600_000);

/**
 * The topics the `deliver` role creates (it reads the ordered and global topics, written by
 * the pipeline and the merge): its sessions and node heartbeats (compacted, one partition
 * each, so one read to the end shows every write before it), and the forward and reply
 * topics of node-addressed routing (one partition each, keyed by node, short retention).
 */
export function deliverTopicSpecs(config: Pick<OrdoConfig, 'topics'>): TopicSpec[] {
  const t = config.topics;
  return [
    { topic: t.sessions, partitions: 1, compacted: true },
    { topic: t.nodes, partitions: 1, compacted: true },
    { topic: t.forward, partitions: 1, configs: { 'retention.ms': FORWARD_RETENTION_MS } },
    { topic: t.replies, partitions: 1, configs: { 'retention.ms': FORWARD_RETENTION_MS } },
  ];
}
