#!/usr/bin/env node
import { loadConfig } from './config/config.js';
import { ConfigError } from './errors.js';
import { startHttpServer } from './http/server.js';
import { OrdoMetrics } from './metrics/metrics.js';
import { jsonLogger } from './observability/logger.js';
import type { Worker } from './engine/worker.js';
import { createPipelineWorker } from './roles/pipeline.js';

const ROLES = ['pipeline'] as const;
const USAGE = `usage: ordo <role>

roles:
  pipeline   consume usage events, stamp them with hybrid service time, and write
             them exactly once to the ordered topic (bad records to the DLQ)

Configuration comes from environment variables (docs/configuration.md).`;

async function main(argv: string[]): Promise<number> {
  const role = argv[0];
  if (role === undefined || role === '--help' || role === '-h' || role === 'help') {
    process.stdout.write(USAGE + '\n');
    return role === undefined ? 2 : 0;
  }
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
  const started: { worker?: Worker } = {};
  let stopRequested = false;
  const server = config.metricsPort > 0
    ? await startHttpServer({
        port: config.metricsPort,
        registry: metrics.registry,
        health: {
          state: () => started.worker?.state ?? 'starting',
          live: () => started.worker?.state !== 'failed',
          ready: () => started.worker?.state === 'running',
        },
      })
    : undefined;

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn('second signal: exiting without drain', { signal });
      process.exit(130);
    }
    logger.info('signal received: draining', { signal, graceMs: config.shutdownGraceMs });
    stopRequested = true;
    if (started.worker) void started.worker.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const worker = await createPipelineWorker(config, { logger, metrics });
  started.worker = worker;
  if (stopRequested) {
    server?.close();
    logger.info('exit', { state: 'stopped' });
    return 0;
  }

  try {
    await worker.start();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ordo: invalid configuration: ${error.message}\n`);
      server?.close();
      return 78;
    }
    throw error;
  }
  const final = await worker.done;
  server?.close();
  logger.info('exit', { state: final });
  return final === 'stopped' ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`ordo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
