import { createAuthenticator } from '../auth/authenticator.js';
import { HybridClock } from '../clock/hybrid-clock.js';
import { systemClock } from '../clock/physical-clock.js';
import { formatServiceTime } from '../clock/service-time.js';
import { isLoopbackHost } from '../config/api-auth.js';
import type { OrdoConfig } from '../config/config.js';
import { fatalMessage } from '../engine/error-policy.js';
import { IngestWriter, WriteFailed, classifyFailure } from '../engine/ingest-writer.js';
import { Lifecycle, exportLifecycle } from '../engine/lifecycle.js';
import { Liveness, type StuckReport } from '../engine/liveness.js';
import { retrying } from '../engine/retry.js';
import { startSchemaLedger } from '../engine/schema-ledger.js';
import { ClockSkewError, OrdoError, QueryError } from '../errors.js';
import type { ListeningServer } from '../http/json.js';
import type { CheckedEvent } from '../ingest/cloudevents.js';
import { type Accepted, type ConnectorMapper, startIngestServer } from '../ingest/server.js';
import type { Kafka } from 'kafkajs';
import { createKafka } from '../kafka/client.js';
import { loadConnectors } from '../connectors/descriptor.js';
import { connectorMapper } from '../connectors/mapper.js';
import { type TopicSpec, ensureTopics } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import { encodeConsistencyToken } from '../model/consistency-token.js';
import type { TimeContext } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { usageEventSchema } from '../schema/usage-event.js';
import { frame } from '../schema/wire-format.js';
import { registerWithRetry } from './pipeline.js';

export type IngestState = 'starting' | 'restoring' | 'running' | 'draining' | 'stopped' | 'failed';

export interface IngestRole {
  /** HTTP port of the ingest API. */
  readonly port: number;
  state(): IngestState;
  live(): boolean;
  stuck(): StuckReport | undefined;
  readonly done: Promise<'stopped' | 'failed'>;
  stop(): Promise<void>;
}

/** The ingest's schema ledger reads as its own group (`<group>-ingest-schemas-<node>`). */
export function ingestLedgerConfig<C extends Pick<OrdoConfig, 'groupId'>>(config: C): C {
  return { ...config, groupId: `${config.groupId}-ingest` };
}

/** Transactional ids of one ingest instance: `<group>-ingest-<node>-<n>` (ORDO_NODE_ID must differ between replicas). */
export function ingestTransactionalIdPrefix(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-ingest-${config.nodeId}`;
}

/** The topics the ingest role writes or creates: the input topic (and the schema ledger's, created by the ledger). */
export function ingestTopicSpecs(config: Pick<OrdoConfig, 'topics' | 'topicPartitions'>): TopicSpec[] {
  return [{ topic: config.topics.input, partitions: config.topicPartitions }];
}

/**
 * The `ingest` role: CloudEvents over HTTP into the input topic. Each request's events are
 * stamped by this instance's hybrid clock (after receiving the caller's `service-time`, with
 * the pipeline's skew bound), encoded with the registered UsageEvent schema and written in
 * one transaction; the answer gives each event's position and consistency token. The
 * pipeline then treats the stamp as the event's time context, like any upstream service's.
 */
export async function startIngestRole(config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics; connectors?: ConnectorMapper; kafka?: Kafka }): Promise<IngestRole> {
  const { logger, metrics } = deps;
  if (config.apiAuth.mode === 'none' && !isLoopbackHost(config.ingest.host)) {
    logger.warn('the ingest API accepts events from anyone who can reach it: ORDO_API_AUTH=none on a non-loopback address; set ORDO_API_AUTH=token or jwt, or ORDO_INGEST_HOST=127.0.0.1', {
      host: config.ingest.host,
    });
  }
  // Like a bad tokens file, a bad connector stops the start (exit 78) before anything connects.
  const connectors = deps.connectors ?? (config.ingest.connectorsDir === undefined ? undefined : loadConnectorMapper(config.ingest.connectorsDir, logger));
  const auth = createAuthenticator(config.apiAuth, { logger: logger.child({ component: 'ingest-auth' }) });
  const lifecycle = new Lifecycle();
  exportLifecycle(lifecycle, metrics.lifecycleState, logger);
  const liveness = new Liveness(config.stuckAfterMs);
  liveness.watchDrain(lifecycle, config.shutdownGraceMs);
  // The accepted series exist from the start (at 0), so a rate over the first requests is seen.
  metrics.ingestRequests.inc({ outcome: 'accepted' }, 0);
  metrics.ingestEvents.inc({ outcome: 'accepted' }, 0);
  metrics.ingestRequestSeconds.zero({ outcome: 'accepted' });
  const kafka = deps.kafka ?? createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const topic = config.topics.input;

  const created = await retrying(
    async () => {
      const admin = kafka.admin();
      try {
        await admin.connect();
        await ensureTopics(admin, ingestTopicSpecs(config), { create: config.createTopics, replicationFactor: config.replicationFactor });
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
    { what: 'ingest topic setup', meta: { topic }, log: logger, liveness },
  );
  if (!created.ok) throw created.why === 'abandoned' ? new OrdoError('ingest start abandoned') : created.error;
  const ledger = await startSchemaLedger(ingestLedgerConfig(config), kafka, logger);
  const writer = new IngestWriter({ kafka, topic, transactionalIdPrefix: ingestTransactionalIdPrefix(config), producers: config.ingest.producers, logger });
  let schemaId: number;
  let server: ListeningServer;
  try {
    const catalog = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }, undefined, ledger);
    schemaId = await registerWithRetry(catalog, `${topic}-value`, usageEventSchema, logger, config.stuckAfterMs);
    lifecycle.transition('restoring');
    const started = await retrying(() => writer.start(), { what: 'ingest producers start', meta: { topic }, log: logger, liveness });
    if (!started.ok) throw started.why === 'abandoned' ? new OrdoError('ingest start abandoned') : started.error;
    const clock = new HybridClock({ node: config.nodeId, physical: systemClock, maxSkewMs: config.maxSkewMs });
    const accept = (events: CheckedEvent[], context: TimeContext | undefined): Promise<Accepted> => write({ events, context, clock, schemaId, topic, writer, logger });
    server = await startIngestServer({
      port: config.ingest.port,
      host: config.ingest.host,
      auth,
      maxEvents: config.ingest.maxEvents,
      maxBytes: config.ingest.maxBytes,
      requestTimeoutMs: config.ingest.requestTimeoutMs,
      accept,
      connectors,
      logger,
      onRefused: (error) => metrics.apiRequestsRefused.inc({ kind: error.kind }),
      onRequest: (outcome, events, seconds) => {
        metrics.ingestRequests.inc({ outcome });
        if (events > 0) metrics.ingestEvents.inc({ outcome }, events);
        metrics.ingestRequestSeconds.observe({ outcome }, seconds);
      },
    });
  } catch (error) {
    logger.error(`ingest start failed: ${fatalMessage(error, `the transactional ids ${ingestTransactionalIdPrefix(config)}-*`)}`, { error });
    await writer.stop().catch(() => undefined);
    await ledger.stop();
    auth.close();
    throw error;
  }
  lifecycle.transition('running');

  let finish: (final: 'stopped' | 'failed') => void = () => undefined;
  const done = new Promise<'stopped' | 'failed'>((resolve) => (finish = resolve));
  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    state: () => lifecycle.state,
    live: () => lifecycle.state !== 'failed' && liveness.stuck() === undefined,
    stuck: () => liveness.stuck(),
    done,
    stop() {
      stopping ??= (async () => {
        lifecycle.transition('draining');
        // No new requests; those in flight are answered (their transactions end) first.
        await server.close();
        await writer.stop();
        await ledger.stop();
        auth.close();
        lifecycle.transition('stopped');
        finish('stopped');
      })();
      return stopping;
    },
  };
}

function loadConnectorMapper(dir: string, logger: Logger): ConnectorMapper {
  const loaded = loadConnectors(dir);
  logger.info('connectors loaded', { dir, connectors: [...loaded.keys()].sort() });
  return connectorMapper(loaded);
}

/** One request: stamp every event, encode, write in one transaction, answer positions and tokens. */
async function write(o: {
  events: CheckedEvent[];
  context: TimeContext | undefined;
  clock: HybridClock;
  schemaId: number;
  topic: string;
  writer: IngestWriter;
  logger: Logger;
}): Promise<Accepted> {
  if (o.context !== undefined) {
    try {
      o.clock.receive(o.context.time);
    } catch (error) {
      if (error instanceof ClockSkewError) throw new QueryError('clock-skew', `${error.message}; nothing was written`);
      throw error;
    }
  }
  const node = o.clock.node;
  const stamps = o.events.map(() => formatServiceTime(o.clock.now()));
  const messages = o.events.map(({ event, headers, body }, i) => ({
    key: event.subject,
    value: frame(o.schemaId, body), // the body the pipeline's checks decoded
    headers: { ...headers, 'service-time': stamps[i]!, 'service-node': node },
  }));
  let positions;
  try {
    positions = await o.writer.write(messages);
  } catch (error) {
    if (!(error instanceof WriteFailed)) throw error;
    const fatal = classifyFailure(error) === 'fatal';
    (fatal ? o.logger.error : o.logger.warn).call(o.logger, 'ingest: a request could not be written; answered 503', { events: o.events.length, error });
    throw new QueryError('unavailable', 'the events could not be written to Kafka; nothing was written; retry the same request (its ids make a retry safe)', 503, {
      headers: { 'retry-after': fatal ? '30' : '1' },
    });
  }
  return {
    events: o.events.map(({ event }, i) => ({
      id: event.id,
      source: event.source,
      serviceTime: stamps[i]!,
      partition: positions[i]!.partition,
      offset: positions[i]!.offset,
      token: encodeConsistencyToken(positions[i]!),
    })),
    serviceTime: stamps[stamps.length - 1]!,
    serviceNode: node,
  };
}
