import type { Kafka } from 'kafkajs';
import { replaysTopicSpec } from '../accountability/topics.js';
import type { ApiRoute } from '../api/routes.js';
import type { OrdoConfig } from '../config/config.js';
import type { Liveness } from '../engine/liveness.js';
import { fatalMessage } from '../engine/error-policy.js';
import { retrying } from '../engine/retry.js';
import { TopicReader } from '../engine/topic-reader.js';
import { OrdoError } from '../errors.js';
import { ensureTopics } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { DeadLetterSource } from './dead-letter-source.js';
import { LetterCodec } from './letter-codec.js';
import { ReplaySet } from './replay-record.js';
import { replayRoutes } from './replay-routes.js';
import { ReplayService } from './replay-service.js';
import { ReplayWriter } from './replay-writer.js';

export interface DeadLetterReplay {
  routes: ApiRoute[];
  /** Starts following the replays topic (in the background; replays answer 503 until it has read to its end). */
  follow(): void;
  /** Resolves once the replays topic has been read to its end (as it was when called). */
  caughtUp(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Dead-letter replay for the api role: creates the replays topic, initialises the
 * transactional producer (`transactionalId`, one per replica: a restart fences its
 * predecessor), and follows the replays topic so that every replica knows what was replayed.
 * `group` prefixes the consumer groups of its readers (replays follower, DLQ scans).
 */
export async function startDeadLetterReplay(
  config: OrdoConfig,
  deps: { kafka: Kafka; catalog: SchemaCatalog; group: string; transactionalId: string; logger: Logger; metrics: OrdoMetrics; liveness: Liveness; onFailure(error: unknown): void },
): Promise<DeadLetterReplay> {
  const log = deps.logger.child({ component: 'dlq-replay' });
  const created = await retrying(
    async () => {
      const admin = deps.kafka.admin();
      try {
        await admin.connect();
        await ensureTopics(admin, [replaysTopicSpec(config)], { create: config.createTopics, replicationFactor: config.replicationFactor });
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    { what: 'replays topic setup', meta: { topic: config.topics.replays }, log, liveness: deps.liveness },
  );
  if (!created.ok) throw created.why === 'abandoned' ? new OrdoError('replay start abandoned') : created.error;
  const writer = new ReplayWriter({ kafka: deps.kafka, inputTopic: config.topics.input, replaysTopic: config.topics.replays, transactionalId: deps.transactionalId, logger: log });
  const started = await retrying(() => writer.start(), { what: 'replay producer start', meta: { transactionalId: deps.transactionalId }, log, liveness: deps.liveness });
  if (!started.ok) {
    if (started.why !== 'abandoned') log.error(`dead-letter replay start failed: ${fatalMessage(started.error, `the transactional id ${deps.transactionalId}`)}`, { error: started.error });
    await writer.stop();
    throw started.why === 'abandoned' ? new OrdoError('replay start abandoned') : started.error;
  }
  const replays = new ReplaySet();
  const reader = new TopicReader({
    kafka: deps.kafka,
    topic: config.topics.replays,
    groupId: `${deps.group}-replays`,
    apply: (records) => {
      for (const r of records) if (r.key !== null) replays.apply(r.key.toString('utf8'), r.value);
    },
    logger: log,
    liveness: deps.liveness,
    onFailure: deps.onFailure,
  });
  const source = new DeadLetterSource({ kafka: deps.kafka, topic: config.topics.dlq, group: `${deps.group}-dlq`, logger: log });
  let ready = false;
  const service = new ReplayService({
    source,
    writer,
    replays,
    codec: new LetterCodec(deps.catalog, config.topics.input),
    inputTopic: config.topics.input,
    ready: () => ready,
    onOutcome: (outcome, n) => deps.metrics.dlqReplays.inc({ outcome }, n),
    logger: log,
  });
  let following: Promise<void> | undefined;
  const caughtUp = (): Promise<void> => (following ?? Promise.resolve()).then(() => reader.caughtUp());
  return {
    routes: replayRoutes(service),
    follow() {
      following ??= reader.start();
      caughtUp().then(
        () => {
          ready = true;
          log.info('replays topic read', { replayed: replays.size });
        },
        deps.onFailure,
      );
    },
    caughtUp,
    async stop() {
      await reader.stop();
      await source.stop();
      await writer.stop();
    },
  };
}
