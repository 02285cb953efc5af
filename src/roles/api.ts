import { queryRetention } from '../usage/retention.js';
import { createAuthenticator } from '../auth/authenticator.js';
import { isLoopbackHost } from '../config/api-auth.js';
import type { OrdoConfig } from '../config/config.js';
import { classify, fatalMessage } from '../engine/error-policy.js';
import { Lifecycle, exportLifecycle } from '../engine/lifecycle.js';
import { Liveness, type StuckReport } from '../engine/liveness.js';
import { startSchemaLedger } from '../engine/schema-ledger.js';
import { createKafka } from '../kafka/client.js';
import type { Kafka } from 'kafkajs';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { schemaIdsOf } from '../processors/decode.js';
import { startApiServer } from '../api/server.js';
import { FanOut, usagePartsRoutes } from '../api/fan-out.js';
import { PartitionedReadSide } from '../api/partitioned-read-side.js';
import { type CommittedPosition, ConsistencyWaiter } from '../api/consistency.js';
import { ResolverCache } from '../schema/resolvers.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { unframe } from '../schema/wire-format.js';
import { type UsageAggregate, usageAggregateType } from '../usage/aggregation.js';
import { MeterCatalog, loadMetersFile } from '../usage/meters.js';
import { ReceiptsService } from '../receipts/receipts-service.js';
import { receiptRoutes } from '../receipts/routes.js';
import { startDeadLetterReplay } from '../replay/start-replay.js';
import { startDeletionApi } from '../deletion/deletion-api.js';

/** The api role's consumer group: one per replica (each keeps its own read model). */
/** The api role's schema ledger reads as its own group (`<group>-api-schemas-<node>`), apart from the pipeline's. */
export function apiLedgerConfig<C extends Pick<OrdoConfig, 'groupId'>>(config: C): C {
  return { ...config, groupId: `${config.groupId}-api` };
}

export function apiGroupId(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-api-${config.nodeId}`.slice(0, 249);
}

/** The group every api replica shares over the aggregates topic (src/engine/partitioned-reader.ts). */
export function apiReadsGroupId(config: Pick<OrdoConfig, 'groupId'>): string {
  return `${config.groupId}-api-reads`;
}

/** The transactional id of this replica's dead-letter replays (src/replay): `<group>-api-<node>-replay`. */
export function replayTransactionalId(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-api-${config.nodeId}-replay`;
}

export type ApiState = 'restoring' | 'running' | 'draining' | 'stopped' | 'failed';

export interface ApiRole {
  /** HTTP port the query API listens on. */
  readonly port: number;
  /** This replica's share of the aggregates topic (its store, reader and node registry). */
  readonly readSide: PartitionedReadSide;
  /** The receipts and trails index (src/receipts/). */
  readonly receipts: ReceiptsService;
  /** restoring until this replica has read its partitions to the end they had when assigned. */
  state(): ApiState;
  /** Not failed and nothing stuck: what /healthz answers. */
  live(): boolean;
  /** What has made no progress for longer than ORDO_STUCK_AFTER_MS, if anything. */
  stuck(): StuckReport | undefined;
  /** Resolves with the final state. */
  readonly done: Promise<'stopped' | 'failed'>;
  /** Resolves when this replica has its partitions and has applied them up to their current end. */
  caughtUp(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The `api` role: the replicas share the compacted aggregates topic (each holds its
 * partitions in a local store) and answer usage queries over HTTP by routing each partition
 * to the replica holding it (src/api/partitioned-read-side.ts, fan-out.ts). It never reads
 * raw events; any replica answers the same, and each answer says who served it and how far
 * behind they were.
 */
export async function startApiRole(given: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics }): Promise<ApiRole> {
  // Its own copy of the read side's settings: the advertised address may take the bound port below.
  const apiReads = { ...given.apiReads };
  const config: OrdoConfig = { ...given, apiReads };
  if (config.apiAuth.mode === 'none' && !isLoopbackHost(config.apiHost)) {
    deps.logger.warn('the usage API answers anyone who can reach it: ORDO_API_AUTH=none on a non-loopback address; set ORDO_API_AUTH=token or jwt, or ORDO_API_HOST=127.0.0.1', {
      host: config.apiHost,
    });
  }
  const meters = new MeterCatalog(config.metersFile === undefined ? [] : loadMetersFile(config.metersFile));
  // Like the meters file, a missing or invalid tokens file stops the start (exit 78) before anything connects.
  const auth = createAuthenticator(config.apiAuth, { logger: deps.logger.child({ component: 'api-auth' }) });
  const resolvers = new ResolverCache(usageAggregateType);
  const log = deps.logger.child({ topic: config.topics.aggregates });
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger: deps.logger, security: config.security.kafka });
  // Aggregates name their schema by registry id too: the same ledger as the pipeline's guards them.
  const ledger = await startSchemaLedger(apiLedgerConfig(config), kafka, deps.logger);
  const catalog = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }, undefined, ledger);
  // Deletions in force before the first answer: a deleted subject answers 410 from the start.
  const deletion = await startDeletionApi(config, kafka, { ...deps, groupId: `${apiGroupId(config)}-deletions` }).catch(async (error: unknown) => {
    await ledger.stop();
    throw error;
  });

  // The same state machine and ordo_lifecycle_state gauge as the workers.
  const lifecycle = new Lifecycle();
  exportLifecycle(lifecycle, deps.metrics.lifecycleState);
  const liveness = new Liveness(config.stuckAfterMs);
  liveness.watchDrain(lifecycle, config.shutdownGraceMs);
  let failed: (error: unknown) => Promise<void> = () => Promise.resolve();
  const readSide = new PartitionedReadSide({
    kafka,
    config,
    groupId: apiReadsGroupId(config),
    ownGroupPrefix: apiGroupId(config),
    logger: deps.logger,
    liveness,
    prefetch: async (records) => {
      // Misreading every aggregate is worse than answering nothing: a conflict fails the role.
      await catalog.prefetch(schemaIdsOf(records));
    },
    decode: (record) => {
      const { schemaId, body } = unframe(record.value);
      const writer = catalog.writerType(schemaId);
      if (!writer) throw new Error(`schema id ${schemaId} is not in the registry`);
      const resolver = resolvers.resolverFor(writer);
      if (resolver instanceof Error) throw resolver;
      return usageAggregateType.fromBuffer(body, resolver) as UsageAggregate;
    },
    onSkipped: (record, error) => {
      deps.metrics.readModelSkipped.inc();
      log.warn('aggregate record skipped', { partition: record.partition, offset: record.offset, error });
    },
    onApplied: (size) => deps.metrics.readModelAggregates.set(size),
    onFailure: (error) => void failed(error),
  });
  // Windows stay readable until a margin before the pipeline may tombstone them (usage/retention.ts).
  const retention = queryRetention(config.retention.windows, config.allowedLatenessMs);
  const fanOut = new FanOut({ side: readSide, meters, retention, timeoutMs: config.apiReads.fanoutTimeoutMs, logger: deps.logger.child({ component: 'fan-out' }) });
  const consistency = consistencyWaiter(config, kafka, readSide, deps.logger);
  const receipts = new ReceiptsService({
    kafka,
    config,
    catalog,
    meters,
    logger: deps.logger.child({ component: 'receipts' }),
    metrics: deps.metrics,
    // Under the read model's group prefix: the api's group ACL covers it.
    group: `${apiGroupId(config)}-receipts`,
    onFailure: (error) => void failed(error),
  });
  try {
    await receipts.start();
  } catch (error) {
    await receipts.stop();
    await deletion.stop();
    await ledger.stop();
    throw error;
  }
  // Dead-letter replay (src/replay): its producer and topic come up before the server answers.
  const replay = await startDeadLetterReplay(config, {
    kafka,
    catalog,
    group: apiGroupId(config),
    transactionalId: replayTransactionalId(config),
    logger: deps.logger,
    metrics: deps.metrics,
    liveness,
    onFailure: (error) => void failed(error),
  }).catch(async (error: unknown) => {
    await receipts.stop();
    await deletion.stop();
    await ledger.stop();
    auth.close();
    throw error;
  });
  const server = await startApiServer({
    port: config.apiPort,
    host: config.apiHost,
    auth,
    onRefused: (error) => deps.metrics.apiRequestsRefused.inc({ kind: error.kind }),
    meters,
    partitioned: fanOut,
    retention,
    deleted: deletion.deleted,
    freshness: () => readSide.reader.progress(),
    consistency: {
      inputTopic: config.topics.input,
      waitMs: config.apiConsistencyWaitMs,
      wait: async (positions, timeoutMs) => {
        const started = process.hrtime.bigint();
        // The pipeline's commits only: the replicas holding the partitions wait for the aggregates.
        const outcome = await consistency.waiter.wait(positions, timeoutMs, { pipelineOnly: true });
        if ('awaiting' in outcome || outcome.consistent) {
          deps.metrics.apiConsistencyWait.observe({ outcome: outcome.consistent ? 'consistent' : 'timeout' }, Number(process.hrtime.bigint() - started) / 1e9);
        }
        return outcome;
      },
    },
    logger: deps.logger,
    routes: [...receiptRoutes(receipts, { deleted: deletion.deleted }), ...replay.routes, ...deletion.routes, ...usagePartsRoutes({ side: readSide, meters, deleted: deletion.deleted, retention })],
  });
  // An ephemeral port (ORDO_API_PORT=0) is advertised as the one bound, so the other replicas reach this one.
  const advertised = new URL(apiReads.advertisedUrl);
  if (advertised.port === '0') {
    advertised.port = String(server.port);
    apiReads.advertisedUrl = advertised.toString().replace(/\/+$/, '');
  }
  lifecycle.transition('restoring');
  const state = (): ApiState => lifecycle.state as ApiState;
  let finish: (final: 'stopped' | 'failed') => void = () => undefined;
  const done = new Promise<'stopped' | 'failed'>((resolve) => (finish = resolve));
  // The server answers (with its freshness) while the reader waits for the topic and catches up.
  // A reader that stops for good (e.g. a missing ACL) fails the role, also after it caught up.
  let failing: Promise<void> | undefined;
  failed = (error: unknown): Promise<void> =>
    (failing ??= (async () => {
      if (lifecycle.done || state() === 'draining') return;
      log.error(`read model failed: ${fatalMessage(error)}`, { error });
      lifecycle.transition('failed');
      consistency.waiter.close();
      await server.close().catch(() => undefined);
      auth.close();
      await consistency.stop();
      await readSide.stop();
      await receipts.stop();
      await replay.stop();
      await deletion.stop();
      await ledger.stop();
      finish('failed');
    })());
  const started = readSide.start();
  replay.follow();
  started
    .then(() => readSide.caughtUp())
    .then(() => replay.caughtUp())
    .then(() => {
      if (state() !== 'restoring') return;
      lifecycle.transition('running');
      log.info('read model caught up', { partitions: readSide.reader.ownedPartitions(), aggregates: readSide.store.size() });
    }, failed);
  const lagTimer = setInterval(() => deps.metrics.readModelLag.set(readSide.reader.progress().lagRecords ?? 0), 1_000);
  lagTimer.unref();
  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    readSide,
    receipts,
    state,
    live: () => state() !== 'failed' && liveness.stuck() === undefined,
    stuck: () => liveness.stuck(),
    done,
    caughtUp: () => started.then(() => readSide.caughtUp()).then(() => replay.caughtUp()),
    stop() {
      stopping ??= (async () => {
        if (state() !== 'failed') lifecycle.transition('draining');
        clearInterval(lagTimer);
        // A failed role has closed its server (and the auth) already.
        if (state() === 'failed') await failing;
        else {
          consistency.waiter.close();
          await server.close();
          auth.close();
          await consistency.stop();
        }
        await readSide.stop();
        await receipts.stop();
        await replay.stop();
        await deletion.stop();
        await ledger.stop();
        if (state() === 'draining') lifecycle.transition('stopped');
        finish(state() === 'failed' ? 'failed' : 'stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Read-your-writes (api/consistency.ts) over this role's Kafka client: the pipeline group's
 * committed input positions (OffsetFetch, only while a query waits) and this replica's read
 * model progress. The admin client connects on the first wait.
 */
function consistencyWaiter(config: OrdoConfig, kafka: Kafka, readSide: PartitionedReadSide, logger: Logger): { waiter: ConsistencyWaiter; stop(): Promise<void> } {
  const admin = kafka.admin();
  let connected: Promise<void> | undefined;
  const connect = (): Promise<void> => (connected ??= admin.connect().catch((error: unknown) => {
    connected = undefined;
    throw error;
  }));
  const waiter = new ConsistencyWaiter({
    aggregatesTopic: config.topics.aggregates,
    logger: logger.child({ component: 'consistency' }),
    describeFatal: (error) => (classify(error) === 'fatal' ? fatalMessage(error, `reading the committed positions of group ${config.groupId}`) : undefined),
    sources: {
      async committed() {
        await connect();
        const [topic] = await admin.fetchOffsets({ groupId: config.groupId, topics: [config.topics.input] });
        const positions = new Map<number, CommittedPosition>();
        for (const p of topic?.partitions ?? []) positions.set(p.partition, { offset: BigInt(p.offset), metadata: p.metadata });
        return positions;
      },
      applied: () => readSide.applied(),
      async endOffsets() {
        await connect();
        return new Map((await admin.fetchTopicOffsets(config.topics.aggregates)).map((o) => [o.partition, BigInt(o.high)]));
      },
    },
  });
  return {
    waiter,
    stop: async () => {
      waiter.close();
      if (connected) await admin.disconnect().catch(() => undefined);
    },
  };
}
