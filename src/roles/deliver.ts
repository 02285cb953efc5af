import type { Kafka } from 'kafkajs';
import { deletionsTopicSpec } from '../accountability/topics.js';
import { DeletionFollower } from '../deletion/deletion-follower.js';
import type { Deletion } from '../deletion/deletions.js';
import { createAuthenticator } from '../auth/authenticator.js';
import { isLoopbackHost } from '../config/api-auth.js';
import type { OrdoConfig } from '../config/config.js';
import type { RecordView } from '../commands/record-view.js';
import { RecordDecoder } from '../commands/record-view.js';
import { type DeliverSource, startDeliverServer } from '../deliver/server.js';
import { Sessions } from '../deliver/sessions.js';
import type { RecordViews } from '../deliver/delivery.js';
import { fatalMessage } from '../engine/error-policy.js';
import { Forwarder } from '../engine/forwarder.js';
import { Lifecycle, exportLifecycle } from '../engine/lifecycle.js';
import { Liveness } from '../engine/liveness.js';
import type { IngestRole, IngestState } from './ingest.js';
import { NodeRegistry } from '../engine/node-registry.js';
import { retrying } from '../engine/retry.js';
import { startSchemaLedger } from '../engine/schema-ledger.js';
import { SessionStore } from '../engine/session-store.js';
import { StreamSource } from '../engine/stream-source.js';
import { OrdoError, QueryError } from '../errors.js';
import { createKafka } from '../kafka/client.js';
import { type TopicSpec, ensureTopics } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import { STREAMS, type StreamName } from '../model/stream-cursor.js';
import type { Logger } from '../observability/logger.js';
import { schemaIdsOf } from '../processors/decode.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';

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
export function deliverTopicSpecs(config: Pick<OrdoConfig, 'topics' | 'deliver'>): TopicSpec[] {
  const t = config.topics;
  return [
    // Compaction keeps a session's records for two TTLs: what makes the state rebuilt after
    // compaction safe (src/deliver/session-state.ts explains why).
    { topic: t.sessions, partitions: 1, compacted: true, configs: { 'min.compaction.lag.ms': String(2 * config.deliver.sessionTtlMs) } },
    { topic: t.nodes, partitions: 1, compacted: true },
    { topic: t.forward, partitions: 1, configs: { 'retention.ms': FORWARD_RETENTION_MS } },
    { topic: t.replies, partitions: 1, configs: { 'retention.ms': FORWARD_RETENTION_MS } },
  ];
}

/** The handle of a role serving HTTP: the same as the ingest role's (its port, state, liveness, drain). */
export type DeliverState = IngestState;
export type DeliverRole = IngestRole;

/**
 * The `deliver` role: the ordered and global streams over HTTP (docs/delivery.md). One
 * StreamSource per stream feeds SSE streams and session reads; receiver sessions live in
 * the compacted sessions topic; requests for another replica's session are forwarded to it
 * through the broker, or the session is taken over when its owner is gone.
 *
 * Running (ready) once the sessions are read and the routing is up. A stream topic that
 * does not exist yet (the global topic before the merge role first ran) is waited for in the
 * background; its routes answer 503 stream-unavailable until then.
 */
export async function startDeliverRole(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics; kafka?: Kafka }): Promise<DeliverRole> {
  const { logger, metrics } = deps;
  const d = config.deliver;
  if (config.apiAuth.mode === 'none' && !isLoopbackHost(d.host)) {
    logger.warn('the deliver API streams events to anyone who can reach it: ORDO_API_AUTH=none on a non-loopback address; set ORDO_API_AUTH=token or jwt, or ORDO_DELIVER_HOST=127.0.0.1', { host: d.host });
  }
  // Like a bad tokens file for the other roles: stops the start (exit 78) before anything connects.
  const auth = createAuthenticator(config.apiAuth, { logger: logger.child({ component: 'deliver-auth' }) });
  const lifecycle = new Lifecycle();
  exportLifecycle(lifecycle, metrics.lifecycleState, logger);
  const liveness = new Liveness(config.stuckAfterMs);
  liveness.watchDrain(lifecycle, config.shutdownGraceMs);
  // The series exist from the start (at 0), so rates over the first requests are seen.
  for (const stream of STREAMS) {
    metrics.deliverStreams.set({ stream }, 0);
    metrics.deliverStreamRequests.inc({ stream, outcome: 'opened' }, 0);
    metrics.deliverOverflows.inc({ stream }, 0);
    // A histogram first seen with its final counts has no rate: its quantiles would be NaN.
    metrics.deliverDelay.zero({ stream });
  }
  metrics.deliverForwards.inc({ outcome: 'answered' }, 0);
  metrics.deliverTakeovers.inc({ outcome: 'won' }, 0);
  const kafka = deps.kafka ?? createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const groups = deliverGroupPrefix(config);
  const specs = [...deliverTopicSpecs(config), deletionsTopicSpec(config)];

  const created = await retrying(
    async () => {
      const admin = kafka.admin();
      try {
        await admin.connect();
        await ensureTopics(admin, specs, { create: config.createTopics, replicationFactor: config.replicationFactor });
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    { what: 'deliver topic setup', meta: { topics: specs.map((t) => t.topic) }, log: logger, liveness },
  );
  if (!created.ok) {
    auth.close();
    throw created.why === 'abandoned' ? new OrdoError('deliver start abandoned') : created.error;
  }

  let failed: (error: unknown) => void = () => undefined;
  const ledger = await startSchemaLedger(deliverLedgerConfig(config), kafka, logger);
  const catalog = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }, undefined, ledger);
  const decoder = new RecordDecoder(catalog);
  const views: RecordViews = async (records): Promise<RecordView[]> => {
    await catalog.prefetch(schemaIdsOf(records));
    return records.map((record) => decoder.view(record));
  };

  const started: Record<StreamName, boolean> = { ordered: false, global: false };
  const streamSource = (stream: StreamName): StreamSource =>
    new StreamSource({
      kafka,
      topic: config.topics[stream],
      groupId: `${groups}-${stream}`,
      tailRecords: d.tailRecords,
      maxCatchUps: d.maxCatchUps,
      logger,
      liveness,
      // The gauge counts both streams' catch-up readers: each source keeps its own count.
      onCatchUps: () => metrics.deliverCatchUps.set(STREAMS.reduce((open, s) => open + sources[s].openCatchUps(), 0)),
      onFailure: (error) => failed(error),
    });
  const sources: Record<StreamName, StreamSource> = { ordered: streamSource('ordered'), global: streamSource('global') };
  // What the server and the sessions see: a source whose topic is not there yet answers 503.
  const served = (stream: StreamName): DeliverSource => {
    const source = sources[stream];
    const ready = (): void => {
      if (!started[stream]) {
        throw new QueryError('stream-unavailable', `the ${stream} stream's topic ${config.topics[stream]} does not exist yet or is still being read${stream === 'global' ? ' (is the merge role running?)' : ''}; retry later`, 503, {
          headers: { 'retry-after': '5' },
        });
      }
    };
    return {
      partitions: () => (ready(), source.partitions()),
      bounds: async () => (ready(), source.bounds()),
      open: async (from) => (ready(), source.open(from)),
    };
  };
  const streams: Record<StreamName, DeliverSource> = { ordered: served('ordered'), global: served('global') };

  const store = new SessionStore({ kafka, topic: config.topics.sessions, groupId: `${groups}-sessions`, logger, liveness, onFailure: (error) => failed(error), onIgnored: (current) => sessions.heal(current) });
  const registry = new NodeRegistry({
    kafka,
    topic: config.topics.nodes,
    nodeId: config.nodeId,
    heartbeatMs: d.nodeHeartbeatMs,
    ttlMs: d.nodeTtlMs,
    groupId: `${groups}-nodes`,
    logger,
    liveness,
    onFailure: (error) => failed(error),
    onLiveNodes: (n) => metrics.deliverLiveNodes.set(n),
  });
  const forwarder = new Forwarder({
    kafka,
    forwardTopic: config.topics.forward,
    replyTopic: config.topics.replies,
    nodeId: config.nodeId,
    groupId: `${groups}-forward`,
    timeoutMs: d.forwardTimeoutMs,
    logger,
    liveness,
    onFailure: (error) => failed(error),
    metrics,
    serve: (request) => sessions.serveForwarded(request),
  });
  // Deleted subjects: 410 for streams and sessions filtered to one, left out of the others.
  const deletions = new DeletionFollower({ kafka, topic: config.topics.deletions, separator: config.deletion.separator, groupId: `${groups}-deletions`, logger, stuckAfterMs: config.stuckAfterMs });
  const deleted = (subject: string): Deletion | undefined => deletions.set.match(subject);
  const sessions: Sessions = new Sessions({
    deleted,
    nodeId: config.nodeId,
    sources: streams,
    views,
    store,
    router: {
      isLive: (node) => registry.isLive(node),
      goneFor: (node) => registry.goneFor(node),
      forward: (node, request, extraMs) => forwarder.forward(node, request, extraMs),
    },
    limits: d,
    metrics,
    logger: logger.child({ component: 'sessions' }),
  });

  lifecycle.transition('restoring');
  for (const stream of STREAMS) {
    sources[stream].start().then(
      () => {
        started[stream] = true;
        logger.info('stream source following', { stream, topic: config.topics[stream] });
      },
      (error: unknown) => failed(error),
    );
  }
  let server;
  try {
    await store.start();
    await registry.start();
    await forwarder.start();
    await deletions.start();
    sessions.start();
    server = await startDeliverServer({
      port: d.port,
      host: d.host,
      auth,
      onRefused: (error) => metrics.apiRequestsRefused.inc({ kind: error.kind }),
      logger,
      nodeId: config.nodeId,
      sources: streams,
      views,
      sessions,
      deleted,
      limits: d,
      metrics,
    });
  } catch (error) {
    logger.error(`deliver start failed: ${fatalMessage(error, `the deliver topics of ${groups}`)}`, { error });
    await closeAll();
    throw error;
  }
  const listening = server;
  lifecycle.transition('running');
  logger.info('deliver running', { port: listening.port, node: config.nodeId });

  async function closeAll(): Promise<void> {
    sessions.stop();
    await forwarder.stop().catch(() => undefined);
    // A clean stop says "leaving", so other replicas take this one's sessions over at once.
    await registry.stop().catch(() => undefined);
    await store.stop().catch(() => undefined);
    await Promise.all(STREAMS.map((s) => sources[s].stop().catch(() => undefined)));
    await deletions.stop().catch(() => undefined);
    await ledger.stop().catch(() => undefined);
    auth.close();
  }

  let finish: (final: 'stopped' | 'failed') => void = () => undefined;
  const done = new Promise<'stopped' | 'failed'>((resolve) => (finish = resolve));
  let stopping: Promise<void> | undefined;
  failed = (error: unknown): void => {
    if (lifecycle.done || lifecycle.state === 'draining' || lifecycle.state === 'failed') return;
    logger.error(`deliver failed: ${fatalMessage(error)}`, { error });
    lifecycle.transition('failed');
    stopping ??= (async () => {
      await listening.close().catch(() => undefined);
      await closeAll();
      finish('failed');
    })();
  };
  return {
    port: listening.port,
    state: () => lifecycle.state,
    live: () => lifecycle.state !== 'failed' && liveness.stuck() === undefined,
    stuck: () => liveness.stuck(),
    done,
    stop() {
      stopping ??= (async () => {
        lifecycle.transition('draining');
        // Streams end (clients reconnect elsewhere with their last id); session reads answer what they have.
        sessions.stop();
        await listening.close();
        await closeAll();
        lifecycle.transition('stopped');
        finish('stopped');
      })();
      return stopping;
    },
  };
}
