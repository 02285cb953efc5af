import type { Kafka, Producer } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { Liveness } from '../engine/liveness.js';
import { retrying } from '../engine/retry.js';
import { OrdoError, QueryError } from '../errors.js';
import { quoteClient as quote, sendJson } from '../http/json.js';
import { ensureTopics } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { deletionsTopicSpec } from '../accountability/topics.js';
import type { ApiRoute } from '../api/routes.js';
import { type DeletionFollower, startDeletionFollower } from './deletion-follower.js';
import { type Deletion, newDeletion, subjectProblem } from './deletions.js';
import type { DeletedLookup } from './subject-deleted.js';

/** What a DELETE answers (202) and GET /v1/deletions/{id} starts with. */
export interface DeletionView {
  id: string;
  subject: string;
  children: boolean;
  requestedAt: string;
}

export interface DeletionStatus extends DeletionView {
  by: string;
  /** requested: no task has finished its sweep yet; pending: some have; complete: every input partition's task has. */
  status: 'requested' | 'pending' | 'complete';
  sweep: { partitionsSwept: number; partitions: number | null; removed: number; late: number; completedAt: string | null };
  /** How far this replica's view of the deletions topic is behind it. */
  freshness: ReturnType<DeletionFollower['progress']>;
}

export interface DeletionRoutesOptions {
  follower: DeletionFollower;
  separator: string;
  /** Writes one record to the deletions topic (acks=all). */
  write(key: string, value: Deletion): Promise<void>;
  /** The pipeline's input topic (its tasks write the sweep markers) and how many partitions it has. */
  inputTopic: string;
  inputPartitions(): Promise<number | null>;
  metrics?: Pick<OrdoMetrics, 'deletionRequests'>;
  now?: () => number;
}

function view(d: Deletion): DeletionView {
  return { id: d.id, subject: d.subject, children: d.children, requestedAt: new Date(d.requestedAt).toISOString() };
}

/**
 * `DELETE /v1/subjects/{subject}` (admin; `?children=true`) and `GET /v1/deletions/{id}` (admin).
 * A deletion is ONE record in the deletions topic, whatever the subject holds: the pipeline
 * sweeps its state lazily. A repeat (on any replica, or concurrent) answers 202 with the same
 * id: a deletion this replica knows is answered without a write (with its first requestedAt);
 * concurrent requests on one replica share one write.
 */
export function deletionRoutes(options: DeletionRoutesOptions): ApiRoute[] {
  const { follower, separator } = options;
  const now = options.now ?? Date.now;
  const inFlight = new Map<string, Promise<Deletion>>();
  const count = (outcome: 'accepted' | 'repeated' | 'refused'): void => options.metrics?.deletionRequests.inc({ outcome });
  const remove: ApiRoute = {
    method: 'DELETE',
    path: '/v1/subjects/{subject}',
    scope: 'admin',
    async handle(params, request, res) {
      const subject = params.subject ?? '';
      const problem = subjectProblem(subject);
      if (problem !== undefined) {
        count('refused');
        throw new QueryError('bad-parameter', `subject ${quote(subject)}: ${problem}`);
      }
      const childrenParam = request.params.get('children');
      if (childrenParam !== null && childrenParam !== 'true' && childrenParam !== 'false') {
        count('refused');
        throw new QueryError('bad-parameter', `children: ${quote(childrenParam)} is not true or false`);
      }
      for (const name of request.params.keys()) {
        if (name !== 'children') {
          count('refused');
          throw new QueryError('bad-parameter', `unknown parameter ${quote(name)}; only children=true|false`);
        }
      }
      const children = childrenParam === 'true';
      const { key, value } = newDeletion(subject, children, separator, now(), request.principal.name);
      const known = follower.set.get(key);
      if (known !== undefined) {
        count('repeated');
        sendJson(res, 202, view(known));
        return;
      }
      let pending = inFlight.get(key);
      const first = pending === undefined;
      if (pending === undefined) {
        pending = options.write(key, value).then(() => {
          // In force on this replica at once; others see it within their freshness.
          follower.add(key, value);
          return follower.set.get(key) ?? value;
        });
        inFlight.set(key, pending);
        void pending.finally(() => inFlight.delete(key)).catch(() => undefined);
      }
      let written: Deletion;
      try {
        written = await pending;
      } catch (error) {
        throw new QueryError('unavailable', `the deletion could not be written to the deletions topic (${(error as Error).message}); retry: a repeat names the same deletion`, 503, {
          headers: { 'retry-after': '1' },
        });
      }
      count(first ? 'accepted' : 'repeated');
      sendJson(res, 202, view(written));
    },
  };
  const status: ApiRoute = {
    method: 'GET',
    path: '/v1/deletions/{id}',
    scope: 'admin',
    async handle(params, _request, res) {
      const id = params.id ?? '';
      const deletion = follower.set.byIdentifier(id);
      if (deletion === undefined) {
        throw new QueryError('not-found', `no deletion ${quote(id)} known to this replica (it reads the deletions topic with the freshness given)`, 404, {
          details: { freshness: follower.progress() },
        });
      }
      const markers = follower.sweptOf(id).filter((m) => m.topic === options.inputTopic);
      const partitions = await options.inputPartitions().catch(() => null);
      const swept = markers.length;
      const complete = partitions !== null && swept >= partitions;
      const body: DeletionStatus = {
        ...view(deletion),
        by: deletion.by,
        status: complete ? 'complete' : swept > 0 ? 'pending' : 'requested',
        sweep: {
          partitionsSwept: swept,
          partitions,
          removed: markers.reduce((n, m) => n + m.removed, 0),
          late: markers.reduce((n, m) => n + m.late, 0),
          completedAt: complete ? new Date(Math.max(...markers.map((m) => m.sweptAt))).toISOString() : null,
        },
        freshness: follower.progress(),
      };
      sendJson(res, 200, body);
    },
  };
  return [remove, status];
}

/** The api role's part in deletions: the topic, its follower, the producer, the routes and the lookup for reads. */
export interface DeletionApi {
  routes: ApiRoute[];
  deleted: DeletedLookup;
  follower: DeletionFollower;
  stop(): Promise<void>;
}

export async function startDeletionApi(
  config: Pick<OrdoConfig, 'topics' | 'deletion' | 'groupId' | 'nodeId' | 'stuckAfterMs' | 'createTopics' | 'replicationFactor'>,
  kafka: Kafka,
  /** groupId: the follower's group prefix (under the api replica's own, which its ACL covers). */
  deps: { logger: Logger; metrics?: Pick<OrdoMetrics, 'deletionRequests'>; groupId: string },
): Promise<DeletionApi> {
  await ensureDeletionsTopic(config, kafka, deps.logger);
  const follower = await startDeletionFollower(config, kafka, deps.logger, deps.groupId);
  // Idempotent, acks=all: one record per request, never duplicated by a retry; no transaction needed.
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const admin = kafka.admin();
  try {
    await producer.connect();
    await admin.connect();
  } catch (error) {
    await follower.stop();
    await producer.disconnect().catch(() => undefined);
    throw error;
  }
  let partitions: number | undefined;
  for (const outcome of ['accepted', 'repeated', 'refused'] as const) deps.metrics?.deletionRequests.inc({ outcome }, 0);
  const routes = deletionRoutes({
    follower,
    separator: config.deletion.separator,
    inputTopic: config.topics.input,
    metrics: deps.metrics,
    async write(key, value) {
      await producer.send({ topic: config.topics.deletions, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });
    },
    async inputPartitions() {
      if (partitions === undefined) {
        const meta = await admin.fetchTopicMetadata({ topics: [config.topics.input] });
        partitions = meta.topics[0]?.partitions.length;
      }
      return partitions ?? null;
    },
  });
  return {
    routes,
    deleted: (subject) => follower.set.match(subject),
    follower,
    async stop() {
      await producer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      await follower.stop();
    },
  };
}

/** Creates the deletions topic if needed (compacted, one partition), retrying a cluster that is still starting. */
export async function ensureDeletionsTopic(config: Pick<OrdoConfig, 'topics' | 'createTopics' | 'replicationFactor' | 'stuckAfterMs'>, kafka: Kafka, logger: Logger): Promise<void> {
  const created = await retrying(
    async () => {
      const admin = kafka.admin();
      try {
        await admin.connect();
        await ensureTopics(admin, [deletionsTopicSpec(config)], { create: config.createTopics, replicationFactor: config.replicationFactor });
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    { what: 'deletions topic', meta: { topic: config.topics.deletions }, log: logger, liveness: new Liveness(config.stuckAfterMs) },
  );
  if (!created.ok) throw created.why === 'abandoned' ? new OrdoError('deletions topic setup abandoned') : created.error;
}
