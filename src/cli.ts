#!/usr/bin/env node
import { processIo, runTokenCli } from './auth/token-cli.js';
import { COMMANDS, runCommand } from './commands/main.js';
import { runConnectorCli } from './commands/connector.js';
import { loadConfig } from './config/config.js';
import { ConfigError } from './errors.js';
import { checkKafkaAccess } from './kafka/access-check.js';
import { startHttpServer } from './http/server.js';
import { OrdoMetrics } from './metrics/metrics.js';
import { jsonLogger } from './observability/logger.js';
import type { OrdoConfig } from './config/config.js';
import type { Logger } from './observability/logger.js';
import { startApiRole } from './roles/api.js';
import { startIngestRole } from './roles/ingest.js';
import { startDeliverRole } from './roles/deliver.js';
import { createMergeWorker } from './roles/merge.js';
import { createPipelineWorker } from './roles/pipeline.js';

const ROLES = ['pipeline', 'api', 'merge', 'ingest', 'deliver'] as const;
/** A repeat of the first signal within this is the same request (see onSignal). */
const DUPLICATE_SIGNAL_MS = 1_000;
type Role = (typeof ROLES)[number];
const USAGE = `usage: ordo <role>
       ordo <command> ...

roles:
  pipeline   consume usage events, stamp them with hybrid service time, drop
             duplicates, aggregate them into the compacted aggregates topic and
             write them exactly once to the ordered topic (bad records to the DLQ,
             events too late for their window to the late topic)
  api        serve the usage query API (ORDO_API_PORT) from a read model that
             follows the aggregates topic
  merge      merge every partition of the ordered topic into the one-partition
             global topic (ORDO_GLOBAL_TOPIC) in total order; run exactly one
  ingest     accept CloudEvents over HTTP (ORDO_INGEST_PORT) into the input
             topic, one transaction per request, with consistency tokens
  deliver    serve the ordered and global streams over HTTP (ORDO_DELIVER_PORT):
             SSE streams that resume on any replica, receiver sessions

commands (ordo <command> --help):
  events produce|tail   publish UsageEvents; read any Ordo topic, decoded
  topics [--create]     every topic the roles need
  token new|hash        make an API token for ORDO_API_AUTH=token
  connector generate|upgrade|map   connector descriptors from an OpenAPI spec

Configuration comes from environment variables (docs/configuration.md).`;

async function main(argv: string[]): Promise<number> {
  const role = argv[0];
  if (role === 'token') return runTokenCli(argv.slice(1), processIo);
  if (role === 'connector') return runConnectorCli(argv.slice(1), processIo);
  if (role === undefined || role === '--help' || role === '-h' || role === 'help') {
    process.stdout.write(USAGE + '\n');
    return role === undefined ? 2 : 0;
  }
  if ((COMMANDS as readonly string[]).includes(role)) return runCommand(role as (typeof COMMANDS)[number], argv.slice(1), process.env);
  if (!(ROLES as readonly string[]).includes(role)) {
    process.stderr.write(`ordo: unknown role "${role}"\n\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ordo: invalid configuration: ${error.message}\n`);
      return 78; // EX_CONFIG
    }
    throw error;
  }
  const logger = jsonLogger(config.logLevel).child({ role, node: config.nodeId });
  const metrics = new OrdoMetrics({ defaultMetrics: true });
  // Health and signals come first: registering the schema may wait for the registry.
  const started: { handle?: RoleHandle } = {};
  let stopRequested = false;
  const server = config.metricsPort > 0
    ? await startHttpServer({
        port: config.metricsPort,
        host: config.metricsHost,
        registry: metrics.registry,
        health: {
          state: () => started.handle?.state() ?? 'starting',
          live: () => started.handle?.live() ?? true,
          ready: () => started.handle?.ready() ?? false,
          detail: () => {
            const stuck = started.handle?.stuck();
            return stuck === undefined ? undefined : { stuck };
          },
        },
      })
    : undefined;

  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first) {
      // One Ctrl-C can arrive twice: the terminal signals the whole process group, and a
      // parent such as npm forwards its own copy. Only a later one means "now".
      if (first.signal === signal && Date.now() - first.at < DUPLICATE_SIGNAL_MS) {
        logger.debug('same signal again within a second: still draining', { signal });
        return;
      }
      logger.warn('second signal: exiting without drain', { signal });
      process.exit(130);
    }
    first = { signal, at: Date.now() };
    logger.info('signal received: draining', { signal, graceMs: config.shutdownGraceMs });
    stopRequested = true;
    if (started.handle) void started.handle.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let handle: RoleHandle;
  try {
    handle = await startRole(role as Role, config, { logger, metrics }, () => stopRequested);
    started.handle = handle;
    if (stopRequested) await handle.stop();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ordo: invalid configuration: ${error.message}\n`);
      server?.close();
      return 78;
    }
    throw error;
  }
  const final = await handle.done;
  server?.close();
  logger.info('exit', { state: final });
  // A role that fails on its configuration exits 78 whenever it finds out: the merge role
  // checks its topics after the start returned (it may wait for the ordered topic first).
  const cause = handle.error();
  if (final === 'failed' && cause instanceof ConfigError) {
    process.stderr.write(`ordo: invalid configuration: ${cause.message}\n`);
    return 78;
  }
  return final === 'stopped' ? 0 : 1;
}

/** What the CLI needs of a running role: health, a drain, and its end. */
interface RoleHandle {
  state(): string;
  ready(): boolean;
  /** Not failed and not stuck (/healthz). */
  live(): boolean;
  stuck(): { what: string; forMs: number } | undefined;
  /** What made it fail, once it has. */
  error(): Error | undefined;
  stop(): Promise<void>;
  readonly done: Promise<string>;
}

async function startRole(role: Role, config: OrdoConfig, deps: { logger: Logger; metrics: OrdoMetrics }, stopRequested: () => boolean): Promise<RoleHandle> {
  await checkKafkaAccess(config, deps.logger); // wrong credentials / certificates: ConfigError, exit 78
  if (role === 'api') {
    const api = await startApiRole(config, deps);
    return { state: () => api.state(), ready: () => api.state() === 'running', live: () => api.live(), stuck: () => api.stuck(), error: () => undefined, stop: () => api.stop(), done: api.done };
  }
  if (role === 'ingest') {
    const ingest = await startIngestRole(config, deps);
    return { state: () => ingest.state(), ready: () => ingest.state() === 'running', live: () => ingest.live(), stuck: () => ingest.stuck(), error: () => undefined, stop: () => ingest.stop(), done: ingest.done };
  }
  if (role === 'deliver') {
    const deliver = await startDeliverRole(config, deps);
    return { state: () => deliver.state(), ready: () => deliver.state() === 'running', live: () => deliver.live(), stuck: () => deliver.stuck(), error: () => undefined, stop: () => deliver.stop(), done: deliver.done };
  }
  if (role === 'merge') {
    const merge = createMergeWorker(config, deps);
    // Started in the background: it may wait for the ordered topic, and a SIGTERM meanwhile
    // must reach it. A failed start ends in `failed` (done resolves; exit 78 on a ConfigError, else 1).
    if (!stopRequested()) void merge.start().catch(() => undefined);
    return { state: () => merge.state, ready: () => merge.ready, live: () => merge.live, stuck: () => merge.stuck, error: () => merge.error, stop: () => merge.stop(), done: merge.done };
  }
  const worker = await createPipelineWorker(config, deps);
  if (!stopRequested()) await worker.start();
  return {
    state: () => worker.state,
    ready: () => worker.state === 'running',
    live: () => worker.live,
    stuck: () => worker.stuck,
    error: () => worker.error,
    stop: () => worker.stop(),
    done: worker.done,
  };
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`ordo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
