/**
 * The deliver phase (issue 13): how fast the `deliver` role hands a stream topic to HTTP
 * clients, against a plain kafkajs consumer reading the same topic (the baseline of the ratio;
 * target: one SSE client at 0.5x or more).
 *
 * N events shaped like the ordered topic (Confluent-framed Avro UsageEvents keyed by subject,
 * with `ordo-seq` per subject and the pipeline's time headers), over as many subjects as there
 * are filtered clients, are produced to fresh topics; then:
 *  (a) a kafkajs consumer (a group of its own, read_committed, no decoding) reads them all from
 *      earliest;
 *  (b) one SSE client reads them all from earliest (`from=earliest`, no filter). The server
 *      started after the topic was written, so its in-memory tail is empty: the client is a
 *      catch-up reader with a Kafka consumer of its own, like (a) plus decoding, JSON and HTTP;
 *  (c) on a server started before its topic was written, whose tail therefore holds every
 *      record: one SSE client from earliest (served from memory), then C clients at once, each
 *      filtered to one subject (`subject=cust-<k>`), together receiving all N;
 *  (d) end-to-end latency at BENCH_LATENCY_RATE ev/s: produce time (a `bench-sent-at` header)
 *      to receipt, by one SSE client from `latest` and by a kafkajs consumer, side by side.
 * The deliver role runs in this process (startDeliverRole, auth none, 127.0.0.1); the SSE
 * clients in a worker thread of it (their own event loop, as a client elsewhere would be), the
 * kafkajs consumers on the main thread.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Consumer, Kafka, Message, Producer } from 'kafkajs';
import { HybridClock } from '../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../src/clock/service-time.js';
import { loadConfig } from '../src/config/config.js';
import { OrdoMetrics } from '../src/metrics/metrics.js';
import { HEADER } from '../src/model/records.js';
import { noopLogger } from '../src/observability/logger.js';
import { startDeliverRole } from '../src/roles/deliver.js';
import { SchemaCatalog } from '../src/schema/schema-catalog.js';
import { usageEventSchema, usageEventType } from '../src/schema/usage-event.js';
import { frame } from '../src/schema/wire-format.js';
import { benchEvent, deleteSubject, produceAll } from './events.js';
import { benchKafka, benchSecurity, cleanUp, createTopics, nowMs, sleep, uniqueName, waitUntil, withTimeout } from './kafka.js';
import { type BenchParams, loadParams } from './params.js';
import { type LatencySummary, ratio, round2, summarise } from './stats.js';

/** A reader's figures over N records. */
export interface ReadRate {
  records: number;
  /** Read started (consumer run / first request sent) -> first record received. */
  startupMs: number | null;
  /** N / (read started -> all N received). */
  eventsPerSecond: number | null;
  /** (N - records in the first chunk) / (first chunk received -> all N received): without the start-up. */
  steadyEventsPerSecond: number | null;
  error?: string;
}

export interface FilteredRate {
  clients: number;
  /** Records all clients received together (= N). */
  records: number;
  /** N / (first request sent -> the last client has all its records). */
  eventsPerSecond: number | null;
  /** Per client: first request sent -> that client has all its records. */
  clientDoneMs: LatencySummary | null;
  /** Clients answered other than 200, or cut off (overflow, error). */
  failed: number;
  error?: string;
}

export interface DeliverLatency {
  targetRate: number;
  seconds: number;
  sent: number;
  /** Produce time -> receipt, per measured event. */
  sseMs: LatencySummary | null;
  consumerMs: LatencySummary | null;
  sseMissing: number;
  consumerMissing: number;
  sseDuplicates: number;
  error?: string;
}

export interface DeliverResult {
  events: number;
  partitions: number;
  subjects: number;
  /** (a) the baseline. */
  consumer: ReadRate | null;
  /** (b) one SSE client, catch-up reader. */
  sse: ReadRate | null;
  /** sse.steadyEventsPerSecond / consumer.steadyEventsPerSecond (target >= 0.5). */
  sseVsConsumer: number | null;
  /** (c) one SSE client from the in-memory tail. */
  sseFromTail: ReadRate | null;
  /** (c) C filtered clients from the tail. */
  filtered: FilteredRate | null;
  /** filtered.eventsPerSecond / consumer.eventsPerSecond. */
  filteredVsConsumer: number | null;
  /** (d) */
  latency: DeliverLatency | null;
  complete: boolean;
  error?: string;
}

const SENT_AT = 'bench-sent-at';
const SUBJECT_PREFIX = 'cust-';

export async function runDeliver(params: BenchParams, runPrefix: string, log: (line: string) => void): Promise<DeliverResult> {
  const n = params.deliverEvents;
  const clients = params.deliverClients;
  const prefix = `${runPrefix}-deliver-`;
  const kafka = benchKafka(params.brokers, 'bench-deliver');
  const result: DeliverResult = {
    events: n, partitions: params.partitions, subjects: clients, consumer: null, sse: null, sseVsConsumer: null,
    sseFromTail: null, filtered: null, filteredVsConsumer: null, latency: null, complete: false,
  };
  const subjectsRegistered: string[] = [];
  // In order, as the pipeline writes: a subject's ordo-seq must grow with its offsets.
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  try {
    await withTimeout(producer.connect(), 30_000, 'producer connect');
    const catalog = new SchemaCatalog({ url: params.registryUrl, security: benchSecurity().registry });
    const shaped = async (topic: string): Promise<OrderedShape> => {
      subjectsRegistered.push(`${topic}-value`);
      const schemaId = await withTimeout(catalog.register(`${topic}-value`, usageEventSchema), 30_000, `registering ${topic}-value`);
      return new OrderedShape(schemaId, clients);
    };

    // (a) and (b): one topic written before anything reads it.
    const backlog = `${prefix}backlog`;
    await createTopics(kafka, [backlog], params.partitions);
    const backlogShape = await shaped(backlog);
    const now = Date.now();
    const produceMs = await produceAll(producer, backlog, Array.from({ length: n }, (_, i) => backlogShape.message(i, now)), { inFlight: 1 });
    log(`deliver: ${n} events over ${clients} subjects produced to ${backlog} in ${produceMs} ms`);

    result.consumer = await consumerRead(kafka, backlog, `${backlog}-consumer`, n);
    log(`  (a) kafkajs consumer from earliest: ${rate(result.consumer.steadyEventsPerSecond)} (${rate(result.consumer.eventsPerSecond)} with its ${result.consumer.startupMs} ms start-up)${result.consumer.error ? `  ERROR: ${result.consumer.error}` : ''}`);

    const catchUpServer = await startServer(params, backlog, 0);
    try {
      result.sse = (await sseRead(`${catchUpServer.url}/v1/streams/ordered/events?from=earliest`, n)).rate;
    } finally {
      await catchUpServer.stop();
    }
    result.sseVsConsumer = ratio(result.sse.steadyEventsPerSecond, result.consumer.steadyEventsPerSecond);
    log(`  (b) one SSE client from earliest (catch-up): ${rate(result.sse.steadyEventsPerSecond)} = ${fixed(result.sseVsConsumer)}x the consumer (${rate(result.sse.eventsPerSecond)} with its ${result.sse.startupMs} ms start-up)${result.sse.error ? `  ERROR: ${result.sse.error}` : ''}`);

    // (c): a server whose tail holds the whole topic: written after it started.
    const tail = `${prefix}tail`;
    await createTopics(kafka, [tail], params.partitions);
    const tailShape = await shaped(tail);
    const tailServer = await startServer(params, tail, n);
    try {
      await produceAll(producer, tail, Array.from({ length: n }, (_, i) => tailShape.message(i, Date.now())), { inFlight: 1 });
      result.sseFromTail = (await sseRead(`${tailServer.url}/v1/streams/ordered/events?from=earliest`, n)).rate;
      log(`  (c) one SSE client from earliest (in-memory tail): ${rate(result.sseFromTail.steadyEventsPerSecond)}${result.sseFromTail.error ? `  ERROR: ${result.sseFromTail.error}` : ''}`);
      const expected = tailShape.countsPerSubject(n);
      result.filtered = await filteredRead(tailServer.url, expected);
      result.filteredVsConsumer = ratio(result.filtered.eventsPerSecond, result.consumer.eventsPerSecond);
      log(`  (c) ${clients} SSE clients, one subject each: ${rate(result.filtered.eventsPerSecond)} together = ${fixed(result.filteredVsConsumer)}x the consumer; a client done after p50 ${result.filtered.clientDoneMs?.p50 ?? '-'} ms, p99 ${result.filtered.clientDoneMs?.p99 ?? '-'} ms${result.filtered.failed > 0 ? `; ${result.filtered.failed} FAILED` : ''}${result.filtered.error ? `  ERROR: ${result.filtered.error}` : ''}`);
    } finally {
      await tailServer.stop();
    }

    // (d): paced production to a live topic, one SSE client and one consumer at its end.
    const live = `${prefix}live`;
    await createTopics(kafka, [live], params.partitions);
    const liveShape = await shaped(live);
    const liveServer = await startServer(params, live, 10_000);
    try {
      result.latency = await latency(params, kafka, producer, liveServer.url, live, liveShape, log);
      const l = result.latency;
      log(`  (d) produce -> receipt at ${l.targetRate} ev/s: SSE p50 ${l.sseMs?.p50 ?? '-'} ms, p99 ${l.sseMs?.p99 ?? '-'} ms; kafkajs consumer p50 ${l.consumerMs?.p50 ?? '-'} ms, p99 ${l.consumerMs?.p99 ?? '-'} ms${l.error ? `  ERROR: ${l.error}` : ''}`);
    } finally {
      await liveServer.stop();
    }

    result.complete =
      [result.consumer, result.sse, result.sseFromTail].every((r) => r.error === undefined && r.records === n) &&
      result.filtered.error === undefined && result.filtered.failed === 0 && result.filtered.records === n &&
      result.latency.error === undefined && result.latency.sseMissing === 0 && result.latency.consumerMissing === 0 && result.latency.sseDuplicates === 0;
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    await producer.disconnect().catch(() => undefined);
    await cleanUp(kafka, prefix, await groupsOf(kafka, prefix)).catch(() => undefined);
    for (const subject of subjectsRegistered) await deleteSubject(params.registryUrl, subject);
  }
  return result;
}

/** The consumer groups named after `prefix`: the phase's consumers and the deliver roles' (sessions, nodes, forwards, ledger). */
async function groupsOf(kafka: Kafka, prefix: string): Promise<string[]> {
  const admin = kafka.admin();
  try {
    await withTimeout(admin.connect(), 15_000, 'admin connect');
    return (await withTimeout(admin.listGroups(), 15_000, 'list groups')).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
  } catch {
    return [];
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The report's lines for the deliver phase. */
export function formatDeliver(r: DeliverResult): string {
  const lines = [`Deliver: ${r.events.toLocaleString('en-US')} events, ${r.partitions} partitions, ${r.subjects} subjects`];
  const read = (what: string, x: ReadRate | null, extra = ''): void => {
    if (x) lines.push(`  ${what}: ${rate(x.steadyEventsPerSecond)}${extra} (${rate(x.eventsPerSecond)} with ${x.startupMs ?? '-'} ms start-up)${x.error ? `  ERROR: ${x.error}` : ''}`);
  };
  read('kafkajs consumer from earliest', r.consumer);
  read('one SSE client from earliest (catch-up)', r.sse, ` = ${fixed(r.sseVsConsumer)}x the consumer (target 0.5x)`);
  read('one SSE client from the in-memory tail', r.sseFromTail);
  if (r.filtered) {
    lines.push(`  ${r.filtered.clients} SSE clients, one subject each: ${rate(r.filtered.eventsPerSecond)} together = ${fixed(r.filteredVsConsumer)}x the consumer; client done p50 ${r.filtered.clientDoneMs?.p50 ?? '-'} ms, p99 ${r.filtered.clientDoneMs?.p99 ?? '-'} ms${r.filtered.failed > 0 ? `; ${r.filtered.failed} FAILED` : ''}${r.filtered.error ? `  ERROR: ${r.filtered.error}` : ''}`);
  }
  if (r.latency) {
    const l = r.latency;
    lines.push(`  produce -> receipt at ${l.targetRate} ev/s x ${l.seconds} s: SSE p50 ${l.sseMs?.p50 ?? '-'} ms, p99 ${l.sseMs?.p99 ?? '-'} ms; kafkajs consumer p50 ${l.consumerMs?.p50 ?? '-'} ms, p99 ${l.consumerMs?.p99 ?? '-'} ms${l.sseMissing + l.consumerMissing > 0 ? `; MISSING sse ${l.sseMissing}, consumer ${l.consumerMissing}` : ''}${l.sseDuplicates > 0 ? `; ${l.sseDuplicates} DUPLICATES` : ''}${l.error ? `  ERROR: ${l.error}` : ''}`);
  }
  if (r.error) lines.push(`  ERROR: ${r.error}`);
  return lines.join('\n');
}

function rate(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${Math.round(v).toLocaleString('en-US')} ev/s`;
}

function fixed(v: number | null): string {
  return v === null ? '-' : v.toFixed(2);
}

/**
 * Records as the pipeline writes them to the ordered topic: keyed by subject, Avro in the
 * Confluent framing, Ordo's stamp as `service-time`/`service-node`, the order key as
 * `origin-service-*` (`ordo-origin: arrival`), and a gapless `ordo-seq` per subject.
 */
class OrderedShape {
  private readonly clock = new HybridClock({ node: 'bench-ordered' });
  private readonly seqs = new Map<number, bigint>();

  constructor(
    private readonly schemaId: number,
    private readonly subjects: number,
  ) {}

  /** Event `i` (id d-<tag><i>, subject `cust-<i mod subjects>`), timestamped `at`; the next `ordo-seq` of its subject. */
  message(i: number, at: number, options: { tag?: string; headers?: Record<string, string> } = {}): Message {
    const subject = i % this.subjects;
    const event = benchEvent(`d-${options.tag ?? ''}${i}`, i, subject, Math.floor(i / this.subjects), Math.floor(at));
    const seq = (this.seqs.get(subject) ?? 0n) + 1n;
    this.seqs.set(subject, seq);
    const stamp = formatServiceTime(this.clock.now());
    return {
      key: event.subject,
      value: frame(this.schemaId, usageEventType.toBuffer(event)),
      timestamp: String(Math.floor(at)),
      headers: {
        [HEADER.serviceTime]: stamp,
        [HEADER.serviceNode]: this.clock.node,
        [HEADER.originServiceTime]: stamp,
        [HEADER.originServiceNode]: this.clock.node,
        [HEADER.origin]: 'arrival',
        [HEADER.seq]: seq.toString(),
        ...options.headers,
      },
    };
  }

  /** How many of events 0..n-1 each subject has, by subject name. */
  countsPerSubject(n: number): Map<string, number> {
    const counts = new Map<string, number>();
    for (let s = 0; s < this.subjects; s++) counts.set(`${SUBJECT_PREFIX}${s}`, Math.floor(n / this.subjects) + (s < n % this.subjects ? 1 : 0));
    return counts;
  }
}

interface RunningServer {
  url: string;
  stop(): Promise<void>;
}

/**
 * The `deliver` role over `topic` as its ordered stream, in this process, with Ordo's default
 * limits but the tail (`tailRecords` per partition), its own sessions, nodes, forward, reply
 * and schema-ledger topics (named after `topic`, so the phase's clean-up deletes them), and a
 * global topic that is never created: nothing here reads the global stream. Resolves once the
 * ordered stream is served (the role runs before its stream sources follow their topics).
 */
async function startServer(params: BenchParams, topic: string, tailRecords: number): Promise<RunningServer> {
  const config = loadConfig({
    ...process.env,
    KAFKA_BROKERS: params.brokers.join(','),
    SCHEMA_REGISTRY_URL: params.registryUrl,
    ORDO_GROUP_ID: `${topic}-g`,
    ORDO_ORDERED_TOPIC: topic,
    ORDO_GLOBAL_TOPIC: `${topic}-global`,
    ORDO_SESSIONS_TOPIC: `${topic}-sessions`,
    ORDO_NODES_TOPIC: `${topic}-nodes`,
    ORDO_FORWARD_TOPIC: `${topic}-forward`,
    ORDO_REPLIES_TOPIC: `${topic}-replies`,
    ORDO_SCHEMAS_TOPIC: `${topic}-schemas`,
    ORDO_NODE_ID: 'bench-deliver',
    ORDO_API_AUTH: 'none',
    ORDO_DELIVER_PORT: '0',
    ORDO_DELIVER_HOST: '127.0.0.1',
    ORDO_DELIVER_TAIL_RECORDS: String(tailRecords),
  });
  const role = await withTimeout(startDeliverRole(config, { logger: noopLogger, metrics: new OrdoMetrics() }), 60_000, `the deliver role over ${topic}`);
  const url = `http://127.0.0.1:${role.port}`;
  const stop = async (): Promise<void> => {
    await withTimeout(role.stop(), 60_000, 'deliver role stop').catch(() => undefined);
  };
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const res = await fetch(`${url}/v1/streams/ordered/events?from=latest`, { signal: AbortSignal.timeout(10_000) });
      await res.body?.cancel();
      if (res.status === 200) break;
      if (res.status !== 503 || Date.now() > deadline) throw new Error(`the deliver role over ${topic} answers ${res.status} to a stream request`);
      await sleep(100);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/** (a): a kafkajs consumer group of its own reads `topic` from earliest until it has `n` records. */
async function consumerRead(kafka: Kafka, topic: string, groupId: string, n: number): Promise<ReadRate> {
  const consumer = kafka.consumer({ groupId, readUncommitted: false, allowAutoTopicCreation: false });
  const out: ReadRate = { records: 0, startupMs: null, eventsPerSecond: null, steadyEventsPerSecond: null };
  let first: { at: number; records: number } | undefined;
  let doneAt: number | undefined;
  let started = 0;
  try {
    await withTimeout(consumer.connect(), 30_000, 'consumer connect');
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    started = nowMs();
    await consumer.run({
      eachBatch: ({ batch }) => {
        const at = nowMs();
        if (batch.messages.length === 0) return Promise.resolve();
        out.records += batch.messages.length;
        first ??= { at, records: batch.messages.length };
        if (out.records >= n && doneAt === undefined) doneAt = at;
        return Promise.resolve();
      },
    });
    const done = await waitUntil(() => doneAt !== undefined, 120_000);
    if (!done) out.error = `only ${out.records} of ${n} records after 120 s`;
  } catch (error) {
    out.error = (error as Error).message;
  } finally {
    await withTimeout(consumer.disconnect(), 30_000, 'consumer disconnect').catch(() => undefined);
  }
  return withRates(out, n, started, first, doneAt);
}

function withRates(out: ReadRate, n: number, started: number, first: { at: number; records: number } | undefined, doneAt: number | undefined): ReadRate {
  if (first === undefined) return out;
  out.startupMs = round2(first.at - started);
  if (doneAt === undefined) return out;
  out.eventsPerSecond = round2((n / (doneAt - started)) * 1000);
  if (doneAt > first.at) out.steadyEventsPerSecond = round2(((n - first.records) / (doneAt - first.at)) * 1000);
  return out;
}

/** (b), (c): one SSE client (in the worker) until it has `n` records, each once and in order. */
async function sseRead(url: string, n: number): Promise<{ rate: ReadRate }> {
  const [client] = await countSse([{ url, expected: n, check: 'vector' }]);
  const out: ReadRate = { records: client!.records, startupMs: null, eventsPerSecond: null, steadyEventsPerSecond: null, ...(client!.error ? { error: client!.error } : {}) };
  const first = client!.firstAt === null ? undefined : { at: client!.firstAt, records: client!.firstChunk };
  return { rate: withRates(out, n, client!.startedAt, first, client!.doneAt ?? undefined) };
}

/** (c): one client per subject, all at once, from earliest. */
async function filteredRead(baseUrl: string, expected: Map<string, number>): Promise<FilteredRate> {
  const specs = [...expected].map(([subject, count]) => ({ url: `${baseUrl}/v1/streams/ordered/events?from=earliest&subject=${encodeURIComponent(subject)}`, expected: count, check: 'subject' as const }));
  const total = specs.reduce((a, s) => a + s.expected, 0);
  const clients = await countSse(specs);
  const failed = clients.filter((c) => c.error !== undefined || c.doneAt === null);
  const startedAt = Math.min(...clients.map((c) => c.startedAt));
  const done = clients.map((c) => c.doneAt).filter((t): t is number => t !== null);
  const lastDone = done.length === clients.length ? Math.max(...done) : null;
  return {
    clients: clients.length,
    records: clients.reduce((a, c) => a + c.records, 0),
    eventsPerSecond: lastDone === null ? null : round2((total / (lastDone - startedAt)) * 1000),
    clientDoneMs: summarise(done.map((t) => t - startedAt)),
    failed: failed.length,
    ...(failed.length > 0 ? { error: failed.slice(0, 3).map((c) => c.error ?? 'incomplete').join('; ') } : {}),
  };
}

/** (d): paced production; one SSE client (from latest, in the worker) and one consumer (at the end) receive it. */
async function latency(params: BenchParams, kafka: Kafka, producer: Producer, baseUrl: string, topic: string, shape: OrderedShape, log: (line: string) => void): Promise<DeliverLatency> {
  const { latencyRate: rateTarget, latencySeconds: seconds, latencyWarmupSeconds: warmupSeconds } = params;
  const out: DeliverLatency = { targetRate: rateTarget, seconds, sent: 0, sseMs: null, consumerMs: null, sseMissing: 0, consumerMissing: 0, sseDuplicates: 0 };
  const consumerSeen = new Map<string, number>();
  let consumerWarm = 0;
  const consumer: Consumer = kafka.consumer({ groupId: `${topic}-consumer`, readUncommitted: false, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 });
  const sse = new LatencyClient(`${baseUrl}/v1/streams/ordered/events?from=latest`);
  try {
    await withTimeout(consumer.connect(), 30_000, 'consumer connect');
    await consumer.subscribe({ topics: [topic], fromBeginning: false });
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
    await consumer.run({
      eachBatch: ({ batch }) => {
        const at = nowMs();
        for (const m of batch.messages) {
          const sent = Number(m.headers?.[SENT_AT]?.toString());
          const id = eventIdOf(m.value);
          if (id === undefined || !Number.isFinite(sent)) continue;
          if (id.startsWith('w')) consumerWarm++;
          else if (!consumerSeen.has(id)) consumerSeen.set(id, at - sent);
        }
        return Promise.resolve();
      },
    });
    if (!(await waitUntil(() => joined, 30_000))) throw new Error('the latency consumer did not join its group within 30 s');
    await sse.ready();
    // A join is not a fetch position yet: give the consumer a moment to fetch its (latest) offsets.
    await sleep(500);

    const sent = new Set<string>();
    if (warmupSeconds > 0) {
      const warm = await pacedDeliver(producer, topic, shape, 'w', rateTarget, warmupSeconds, () => undefined);
      const ok = await waitUntil(() => consumerWarm >= warm && sse.warm() >= warm, 60_000);
      if (!ok) throw new Error(`warm-up: the consumer saw ${consumerWarm}, the SSE client ${sse.warm()} of ${warm} events after 60 s`);
    }
    log(`  measuring ${rateTarget} ev/s for ${seconds} s`);
    out.sent = await pacedDeliver(producer, topic, shape, 'm', rateTarget, seconds, (id) => sent.add(id));
    await waitUntil(() => consumerSeen.size >= out.sent && sse.seen() >= out.sent, 30_000);
    const fromSse = await sse.stop();
    out.sseMs = summarise([...fromSse.latencies.values()]);
    out.consumerMs = summarise([...consumerSeen.values()]);
    out.sseMissing = [...sent].filter((id) => !fromSse.latencies.has(id)).length;
    out.consumerMissing = [...sent].filter((id) => !consumerSeen.has(id)).length;
    out.sseDuplicates = fromSse.duplicates;
    if (fromSse.error) out.error = fromSse.error;
  } catch (error) {
    out.error = (error as Error).message;
  } finally {
    await sse.stop().catch(() => undefined);
    await withTimeout(consumer.disconnect(), 30_000, 'consumer disconnect').catch(() => undefined);
  }
  return out;
}

/** Event ids are d-<i>; paced ones carry their phase in the id's prefix (w: warm-up, m: measured). */
function eventIdOf(value: Buffer | null): string | undefined {
  if (!value || value.length < 6) return undefined;
  try {
    return (usageEventType.fromBuffer(value.subarray(5)) as { id: string }).id.slice(2);
  } catch {
    return undefined;
  }
}

/**
 * Sends `rate * seconds` events on a steady schedule (bench/phases.ts' pacing), each with its
 * send time in the `bench-sent-at` header. Ids: d-<phase><i>. Returns the count sent.
 */
async function pacedDeliver(producer: Producer, topic: string, shape: OrderedShape, phase: 'w' | 'm', rateTarget: number, seconds: number, onSend: (id: string) => void): Promise<number> {
  const total = Math.max(1, Math.round(rateTarget * seconds));
  const tickMs = Math.max(1, Math.min(10, 1000 / rateTarget));
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((rateTarget * (performance.now() - start)) / 1000) + 1);
    if (due > sent) {
      const now = nowMs();
      const messages: Message[] = [];
      for (let i = sent; i < due; i++) {
        // The event id carries the phase, so both readers can tell warm-up from measured events.
        messages.push(shape.message(i, now, { tag: phase, headers: { [SENT_AT]: String(now) } }));
        onSend(`${phase}${i}`);
      }
      sent = due;
      await withTimeout(producer.send({ topic, messages, acks: -1 }), 30_000, `paced send to ${topic}`);
    }
    if (performance.now() - start > seconds * 1000 + 60_000) throw new Error('paced production fell more than 60 s behind');
    await sleep(tickMs);
  }
  return sent;
}

// ---- the SSE clients, in a worker thread ----

export interface CountedClient {
  status: number | null;
  records: number;
  /** Request sent (epoch ms, sub-ms). */
  startedAt: number;
  /** First chunk with records received, and how many it held. */
  firstAt: number | null;
  firstChunk: number;
  /** The expected count reached. */
  doneAt: number | null;
  error?: string;
}

/**
 * Plain JS for the worker. `count`: each client reads its stream until it has `expected`
 * records (lines `event: record`), then aborts; a non-200 answer, an `overflow`/`error`
 * event or an id showing a gap or a repeat ends it with an error. `latency`: one client; each record's data is parsed for its
 * `bench-sent-at` header and event id; `ready` once the answer's headers came, results on `stop`.
 */
const CLIENTS = `
const { parentPort, workerData } = require('node:worker_threads');
const now = () => performance.timeOrigin + performance.now();

function lines(onLine) {
  const decoder = new TextDecoder();
  let rest = '';
  return (chunk, last) => {
    const text = rest + decoder.decode(chunk, { stream: !last });
    const parts = text.split('\\n');
    rest = parts.pop();
    for (const line of parts) onLine(line);
  };
}

async function read(url, signal, onResponse, onLines) {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal });
  onResponse(res);
  if (res.status !== 200) {
    const body = await res.text();
    throw new Error('HTTP ' + res.status + ': ' + body.slice(0, 300));
  }
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    if (onLines(value)) return;
  }
}

// Every record's id is the cursor after it. On a fresh topic read from earliest, the k-th
// record's vector cursor sums to k (every offset is a record), and one subject's k-th has
// ordo-seq k: anything else is a gap or a repeat.
function checkId(spec, id, k) {
  if (spec.check === 'vector') {
    const parts = id.split('.');
    let sum = 0;
    for (let i = 1; i < parts.length; i++) sum += Number(parts[i]);
    if (parts[0] !== 'v' || sum !== k) return 'record ' + k + ' has the cursor ' + id + ': a gap or a repeat';
  } else if (spec.check === 'subject') {
    const parts = id.split('.');
    if (parts[0] !== 's' || Number(parts[1]) !== k) return 'record ' + k + ' of the subject has the cursor ' + id + ' (ordo-seq ' + parts[1] + '): a gap or a repeat';
  }
  return undefined;
}

async function count(spec) {
  const out = { status: null, records: 0, startedAt: now(), firstAt: null, firstChunk: 0, doneAt: null };
  const controller = new AbortController();
  let event = '';
  let chunkRecords = 0;
  let ids = 0;
  let failure;
  const feed = lines((line) => {
    if (line.startsWith('id: ')) failure = failure || checkId(spec, line.slice(4), ++ids);
    else if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data:')) {
      if (event === 'record') chunkRecords++;
      else if (event === 'overflow' || event === 'error') failure = event + ': ' + line.slice(5, 300);
    } else if (line === '') event = '';
  });
  try {
    await read(spec.url, controller.signal, (res) => (out.status = res.status), (chunk) => {
      chunkRecords = 0;
      feed(chunk, false);
      const at = now();
      if (chunkRecords > 0 && out.firstAt === null) { out.firstAt = at; out.firstChunk = chunkRecords; }
      out.records += chunkRecords;
      if (failure) throw new Error(failure);
      if (out.records >= spec.expected) { out.doneAt = at; controller.abort(); return true; }
      return false;
    });
    if (out.doneAt === null) out.error = 'the stream ended after ' + out.records + ' of ' + spec.expected + ' records';
  } catch (error) {
    if (out.doneAt === null) out.error = String(error && error.message ? error.message : error);
  }
  return out;
}

async function latency(spec) {
  const controller = new AbortController();
  const latencies = new Map();
  let warm = 0;
  let duplicates = 0;
  let event = '';
  let error;
  parentPort.on('message', (m) => {
    if (m === 'stop') controller.abort();
    if (m === 'progress') parentPort.postMessage({ progress: { warm, seen: latencies.size } });
  });
  const feed = lines((line) => {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data:') && event === 'record') {
      const at = now();
      const record = JSON.parse(line.slice(5));
      const sent = Number(record.headers && record.headers['${SENT_AT}']);
      const id = record.value && record.value.id ? String(record.value.id).slice(2) : undefined;
      if (id === undefined || !Number.isFinite(sent)) return;
      if (id.startsWith('w')) warm++;
      else if (latencies.has(id)) duplicates++;
      else latencies.set(id, at - sent);
    } else if (line.startsWith('data:') && (event === 'overflow' || event === 'error')) error = event + ': ' + line.slice(5, 300);
    else if (line === '') event = '';
  });
  try {
    await read(spec.url, controller.signal, (res) => parentPort.postMessage({ ready: res.status }), (chunk) => { feed(chunk, false); return false; });
  } catch (e) {
    if (!controller.signal.aborted) error = String(e && e.message ? e.message : e);
  }
  parentPort.postMessage({ result: { latencies: [...latencies], duplicates, error } });
}

(async () => {
  if (workerData.mode === 'count') parentPort.postMessage({ result: await Promise.all(workerData.clients.map(count)) });
  else await latency(workerData);
})().catch((error) => parentPort.postMessage({ error: String(error) }));
`;

/** What a counting client checks of its records' ids (see checkId in CLIENTS). */
export type IdCheck = 'vector' | 'subject';

/** SSE clients in the worker, each until it has `expected` records, each once and in order (see CLIENTS). */
export function countSse(clients: { url: string; expected: number; check: IdCheck }[]): Promise<CountedClient[]> {
  return inWorker<CountedClient[]>({ mode: 'count', clients });
}

function inWorker<T>(data: { mode: 'count'; clients: { url: string; expected: number; check: IdCheck }[] }): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(CLIENTS, { eval: true, workerData: data });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error('SSE clients: not done within 300 s'));
    }, 300_000);
    worker.once('message', (m: { result?: T; error?: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      if (m.error !== undefined) reject(new Error(`SSE clients: ${m.error}`));
      else resolve(m.result as T);
    });
    worker.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The latency phase's SSE client: in the worker, from `latest`, until stopped. */
class LatencyClient {
  private readonly worker: Worker;
  private readonly answered: Promise<number>;
  private readonly finished: Promise<{ latencies: Map<string, number>; duplicates: number; error?: string }>;
  private progress = { warm: 0, seen: 0 };
  private stopped = false;

  constructor(url: string) {
    this.worker = new Worker(CLIENTS, { eval: true, workerData: { mode: 'latency', url } });
    let answer: (status: number) => void = () => undefined;
    this.answered = new Promise((resolve) => (answer = resolve));
    this.finished = new Promise((resolve, reject) => {
      this.worker.on('message', (m: { ready?: number; progress?: { warm: number; seen: number }; result?: { latencies: [string, number][]; duplicates: number; error?: string }; error?: string }) => {
        if (m.ready !== undefined) answer(m.ready);
        if (m.progress) this.progress = m.progress;
        if (m.result) resolve({ latencies: new Map(m.result.latencies), duplicates: m.result.duplicates, ...(m.result.error ? { error: m.result.error } : {}) });
        if (m.error !== undefined) reject(new Error(`SSE latency client: ${m.error}`));
      });
      this.worker.once('error', reject);
    });
    this.finished.catch(() => undefined);
    const poll = setInterval(() => this.worker.postMessage('progress'), 50);
    poll.unref();
    void this.finished.finally(() => clearInterval(poll));
  }

  /** Resolves once the stream answered 200 (its reader is open at the end); rejects otherwise. */
  async ready(): Promise<void> {
    const status = await withTimeout(Promise.race([this.answered, this.finished.then(() => 0)]), 30_000, 'the SSE latency stream to open');
    if (status !== 200) throw new Error(`the SSE latency stream answered ${status}: ${(await this.finished).error ?? ''}`);
  }

  warm(): number {
    return this.progress.warm;
  }

  seen(): number {
    return this.progress.seen;
  }

  async stop(): Promise<{ latencies: Map<string, number>; duplicates: number; error?: string }> {
    if (!this.stopped) {
      this.stopped = true;
      this.worker.postMessage('stop');
    }
    try {
      return await withTimeout(this.finished, 10_000, 'the SSE latency client to stop');
    } finally {
      void this.worker.terminate();
    }
  }
}

// This phase alone, e.g. `BENCH_DELIVER_EVENTS=5000 npx tsx bench/deliver.ts` (prints the
// report's lines and the result as JSON; no result file).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
  const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
  runDeliver(loadParams(), uniqueName('bench'), log).then(
    (result) => {
      process.stdout.write(`${formatDeliver(result)}\n${JSON.stringify(result, null, 2)}\n`);
      process.exit(result.complete ? 0 : 1);
    },
    (error: unknown) => {
      log(`failed: ${(error as Error).stack ?? String(error)}`);
      process.exit(1);
    },
  );
}
