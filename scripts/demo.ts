/**
 * npm run demo: starts the local Kafka + registry unless KAFKA_BROKERS is set, runs the
 * pipeline in-process on fresh demo topics, publishes events from simulated upstream
 * services (passing service time to each other), and prints what came out, DLQ included.
 * ORDO_DEMO_KEEP=1 keeps the topics and the local stack afterwards. It prints only its
 * tables and a summary; `npm run demo -- --verbose` adds the workers' logs (info and up).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { HybridClock } from '../src/clock/hybrid-clock.js';
import { counterOf, formatServiceTime, makeServiceTime, millisOf, parseServiceTime } from '../src/clock/service-time.js';
import { loadConfig } from '../src/config/config.js';
import { kafkaSecurityOptions } from '../src/kafka/client.js';
import { OrdoMetrics } from '../src/metrics/metrics.js';
import { jsonLogger } from '../src/observability/logger.js';
import { startApiRole } from '../src/roles/api.js';
import { startIngestRole } from '../src/roles/ingest.js';
import { startDeliverRole } from '../src/roles/deliver.js';
import { createPipelineWorker } from '../src/roles/pipeline.js';
import { type UsageAggregate, usageAggregateType } from '../src/usage/aggregation.js';
import { SchemaCatalog } from '../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventSchema, usageEventType } from '../src/schema/usage-event.js';
import { frame } from '../src/schema/wire-format.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const root = fileURLToPath(new URL('..', import.meta.url));
const keep = process.env.ORDO_DEMO_KEEP === '1';
const verbose = process.argv.slice(2).includes('--verbose');
for (const arg of process.argv.slice(2)) {
  if (arg !== '--verbose') {
    console.error(`demo: unknown argument ${arg} (usage: npm run demo [-- --verbose])`);
    process.exit(2);
  }
}

let startedStack = false;
if (!process.env.KAFKA_BROKERS) {
  const kafkaPort = Number(process.env.KAFKA_PORT ?? '9092');
  const registryPort = Number(process.env.REGISTRY_PORT ?? '8081');
  const running = (await portOpen(kafkaPort)) && (await portOpen(registryPort));
  if (!running) {
    console.log('KAFKA_BROKERS is not set: starting the local Kafka + schema registry (npm run kafka:up)...');
    const up = spawnSync('bash', ['scripts/kafka/up.sh'], { cwd: root, stdio: 'inherit' });
    if (up.status !== 0) process.exit(up.status ?? 1);
    startedStack = true;
  }
  process.env.KAFKA_BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
  process.env.SCHEMA_REGISTRY_URL ??= `http://127.0.0.1:${process.env.REGISTRY_PORT ?? '8081'}/apis/ccompat/v7`;
}

// The demo's meters (docs/meters.example.yaml is a fuller example).
const metersFile = join(mkdtempSync(join(tmpdir(), 'ordo-demo-')), 'meters.yaml');
writeFileSync(
  metersFile,
  `meters:
  - { slug: api-calls, eventType: api.request, aggregation: COUNT, groupBy: { region: region } }
  - { slug: api-spend, eventType: api.request, aggregation: SUM, windows: [HOUR, DAY, MONTH] }
  - { slug: invoiced, eventType: invoice.line, aggregation: SUM, windows: [DAY, MONTH] }
  - { slug: llm-tokens, eventType: llm.completion, aggregation: SUM, valueProperty: dimensions.tokens, windows: [DAY] }
`,
);

const run = `demo-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
const config = loadConfig({
  ...process.env,
  ORDO_GROUP_ID: `${run}-pipeline`,
  ORDO_INPUT_TOPIC: `${run}-usage-events`,
  ORDO_ORDERED_TOPIC: `${run}-usage-events-ordered`,
  ORDO_DLQ_TOPIC: `${run}-usage-events-dlq`,
  ORDO_LATE_TOPIC: `${run}-usage-events-late`,
  ORDO_AGGREGATES_TOPIC: `${run}-usage-aggregates`,
  ORDO_WATERMARKS_TOPIC: `${run}-usage-events-watermarks`,
  ORDO_GLOBAL_TOPIC: `${run}-usage-events-global`,
  ORDO_SESSIONS_TOPIC: `${run}-deliver-sessions`,
  ORDO_NODES_TOPIC: `${run}-deliver-nodes`,
  ORDO_FORWARD_TOPIC: `${run}-deliver-forward`,
  ORDO_REPLIES_TOPIC: `${run}-deliver-replies`,
  ORDO_DELIVER_PORT: '0',
  ORDO_DELIVER_HOST: '127.0.0.1',
  ORDO_METERS_FILE: metersFile,
  ORDO_API_PORT: '0',
  ORDO_API_HOST: '127.0.0.1', // queried from this process only (and no warning about an open API)
  ORDO_INGEST_PORT: '0',
  ORDO_INGEST_HOST: '127.0.0.1',
  ORDO_NODE_ID: process.env.ORDO_NODE_ID ?? 'ordo-demo',
  ORDO_TOPIC_PARTITIONS: '3',
  ORDO_METRICS_PORT: '0',
});
const kafka = new Kafka({ brokers: config.brokers, clientId: 'ordo-demo', logLevel: logLevel.NOTHING, ...kafkaSecurityOptions(config.security.kafka) });

async function main(): Promise<void> {
  // Errors always show; the routine logs of a start (assignments, restores) only with --verbose.
  const logger = jsonLogger(verbose ? 'info' : 'error');
  const metrics = new OrdoMetrics();
  const worker = await createPipelineWorker(config, { logger, metrics });
  await worker.start();
  console.log(`\npipeline running: ${config.topics.input} -> ${config.topics.ordered} + ${config.topics.aggregates} (DLQ ${config.topics.dlq}, late ${config.topics.late})\n`);

  const schemaId = await new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }).register(`${config.topics.input}-value`, usageEventSchema);
  const encode = (e: UsageEvent): Buffer => frame(schemaId, usageEventType.toBuffer(e));
  const now = Date.now();
  const ev = (id: string, source: string, subject: string, value: string, type = 'api.request'): UsageEvent => ({
    id, source, type, subject, time: now, value, dimensions: { region: 'eu-west-1' },
  });

  // Upstream services with their own hybrid clocks: checkout calls billing, which calls
  // ledger; each passes its service time on, so the events form a causal chain.
  const checkout = new HybridClock({ node: 'checkout-1' });
  const billing = new HybridClock({ node: 'billing-7' });
  const ledger = new HybridClock({ node: 'ledger-2' });
  const t1 = checkout.now();
  const t2 = billing.receive(t1);
  const t3 = ledger.receive(t2);
  const ctx = (t: bigint, node: string) => ({ 'service-time': formatServiceTime(t), 'service-node': node });

  const messages = [
    // Published out of causal order on purpose: the ledger's event first.
    { key: 'acme', value: encode(ev('ledger-1', 'ledger', 'acme', '12.50', 'ledger.posted')), headers: ctx(t3, 'ledger-2') },
    { key: 'acme', value: encode(ev('checkout-1', 'checkout', 'acme', '1', 'checkout.completed')), headers: ctx(t1, 'checkout-1') },
    { key: 'acme', value: encode(ev('billing-1', 'billing', 'acme', '12.50', 'invoice.line')), headers: ctx(t2, 'billing-7') },
    // No time context: Ordo stamps from its own clock.
    { key: 'globex', value: encode(ev('gw-1', 'api-gateway', 'globex', '3')) },
    { key: 'globex', value: encode(ev('gw-2', 'api-gateway', 'globex', '0.75')) },
    { key: 'initech', value: encode(ev('gw-3', 'api-gateway', 'initech', '42')) },
    { key: 'initech', value: encode({ ...ev('llm-1', 'llm-proxy', 'initech', '1', 'llm.completion'), dimensions: { tokens: '1250' } }) },
    // An upstream retry of gw-1: the same (source, id), counted once.
    { key: 'globex', value: encode(ev('gw-1', 'api-gateway', 'globex', '3')) },
    // 40 days old: beyond the allowed lateness (35 days), set aside on the late topic.
    { key: 'globex', value: encode({ ...ev('gw-old', 'api-gateway', 'globex', '9'), time: now - 40 * 86_400_000 }) },
    // Bad input: each goes to the DLQ with a reason, nothing is lost.
    { key: 'broken-json', value: Buffer.from('{"subject":"acme","value":1}') },
    { key: 'not-a-number', value: encode(ev('nan-1', 'api-gateway', 'acme', 'NaN')) },
    { key: 'from-the-future', value: encode(ev('skew-1', 'batch-job', 'acme', '5')), headers: ctx(makeServiceTime(now + 3_600_000, 0), 'batch-job') },
    { key: 'bad-header', value: encode(ev('hdr-1', 'api-gateway', 'acme', '1')), headers: { 'service-time': 'yesterday' } },
    { key: 'bad-tokens', value: encode({ ...ev('llm-2', 'llm-proxy', 'initech', '1', 'llm.completion'), dimensions: { tokens: 'lots' } }) },
  ];
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: config.topics.input, messages });
  await producer.disconnect();
  console.log(`published ${messages.length} records from simulated services (checkout -> billing -> ledger, api-gateway, llm-proxy; a retry, a late one and 5 bad ones)\n`);

  // The front door: a service without a Kafka client posts a CloudEvent over HTTP to the
  // ingest role, passing its service time on like the others; the answer names the record
  // and carries a consistency token for read-your-writes queries.
  const ingest = await startIngestRole(config, { logger, metrics: new OrdoMetrics() });
  const storefront = new HybridClock({ node: 'storefront-3' });
  const posted = await fetch(`http://127.0.0.1:${ingest.port}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents+json', ...ctx(storefront.now(), 'storefront-3') },
    body: JSON.stringify({ specversion: '1.0', id: 'web-1', source: 'storefront', type: 'api.request', subject: 'acme', data: { value: '2', dimensions: { region: 'eu-west-1' } } }),
  });
  const answer = (await posted.json()) as { events: { token: string }[] };
  storefront.receive(parseServiceTime(posted.headers.get('service-time')!));
  console.log(`== POST /v1/events (the ingest role, over HTTP) -> ${posted.status} ==`);
  console.log(JSON.stringify(answer, null, 2).split('\n').map((l) => `  ${l}`).join('\n'));
  console.log(`  (response header service-time: ${posted.headers.get('service-time')}, the storefront's context for its next hop)\n`);
  await ingest.stop();

  const ordered = await read(config.topics.ordered, 8);
  const dlq = await read(config.topics.dlq, 5);
  const late = await read(config.topics.late, 1);

  console.log('== usage-events-ordered (read_committed; acme\'s chain was published ledger first, it comes out in causal order) ==');
  table(
    ordered.map((m) => {
      const e = usageEventType.fromBuffer(m.value!.subarray(5)) as UsageEvent;
      return {
        partition: String(m.partition),
        subject: e.subject,
        'ordo-seq': m.headers['ordo-seq'] ?? '-',
        id: e.id,
        value: e.value,
        'order key (origin-service-*)': `${show(m.headers['origin-service-time']!)} (${m.headers['origin-service-node'] ?? ''})`,
        'service-time (ordo)': show(m.headers['service-time']!),
      };
    }),
  );
  console.log('\n== usage-events-dlq ==');
  table(dlq.map((m) => ({ key: m.key ?? '', reason: m.headers['ordo-dlq-reason'] ?? '', offset: `${m.headers['ordo-source-partition']}/${m.headers['ordo-source-offset']}`, error: (m.headers['ordo-dlq-error'] ?? '').slice(0, 90) })));

  console.log('\n== usage-events-late ==');
  table(late.map((m) => ({ key: m.key ?? '', reason: m.headers['ordo-late-reason'] ?? '', detail: (m.headers['ordo-late-detail'] ?? '').slice(0, 100) })));

  const aggregates = new Map<string, UsageAggregate>();
  for (const m of await read(config.topics.aggregates, 1, 2_000)) aggregates.set(m.key ?? '', usageAggregateType.fromBuffer(m.value!.subarray(5)) as UsageAggregate);
  console.log('\n== usage-aggregates (compacted; latest version per key) ==');
  table(
    [...aggregates.values()]
      .sort((a, b) => `${a.meter}${a.subject}${a.windowSize}`.localeCompare(`${b.meter}${b.subject}${b.windowSize}`))
      .map((a) => ({ meter: a.meter, subject: a.subject, groupBy: JSON.stringify(a.groupBy), window: `${a.windowSize} ${new Date(a.windowStart).toISOString().slice(0, 16)}`, value: a.value, count: String(a.count), version: String(a.version) })),
  );

  await streamResumingOnAnotherReplica(logger);

  console.log('\nmetrics (excerpt):');
  for (const line of (await metrics.registry.metrics()).split('\n')) {
    if (/^ordo_(events_|clock_skew_rejected|transaction_commit_seconds_count)/.test(line)) console.log(`  ${line}`);
  }
  await worker.stop();

  // The api role: a read model over the aggregates topic, queried over HTTP.
  const api = await startApiRole(config, { logger, metrics: new OrdoMetrics() });
  await api.caughtUp();
  const day = new Date(now - (now % 86_400_000)).toISOString();
  const nextDay = new Date(now - (now % 86_400_000) + 86_400_000).toISOString();
  // consistentWith: answered only once the event posted over HTTP is in the number (read-your-writes).
  const url = `http://127.0.0.1:${api.port}/v1/meters/api-spend/usage?from=${day}&to=${nextDay}&windowSize=HOUR&groupBy=subject&consistentWith=${answer.events[0]!.token}`;
  console.log(`\n== GET ${url.replace(/^http:\/\/[^/]+/, '')} ==`);
  console.log(JSON.stringify(await (await fetch(url)).json(), null, 2).split('\n').map((l) => `  ${l}`).join('\n'));
  await api.stop();

  const sent = messages.length + 1; // and one over HTTP
  console.log(
    `\nsummary: ${sent} records published (one through the ingest role) -> ${ordered.length} ordered, ${dlq.length} dead-lettered, ${late.length} late, ` +
      `${sent - ordered.length - dlq.length - late.length} duplicate dropped; ${aggregates.size} aggregates` +
      (verbose ? '' : ' (npm run demo -- --verbose shows the workers\' logs)'),
  );
}

/**
 * The deliver role: two replicas serve the ordered stream over Server-Sent Events. A client
 * reads acme's first events from replica A, drops the connection, and resumes on replica B
 * with the last event id it saw (Last-Event-ID): no gap, no repeat.
 */
async function streamResumingOnAnotherReplica(logger: ReturnType<typeof jsonLogger>): Promise<void> {
  const a = await startDeliverRole({ ...config, nodeId: 'deliver-a' }, { logger, metrics: new OrdoMetrics() });
  const b = await startDeliverRole({ ...config, nodeId: 'deliver-b' }, { logger, metrics: new OrdoMetrics() });
  const rows: Record<string, string>[] = [];
  const take = async (replica: string, port: number, lastId: string | undefined, count: number): Promise<string | undefined> => {
    const url = `http://127.0.0.1:${port}/v1/streams/ordered/events?subject=acme${lastId === undefined ? '&from=earliest' : ''}`;
    let last = lastId;
    for await (const event of sse(url, lastId === undefined ? {} : { 'last-event-id': lastId }, count)) {
      const record = JSON.parse(event.data) as { value: UsageEvent; headers: Record<string, string> };
      rows.push({ replica, 'SSE id (cursor)': event.id, 'ordo-seq': record.headers['ordo-seq'] ?? '-', id: record.value.id, type: record.value.type });
      last = event.id;
    }
    return last;
  };
  const last = await take('A', a.port, undefined, 2);
  await take('B (Last-Event-ID)', b.port, last, 2);
  console.log(`\n== GET /v1/streams/ordered/events?subject=acme (the deliver role: 2 events from replica A, the connection dropped, resumed on replica B) ==`);
  table(rows);
  await a.stop();
  await b.stop();
}

/** The first `count` `record` events of an SSE stream (a minimal reader; browsers have EventSource). */
async function* sse(url: string, headers: Record<string, string>, count: number): AsyncGenerator<{ id: string; data: string }> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (!res.ok || !res.body) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let seen = 0;
  const timer = setTimeout(() => controller.abort(), 30_000);
  try {
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const fields = new Map(buffer.slice(0, end).split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]));
        buffer = buffer.slice(end + 2);
        if (fields.get('event') !== 'record') continue;
        yield { id: fields.get('id') ?? '', data: fields.get('data') ?? '' };
        if (++seen === count) return;
      }
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

interface Seen {
  partition: number;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

async function read(topic: string, expected: number, settleMs = 0): Promise<Seen[]> {
  const consumer = kafka.consumer({ groupId: `${run}-reader-${topic}`, maxWaitTimeInMs: 100 });
  const out: Seen[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = String(Array.isArray(v) ? v[0] : v);
      out.push({ partition, key: message.key?.toString() ?? null, value: message.value, headers });
      await Promise.resolve();
    },
  });
  const deadline = Date.now() + 60_000;
  while (out.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
  await consumer.disconnect();
  return out;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function show(hex: string): string {
  const t = parseServiceTime(hex);
  return `${hex} = ${new Date(millisOf(t)).toISOString().slice(11, 23)}+${counterOf(t)}`;
}

function table(rows: Record<string, string>[]): void {
  if (rows.length === 0) return console.log('  (nothing)');
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(width[i]!)).join('  ');
  console.log(line(cols));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => r[c] ?? '')));
}

async function cleanup(): Promise<void> {
  if (!keep) {
    const admin = kafka.admin();
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(run));
    await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
  }
  if (startedStack && !keep) spawnSync('bash', ['scripts/kafka/down.sh'], { cwd: root, stdio: 'inherit' });
}

main()
  .then(cleanup)
  .then(
    () => process.exit(0),
    async (error: unknown) => {
      console.error(error);
      await cleanup().catch(() => undefined);
      process.exit(1);
    },
  );
