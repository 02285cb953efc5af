/**
 * The scale bench's baseline, run as a child process (`node --expose-gc --import tsx
 * bench/scale-baseline.ts`): today's single api replica, every aggregate of the topic in an
 * in-memory ReadModel, followed by the same TopicReader and served by the same HTTP server,
 * without receipts, deletions or replay (they hold nothing per aggregate). Once caught up it
 * prints one JSON line on stdout (ScaleBaselineReady) and serves until SIGTERM.
 *
 * Environment: KAFKA_BROKERS, SCHEMA_REGISTRY_URL as for Ordo; SCALE_TOPIC, SCALE_METERS_FILE.
 */
import { ReadModel } from '../src/api/read-model.js';
import { startApiServer } from '../src/api/server.js';
import { noAuthentication } from '../src/auth/authenticator.js';
import { loadConfig } from '../src/config/config.js';
import { TopicReader } from '../src/engine/topic-reader.js';
import { createKafka } from '../src/kafka/client.js';
import { noopLogger } from '../src/observability/logger.js';
import { unframe } from '../src/schema/wire-format.js';
import { type UsageAggregate, usageAggregateType } from '../src/usage/aggregation.js';
import { MeterCatalog, loadMetersFile } from '../src/usage/meters.js';

export interface ScaleBaselineReady {
  port: number;
  aggregates: number;
  loadMs: number;
  /** After a full GC. */
  heapUsedBytes: number;
  rssBytes: number;
}

async function main(): Promise<void> {
  const topic = process.env.SCALE_TOPIC;
  const metersFile = process.env.SCALE_METERS_FILE;
  if (!topic || !metersFile) throw new Error('SCALE_TOPIC and SCALE_METERS_FILE must be set');
  const config = loadConfig(process.env);
  const meters = new MeterCatalog(loadMetersFile(metersFile));
  const readModel = new ReadModel(meters);
  const kafka = createKafka({ brokers: config.brokers, clientId: 'bench-scale-baseline', logger: noopLogger, security: config.security.kafka });
  const started = performance.now();
  // The generator wrote one schema id for every record (bench/scale-generate.ts): the writer is the reader's schema.
  const reader = new TopicReader({
    kafka,
    topic,
    groupId: `${topic}-baseline`,
    logger: noopLogger,
    apply: (records) => {
      for (const r of records) {
        if (r.key === null) continue;
        if (r.value === null) readModel.remove(r.key.toString('utf8'));
        else readModel.apply(r.key.toString('utf8'), usageAggregateType.fromBuffer(unframe(r.value).body) as UsageAggregate);
      }
    },
  });
  await reader.start();
  await reader.caughtUp();
  const loadMs = Math.round(performance.now() - started);
  const server = await startApiServer({ port: 0, host: '127.0.0.1', meters, readModel, freshness: () => reader.progress(), auth: noAuthentication });
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const memory = process.memoryUsage();
  const ready: ScaleBaselineReady = { port: server.port, aggregates: readModel.size, loadMs, heapUsedBytes: memory.heapUsed, rssBytes: memory.rss };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const stop = (): void => {
    void Promise.allSettled([server.close(), reader.stop()]).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`scale-baseline: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
