/**
 * The ingest phase: events/s accepted through `POST /v1/events` in batches of 100 and 1,000
 * against the same events produced directly to Kafka the way the ingest writes them (encoded
 * Avro, 1,000 per transaction, as many transactional producers at once as the ingest has),
 * one run, same broker; plus the p50/p99 of the HTTP requests. The ingest role runs in this
 * process (auth none, 127.0.0.1); the HTTP client in a worker thread of it (its own event
 * loop, as a client elsewhere would be), with as many requests in flight as the ingest has
 * producers.
 */
import { Worker } from 'node:worker_threads';
import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../src/config/config.js';
import { loadConfig } from '../src/config/config.js';
import { assignPartitions, sendInOneTransaction } from '../src/kafka/transactional-send.js';
import { OrdoMetrics } from '../src/metrics/metrics.js';
import { noopLogger } from '../src/observability/logger.js';
import { startIngestRole } from '../src/roles/ingest.js';
import { encodeUsageEvent, type UsageEvent } from '../src/schema/usage-event.js';
import { SchemaCatalog } from '../src/schema/schema-catalog.js';
import { usageEventSchema } from '../src/schema/usage-event.js';
import { benchEvent } from './events.js';
import { benchKafka, cleanUp, nowMs } from './kafka.js';
import type { BenchParams } from './params.js';
import { type LatencySummary, ratio, summarise } from './stats.js';

export interface IngestBatchResult {
  batch: number;
  eventsPerSecond: number | null;
  requestMs: LatencySummary | null;
  /** eventsPerSecond / direct produce's. */
  vsDirect: number | null;
  refused: number;
}

export interface IngestResult {
  events: number;
  inFlight: number;
  directEventsPerSecond: number | null;
  batches: IngestBatchResult[];
  complete: boolean;
  error?: string;
}

const IN_FLIGHT = 4;

export async function runIngest(params: BenchParams, runPrefix: string, log: (line: string) => void): Promise<IngestResult> {
  const n = params.ingestEvents;
  const kafka = benchKafka(params.brokers, 'bench-ingest');
  const now = Date.now();
  const events: UsageEvent[] = Array.from({ length: n }, (_, i) => benchEvent(`ing-${i}`, i, i % params.subjects, 0, now));
  const result: IngestResult = { events: n, inFlight: IN_FLIGHT, directEventsPerSecond: null, batches: [], complete: false };
  try {
    log(`ingest: ${n} events, direct produce (1,000 per transaction, ${IN_FLIGHT} producers)`);
    result.directEventsPerSecond = await direct(kafka, params, `${runPrefix}-ingest-direct`, events);
    log(`  direct produce ${Math.round(result.directEventsPerSecond)} ev/s`);
    for (const batch of [100, 1_000]) {
      const topicPrefix = `${runPrefix}-ingest-${batch}`;
      const config = loadConfig({
        ...process.env,
        KAFKA_BROKERS: params.brokers.join(','),
        SCHEMA_REGISTRY_URL: params.registryUrl,
        ORDO_INPUT_TOPIC: `${topicPrefix}-in`,
        ORDO_GROUP_ID: `${topicPrefix}-g`,
        ORDO_SCHEMAS_TOPIC: `${runPrefix}-schemas`,
        ORDO_TOPIC_PARTITIONS: String(params.partitions),
        ORDO_INGEST_PORT: '0',
        ORDO_INGEST_HOST: '127.0.0.1',
        ORDO_INGEST_PRODUCERS: String(IN_FLIGHT),
        ORDO_INGEST_MAX_EVENTS: '1000',
        ORDO_INGEST_MAX_BYTES: String(4 * 1_048_576),
        ORDO_API_AUTH: 'none',
        ORDO_NODE_ID: 'bench-ingest',
      });
      const r = await overHttp(config, events, batch);
      result.batches.push({ ...r, vsDirect: ratio(r.eventsPerSecond, result.directEventsPerSecond) });
      log(`  HTTP batches of ${batch}: ${Math.round(r.eventsPerSecond ?? 0)} ev/s (${(ratio(r.eventsPerSecond, result.directEventsPerSecond) ?? 0).toFixed(2)}x direct), request p50 ${r.requestMs?.p50} ms, p99 ${r.requestMs?.p99} ms, ${r.refused} refused`);
    }
    result.complete = result.batches.every((b) => b.refused === 0 && b.eventsPerSecond !== null);
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    await cleanUp(kafka, `${runPrefix}-ingest-`).catch(() => undefined);
  }
  return result;
}

/** The ingest's Kafka work without HTTP: the same encoded records, 1,000 per transaction, IN_FLIGHT producers. */
async function direct(kafka: Kafka, params: BenchParams, topic: string, events: UsageEvent[]): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: params.partitions }], waitForLeaders: true });
  const partitionMetadata = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions;
  await admin.disconnect();
  const schemaId = await new SchemaCatalog(params.registryUrl).register(`${topic}-value`, usageEventSchema);
  const producers = await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, i) => {
      const p = kafka.producer({ transactionalId: `${topic}-${i}`, idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      return p;
    }),
  );
  const started = nowMs();
  let next = 0;
  await Promise.all(
    producers.map(async (producer) => {
      while (next < events.length) {
        const chunk = events.slice(next, (next += 1_000));
        const messages = assignPartitions(topic, partitionMetadata, chunk.map((e) => ({ key: e.subject, value: encodeUsageEvent(schemaId, e), headers: {} })));
        await sendInOneTransaction(producer, topic, messages);
      }
    }),
  );
  const seconds = (nowMs() - started) / 1000;
  await Promise.all(producers.map((p) => p.disconnect()));
  return events.length / seconds;
}

async function overHttp(config: OrdoConfig, events: UsageEvent[], batch: number): Promise<{ batch: number; eventsPerSecond: number | null; requestMs: LatencySummary | null; refused: number }> {
  const role = await startIngestRole(config, { logger: noopLogger, metrics: new OrdoMetrics() });
  try {
    const bodies: string[] = [];
    for (let from = 0; from < events.length; from += batch) {
      bodies.push(
        JSON.stringify(
          events.slice(from, from + batch).map((e) => ({
            specversion: '1.0',
            id: e.id,
            source: e.source,
            type: e.type,
            subject: e.subject,
            time: new Date(e.time).toISOString(),
            data: { value: e.value, dimensions: e.dimensions },
          })),
        ),
      );
    }
    const url = `http://127.0.0.1:${role.port}/v1/events`;
    const { latencies, refused, seconds } = await clientInWorker(url, bodies);
    return { batch, eventsPerSecond: events.length / seconds, requestMs: summarise(latencies), refused };
  } finally {
    await role.stop();
  }
}

/** The report's lines for the ingest phase. */
export function formatIngest(r: IngestResult): string {
  const rate = (v: number | null): string => (v === null ? '-' : `${Math.round(v).toLocaleString('en-US')} ev/s`);
  const lines = [`Ingest: ${r.events.toLocaleString('en-US')} events, ${r.inFlight} in flight; direct produce ${rate(r.directEventsPerSecond)}`];
  for (const b of r.batches) {
    lines.push(`  POST /v1/events x${b.batch}: ${rate(b.eventsPerSecond)} = ${b.vsDirect === null ? '-' : b.vsDirect.toFixed(2)}x direct; request p50 ${b.requestMs?.p50 ?? '-'} ms, p99 ${b.requestMs?.p99 ?? '-'} ms${b.refused > 0 ? `; ${b.refused} REFUSED` : ''}`);
  }
  if (r.error) lines.push(`  ERROR: ${r.error}`);
  return lines.join('\n');
}

/** The load generator, in a worker thread: plain JS, fetch with keep-alive, IN_FLIGHT requests at a time. */
const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, bodies, inFlight } = workerData;
(async () => {
  const latencies = [];
  let refused = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body });
      await res.arrayBuffer();
      latencies.push(performance.now() - t0);
      if (res.status !== 202) refused += 1;
    }
  }));
  parentPort.postMessage({ latencies, refused, seconds: (performance.now() - started) / 1000 });
})().catch((error) => parentPort.postMessage({ error: String(error) }));
`;

function clientInWorker(url: string, bodies: string[]): Promise<{ latencies: number[]; refused: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(CLIENT, { eval: true, workerData: { url, bodies, inFlight: IN_FLIGHT } });
    worker.once('message', (m: { latencies: number[]; refused: number; seconds: number; error?: string }) => {
      void worker.terminate();
      if (m.error) reject(new Error(`ingest load generator: ${m.error}`));
      else resolve(m);
    });
    worker.once('error', reject);
  });
}
