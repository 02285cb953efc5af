import type { Admin, ITopicConfig } from 'kafkajs';
import { ConfigError, NotAuthorizedError, TransientError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

export interface TopicSpec {
  topic: string;
  /** Exact partition count required (co-partitioning), or a default when created. */
  partitions: number;
  mustMatchPartitions?: boolean;
  /** At least this many partitions (an output written by input partition number). */
  minPartitions?: number;
  compacted?: boolean;
  /** Further topic configs set when Ordo creates it (e.g. a short retention.ms). */
  configs?: Record<string, string>;
}

/**
 * Creates missing topics and checks the partition counts that co-partitioning depends on
 * (a changelog must have the input topic's partition count).
 */
export async function ensureTopics(admin: Admin, specs: TopicSpec[], options: { create: boolean; replicationFactor: number }): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length > 0) {
    if (!options.create) {
      throw new ConfigError('ORDO_CREATE_TOPICS', `topics ${missing.map((s) => s.topic).join(', ')} do not exist and topic creation is off`);
    }
    const topics: ITopicConfig[] = missing.map((s) => ({
      topic: s.topic,
      numPartitions: s.partitions,
      replicationFactor: options.replicationFactor,
      configEntries: [...(s.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []), ...Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value }))],
    }));
    try {
      // kafkajs' own wait gives up when a fresh broker answers UNKNOWN_TOPIC_OR_PARTITION for
      // a topic it has just created ("does not host this topic-partition"): wait here instead.
      await admin.createTopics({ topics, waitForLeaders: false });
    } catch (error) {
      // Another worker may have created them at the same moment.
      if ((error as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw error;
    }
    await waitForLeaders(admin, missing.map((s) => s.topic));
  }
  const metadata = await fetchMetadata(admin, specs.map((s) => s.topic));
  for (const spec of specs) {
    const found = metadata.topics.find((t) => t.name === spec.topic);
    const count = found?.partitions.length;
    if (count === undefined) continue;
    if (spec.mustMatchPartitions && count !== spec.partitions) {
      throw new ConfigError(
        'ORDO_GROUP_ID',
        `changelog topic ${spec.topic} has ${count} partitions but must have ${spec.partitions}, like the input topic (co-partitioning); was the input topic resized? Use a new group id or recreate the changelog`,
      );
    }
    if (spec.minPartitions !== undefined && count < spec.minPartitions) {
      throw new ConfigError(
        'ORDO_TOPIC_PARTITIONS',
        `output topic ${spec.topic} has ${count} partitions but needs at least ${spec.minPartitions}, the input topic's count (records keep their input partition)`,
      );
    }
  }
}

/** Until every partition of `topics` has a leader (30 s at most; then transient). */
async function waitForLeaders(admin: Admin, topics: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const metadata = await fetchMetadata(admin, topics);
    if (topics.every((name) => metadata.topics.find((t) => t.name === name)?.partitions.every((p) => p.leader >= 0) === true)) return;
    if (Date.now() > deadline) throw new TransientError(`topics ${topics.join(', ')} have no leader 30 s after their creation`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Topic metadata, retried while the broker does not know a topic it has just created yet. */
async function fetchMetadata(admin: Admin, topics: string[]): ReturnType<Admin['fetchTopicMetadata']> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.fetchTopicMetadata({ topics });
    } catch (error) {
      if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' || attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

/**
 * Resolves once every partition of `topics` answers ListOffsets, i.e. its leader serves
 * it; throws the broker's error (e.g. NOT_LEADER_OR_FOLLOWER, transient) otherwise. Just
 * after creation the metadata can name a leader that has not taken the partition up yet:
 * a consumer started then gets "not the leader" on its first offset lookup and kafkajs
 * answers that with a rejoin of the whole group (a rebalance per such error).
 */
export async function waitUntilServed(admin: Admin, topics: readonly string[]): Promise<void> {
  for (const topic of topics) await admin.fetchTopicOffsets(topic);
}

/**
 * Partition count of an existing topic, or undefined if it does not exist. The topic list
 * leaves out topics we may not Describe; with `probeAccess` an unlisted topic is asked for by
 * name (the admin client never auto-creates), so not authorized is a NotAuthorizedError, not
 * "missing". Only for a caller that waits for someone else to create the topic: kafkajs keeps
 * the name in the admin's metadata targets, and a later createTopics on the same admin then
 * trips over it while it is being created.
 */
/**
 * Waits until `topic` exists and returns its partition count: its writer (another role) may
 * not have created it yet, which is not a failure. Says so every 30 s. A topic this client
 * may not Describe is not "missing": that is a NotAuthorizedError. Undefined once `stopped`.
 */
export async function waitForTopic(admin: Admin, topic: string, options: { stopped: () => boolean; logger: Pick<Logger, 'info'> }): Promise<number | undefined> {
  for (let waited = 0; ; waited++) {
    const count = await partitionCount(admin, topic, { probeAccess: true });
    if (count !== undefined) return count;
    if (options.stopped()) return undefined;
    if (waited % 30 === 0) options.logger.info('waiting for the topic to exist', { topic });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

export async function partitionCount(admin: Admin, topic: string, options: { probeAccess?: boolean } = {}): Promise<number | undefined> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic) && !options.probeAccess) return undefined;
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.length;
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === 'TOPIC_AUTHORIZATION_FAILED') {
      throw new NotAuthorizedError(`not authorized: TOPIC_AUTHORIZATION_FAILED (Describe on topic ${topic}); grant the ACLs listed in docs/operations.md`, { cause: error });
    }
    if (type === 'UNKNOWN_TOPIC_OR_PARTITION' && !topics.includes(topic)) return undefined;
    throw error;
  }
}
