/**
 * `npm run bench:scale -- [--aggregates 1e6] [--replicas 3] [--partitions 12] [--requests 1000]
 * [--baseline auto|on|off] [--restore on|off] [--deadline-s 3600]`: the read side at scale
 * (issue 15, part 4). Writes N aggregates straight into a fresh aggregates topic
 * (bench/scale-generate.ts), then runs, in this order, each as child processes:
 *
 * 1. baseline: today's single in-memory replica (bench/scale-baseline.ts), the oracle and
 *    the "local p99 of today";
 * 2. idle: one `ordo api` on an empty topic, the fixed cost of a replica;
 * 3. one: one `ordo api` replica holding every partition; then its restore after a clean
 *    restart (SIGTERM) and after a crash (SIGKILL);
 * 4. many: `--replicas` replicas, each its own ORDO_NODE_ID, ports and ORDO_API_STORE_DIR.
 *
 * Measured: memory per replica (RSS from /proc, anon and file-backed apart; heap from
 * /metrics; store bytes on disk), single-subject query latency sent to the subject's owner
 * (local) and to a replica that does not own it (routed), all-subject queries (fan-out),
 * and time to a complete answer after start and restarts. Every answer is compared with the
 * baseline's (or with the generated totals when there is no baseline). Ratios are against
 * the same run. Results go to bench/results/<timestamp>-scale.json. It is not a test: it
 * exits 1 when a phase fails (a wrong answer, a replica that never serves, a timeout).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SchemaCatalog } from '../src/schema/schema-catalog.js';
import { usageAggregateSchema } from '../src/usage/aggregation.js';
import { benchKafka, benchSecurity, cleanUp, createTopics, sleep, uniqueName, withTimeout } from './kafka.js';
import { benchMetersFile, removeBenchMetersFile } from './meters.js';
import { deleteSubject } from './events.js';
import { type GenerateResult, AGGREGATES_PER_SUBJECT, SCALE_DAY, SCALE_MONTH, expectedSpendTotal, generateAggregates, subjectName } from './scale-generate.js';
import { ChildRole, type ProcessMemory, diskBytes, killAllChildren, procMemory, scrapeGauge } from './scale-replicas.js';
import type { ScaleBaselineReady } from './scale-baseline.js';
import { type LatencySummary, ratio, round2, summarise } from './stats.js';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const WARMUP_REQUESTS = 100;
const REQUEST_TIMEOUT_MS = 30_000;
const SAMPLE_SUBJECTS = 200;
const MEMORY_SAMPLES = 5;
const DAY_MS = 86_400_000;

interface Args {
  aggregates: number;
  replicas: number;
  partitions: number;
  requests: number;
  fanoutRequests: number;
  baseline: boolean;
  restore: boolean;
  deadlineS: number;
  /** Phases run (baseline, idle, one, many). */
  phases: Set<string>;
  /** An aggregates topic this bench generated before (the same --aggregates): no generation, and it is left in place. */
  topic: string | undefined;
  /** The one replica starts on this store (e.g. one an interrupted run left): its first start is then a restart. */
  storeDir: string | undefined;
  brokers: string[];
  registryUrl: string;
}

function parseCli(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      aggregates: { type: 'string', default: '1e6' },
      replicas: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '12' },
      requests: { type: 'string', default: '1000' },
      'fanout-requests': { type: 'string', default: '200' },
      baseline: { type: 'string', default: 'auto' },
      restore: { type: 'string', default: 'on' },
      'deadline-s': { type: 'string', default: '5400' },
      phases: { type: 'string', default: 'baseline,idle,one,many' },
      topic: { type: 'string' },
      'store-dir': { type: 'string' },
    },
    strict: true,
  });
  const count = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name}: expected a whole number ≥ ${min} (1e6 notation works), got ${JSON.stringify(text)}`);
    return n;
  };
  const onOff = (name: string, text: string, auto: boolean): boolean => {
    if (text === 'on') return true;
    if (text === 'off') return false;
    if (text === 'auto') return auto;
    throw new Error(`--${name}: expected on, off or auto, got ${JSON.stringify(text)}`);
  };
  const aggregates = count('aggregates', values.aggregates, AGGREGATES_PER_SUBJECT);
  return {
    aggregates,
    replicas: count('replicas', values.replicas, 2),
    partitions: count('partitions', values.partitions, 1),
    requests: count('requests', values.requests, 10),
    fanoutRequests: count('fanout-requests', values['fanout-requests'], 10),
    // Today's replica holds ~780 heap bytes per aggregate: past 3·10^6 it would not fit next to the rest here.
    baseline: onOff('baseline', values.baseline, aggregates <= 3_000_000),
    restore: onOff('restore', values.restore, true),
    deadlineS: count('deadline-s', values['deadline-s'], 60),
    phases: phasesOf(values.phases),
    topic: values.topic,
    storeDir: values['store-dir'],
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    registryUrl: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
  };
}

const PHASES = ['baseline', 'idle', 'one', 'many'] as const;

function phasesOf(text: string): Set<string> {
  const phases = new Set(text.split(',').map((p) => p.trim()));
  for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--phases: ${JSON.stringify(p)} is not one of ${PHASES.join(', ')}`);
  return phases;
}

/** The part of a usage answer the partitioned api adds (contract of issue 15); absent on today's api. */
interface Answer {
  data: unknown[];
  totals: unknown[] | null;
  servedBy?: { node: string; partitions: number[]; lagRecords: number | null }[];
  partial?: boolean;
  missingPartitions?: number[];
}

interface Timed {
  ms: number;
  status: number;
  answer: Answer | undefined;
  text: string;
}

async function timedGet(port: number, path: string): Promise<Timed> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await response.text();
  const ms = round2(performance.now() - started);
  let answer: Answer | undefined;
  if (response.status === 200) answer = JSON.parse(text) as Answer;
  return { ms, status: response.status, answer, text };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const usagePath = (meter: string, params: Record<string, string>): string => `/v1/meters/${meter}/usage?${new URLSearchParams(params).toString()}`;
/** One subject's day, hour by hour (24 rows): a usage chart. */
const subjectPath = (subject: string): string => usagePath('api-spend', { subject, from: iso(SCALE_DAY), to: iso(SCALE_DAY + DAY_MS), windowSize: 'HOUR' });
/** Every subject's spend over the month: one MONTH window of each subject, summed (an invoice run's total). */
const ALL_PATH = usagePath('api-spend', { from: iso(SCALE_MONTH.from), to: iso(SCALE_MONTH.to) });

/** What identifies an answer's content (not who served it or how fresh). */
function content(a: Answer): string {
  return JSON.stringify({ data: a.data, totals: a.totals });
}

function totalOf(a: Answer): string | undefined {
  const row = (a.totals?.[0] ?? a.data[0]) as { value?: string } | undefined;
  return row?.value;
}

interface Replica {
  node: string;
  role: ChildRole;
  apiPort: number;
  metricsPort: number;
  storeDir: string;
}

interface MemoryFigures extends ProcessMemory {
  node: string;
  storeBytes: { apparent: number; allocated: number } | null;
}

interface RestoreFigures {
  kind: 'clean' | 'crash';
  exitCode: number | null;
  /** Start of the new process to its first complete and correct all-subject answer. */
  msToCompleteAnswer: number;
  /** Polls answered 200 but incomplete or partial before that. */
  incompleteAnswers: number;
}

interface LatencyFigures {
  local: LatencySummary | null;
  routed: LatencySummary | null;
  fanOut: LatencySummary | null;
}

export interface ScaleResult {
  version: 1;
  startedAt: string;
  finishedAt: string | null;
  complete: boolean;
  error?: string;
  machine: { cpus: number; model: string | undefined; memoryBytes: number; freeMemoryBytesAtStart: number; loadAverageAtStart: number[]; node: string };
  params: Omit<Args, 'brokers' | 'registryUrl' | 'phases'> & { phases: string[] };
  definitions: Record<string, string>;
  generate: GenerateResult | null;
  /** The api answers carry servedBy/partial (the partitioned read side of issue 15), or not (today's api). */
  partitionedApi: boolean | null;
  baseline: { ready: ScaleBaselineReady; memory: ProcessMemory; latency: { single: LatencySummary | null; fanOut: LatencySummary | null } } | null;
  idle: MemoryFigures | null;
  one: { msToCompleteAnswer: number; memory: MemoryFigures | null; latency: LatencyFigures; restores: RestoreFigures[] } | null;
  many: { replicas: number; msToCompleteAnswer: number; memory: MemoryFigures[]; latency: LatencyFigures; owners: Record<string, number>; ownerUnknown: number } | null;
  /** Answers that differed from the oracle (the baseline, or the generated totals). */
  wrongAnswers: number;
  ratios: {
    /** (one replica's RSS / replicas) / the largest RSS at `replicas`: 1 = memory falls as 1/replicas. Target ≥ 0.9. */
    memoryRssVsIdeal: number | null;
    /** The same net of an idle replica's RSS (what the aggregates cost). */
    memoryRssNetVsIdeal: number | null;
    /** The same for the store's bytes on disk. */
    storeDiskVsIdeal: number | null;
    /** Routed single-subject p99 / local p99 (same replicas). Target ≤ 2. */
    routedP99VsLocalP99: number | null;
    /** Routed single-subject p99 / today's in-memory replica's p99. Target ≤ 2. */
    routedP99VsTodayP99: number | null;
    localP99VsTodayP99: number | null;
    fanOutP99VsTodayP99: number | null;
    /** Heap bytes of today's replica per aggregate (after GC). */
    todayHeapBytesPerAggregate: number | null;
  };
}

async function main(): Promise<number> {
  const args = parseCli(process.argv.slice(2));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const run = uniqueName('bench-scale');
  const topic = args.topic ?? `${run}-aggregates`;
  const kafka = benchKafka(args.brokers, 'bench-scale');
  const scratch = mkdtempSync(join(tmpdir(), 'ordo-bench-scale-'));
  const metersFile = benchMetersFile();
  const started = Date.now();
  const result: ScaleResult = {
    version: 1,
    startedAt: new Date(started).toISOString(),
    finishedAt: null,
    complete: false,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryBytes: totalmem(), freeMemoryBytesAtStart: freemem(), loadAverageAtStart: loadavg(), node: process.version },
    params: { ...args, brokers: undefined, registryUrl: undefined, phases: [...args.phases] } as ScaleResult['params'],
    definitions: {
      input: `N aggregates of the bench meters written straight into a fresh ${args.partitions}-partition compacted topic as the pipeline writes them (${AGGREGATES_PER_SUBJECT} per subject: one active day of HOUR, DAY, MONTH windows), idempotent producer, acks=all, no compression`,
      single: 'GET api-spend usage of one subject, HOUR windows over its active day (24 rows); subjects cycle through a sample',
      local: 'single-subject queries sent to the replica that owns the subject (servedBy names it)',
      routed: 'single-subject queries sent to a replica that does not own the subject (it forwards to the owner)',
      fanOut: 'GET api-spend usage of all subjects over the month (one MONTH window per subject, summed), sent to each replica in turn',
      memory: `RSS from /proc/<pid>/status (RssAnon: own memory; RssFile: mapped files: the node binary and the store's pages in the page cache); heap: ordo_nodejs_heap_size_used_bytes (no forced GC); each the lowest of ${MEMORY_SAMPLES} samples 1 s apart; store: ORDO_API_STORE_DIR files (apparent size and allocated blocks)`,
      restore: 'SIGTERM (clean) or SIGKILL (crash) of the single replica, then a new process on the same store directory: time from its spawn to the first complete (partial !== true) all-subject answer equal to the oracle',
    },
    generate: null,
    partitionedApi: null,
    baseline: null,
    idle: null,
    one: null,
    many: null,
    wrongAnswers: 0,
    ratios: {
      memoryRssVsIdeal: null,
      memoryRssNetVsIdeal: null,
      storeDiskVsIdeal: null,
      routedP99VsLocalP99: null,
      routedP99VsTodayP99: null,
      localP99VsTodayP99: null,
      fanOutP99VsTodayP99: null,
      todayHeapBytesPerAggregate: null,
    },
  };
  let pastDeadline = false;
  // Killing the children fails whatever waits on them, so the run still writes its results and cleans up.
  const deadline = setTimeout(() => {
    log(`scale: deadline of ${args.deadlineS} s reached; stopping`);
    pastDeadline = true;
    killAllChildren();
    setTimeout(() => process.exit(2), 120_000).unref();
  }, args.deadlineS * 1000);
  const interrupted = (): void => {
    killAllChildren();
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  let nextPort = 21_000 + Math.floor(Math.random() * 20_000);
  const replicaEnv = (node: string, apiPort: number, metricsPort: number, storeDir: string, aggregatesTopic: string, group: string): Record<string, string> => ({
    KAFKA_BROKERS: args.brokers.join(','),
    SCHEMA_REGISTRY_URL: args.registryUrl,
    ORDO_GROUP_ID: group,
    ORDO_INPUT_TOPIC: `${run}-in`,
    ORDO_ORDERED_TOPIC: `${run}-ordered`,
    ORDO_DLQ_TOPIC: `${run}-dlq`,
    ORDO_LATE_TOPIC: `${run}-late`,
    ORDO_AGGREGATES_TOPIC: aggregatesTopic,
    ORDO_WATERMARKS_TOPIC: `${run}-watermarks`,
    ORDO_GLOBAL_TOPIC: `${run}-global`,
    ORDO_SCHEMAS_TOPIC: `${run}-schemas`,
    ORDO_SESSIONS_TOPIC: `${run}-sessions`,
    ORDO_NODES_TOPIC: `${run}-nodes`,
    ORDO_API_NODES_TOPIC: `${group}-api-nodes`,
    ORDO_FORWARD_TOPIC: `${run}-forward`,
    ORDO_REPLIES_TOPIC: `${run}-replies`,
    ORDO_DELETIONS_TOPIC: `${run}-deletions`,
    ORDO_REPLAYS_TOPIC: `${run}-replays`,
    ORDO_DUPLICATES_TOPIC: `${run}-duplicates`,
    ORDO_METERS_FILE: metersFile,
    ORDO_NODE_ID: node,
    ORDO_API_HOST: '127.0.0.1',
    ORDO_API_PORT: String(apiPort),
    ORDO_METRICS_PORT: String(metricsPort),
    ORDO_API_STORE_DIR: storeDir,
    ORDO_API_ADVERTISED_URL: `http://127.0.0.1:${apiPort}`,
    ORDO_SESSION_TIMEOUT_MS: '10000',
    ORDO_HEARTBEAT_INTERVAL_MS: '1000',
    ORDO_SHUTDOWN_GRACE_MS: '20000',
    ORDO_LOG_LEVEL: 'info',
  });
  /** The idle replica reads another topic: it gets a group (and node registry) of its own. */
  const startReplica = (node: string, options: { storeDir?: string; topic?: string; group?: string; ports?: { api: number; metrics: number } } = {}): Replica => {
    const apiPort = options.ports?.api ?? nextPort++;
    const metricsPort = options.ports?.metrics ?? nextPort++;
    const storeDir = options.storeDir ?? join(scratch, `store-${node}`);
    mkdirSync(storeDir, { recursive: true });
    const role = new ChildRole(node, ['--import', 'tsx', 'src/cli.ts', 'api'], replicaEnv(node, apiPort, metricsPort, storeDir, options.topic ?? topic, options.group ?? `${run}-g`));
    return { node, role, apiPort, metricsPort, storeDir };
  };
  /** The lowest of MEMORY_SAMPLES samples a second apart, field by field: garbage not yet collected counts less. */
  const memoryOf = async (r: Replica): Promise<MemoryFigures> => {
    const samples: ProcessMemory[] = [];
    for (let i = 0; i < MEMORY_SAMPLES; i++) {
      if (i > 0) await sleep(1_000);
      samples.push({ ...procMemory(r.role.pid), heapUsedBytes: await scrapeGauge(r.metricsPort, 'ordo_nodejs_heap_size_used_bytes') });
    }
    const lowest = (f: (m: ProcessMemory) => number | null): number | null => {
      const xs = samples.map(f).filter((x): x is number => x !== null);
      return xs.length === 0 ? null : Math.min(...xs);
    };
    return {
      node: r.node,
      rssBytes: lowest((m) => m.rssBytes),
      rssAnonBytes: lowest((m) => m.rssAnonBytes),
      rssFileBytes: lowest((m) => m.rssFileBytes),
      heapUsedBytes: lowest((m) => m.heapUsedBytes),
      storeBytes: diskBytes(r.storeDir),
    };
  };

  let expectedAll: Answer | undefined;
  let expectedTotal: string | undefined;
  const expectedSubject = new Map<string, string>();
  const sample: string[] = [];
  const isComplete = (a: Answer | undefined): boolean =>
    a !== undefined && a.partial !== true && (expectedAll !== undefined ? content(a) === content(expectedAll) : totalOf(a) === expectedTotal);
  /** Polls the all-subject query on `port` until a complete, correct answer; ms from `since`. */
  const untilComplete = async (r: Replica, since: number, timeoutMs: number): Promise<{ ms: number; incomplete: number }> => {
    let incomplete = 0;
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (!r.role.running()) throw new Error(`${r.node} exited (${r.role.child.exitCode}); last lines:\n${r.role.lastLines()}`);
      const answer = await timedGet(r.apiPort, ALL_PATH).catch(() => undefined);
      if (answer?.status === 200) {
        if (isComplete(answer.answer)) return { ms: Math.round(performance.now() - since), incomplete };
        incomplete++;
      }
      if (Date.now() > until) throw new Error(`${r.node}: no complete answer within ${timeoutMs} ms (last: ${answer ? `${answer.status} ${answer.text.slice(0, 300)}` : 'no answer'}); last lines:\n${r.role.lastLines()}`);
      await sleep(50);
    }
  };
  const checkSingle = (subject: string, t: Timed): void => {
    if (t.status !== 200 || t.answer === undefined) throw new Error(`single-subject query for ${subject}: HTTP ${t.status}: ${t.text.slice(0, 300)}`);
    const expected = expectedSubject.get(subject);
    if (expected !== undefined && content(t.answer) !== expected) result.wrongAnswers++;
  };
  // Today's api reads ~20k aggregates/s on a busy 2-core machine, three at once a third of that each.
  const startTimeoutMs = Math.max(180_000, args.aggregates / 5);

  const generate = async (): Promise<void> => {
    log(`scale: ${args.aggregates.toLocaleString('en-US')} aggregates into ${topic} (${args.partitions} partitions)`);
    await createTopics(kafka, [topic], args.partitions, [{ name: 'cleanup.policy', value: 'compact' }]);
    const schemaId = await withTimeout(new SchemaCatalog({ url: args.registryUrl, security: benchSecurity().registry }).register(`${topic}-value`, usageAggregateSchema), 30_000, 'registering UsageAggregate');
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await withTimeout(producer.connect(), 30_000, 'producer connect');
    try {
      result.generate = await generateAggregates(producer, { topic, partitions: args.partitions, schemaId, aggregates: args.aggregates, log });
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
    const g = result.generate;
    log(`  ${g.aggregates.toLocaleString('en-US')} aggregates of ${g.subjects.toLocaleString('en-US')} subjects in ${(g.ms / 1000).toFixed(1)} s (${g.aggregatesPerSecond.toLocaleString('en-US')}/s, ${(g.bytes / 1e6).toFixed(0)} MB)`);
  };

  let exitCode = 1;
  try {
    // ---- input
    if (args.topic !== undefined) log(`scale: reusing ${topic} (${args.aggregates.toLocaleString('en-US')} aggregates)`);
    else await generate();
    expectedTotal = expectedSpendTotal(args.aggregates);
    const whole = Math.floor(args.aggregates / AGGREGATES_PER_SUBJECT);
    for (let i = 0; i < SAMPLE_SUBJECTS; i++) sample.push(subjectName(Math.floor((i * whole) / SAMPLE_SUBJECTS)));

    // ---- baseline: today's in-memory replica
    if (args.baseline && args.phases.has('baseline')) {
      log('scale: baseline (today\'s in-memory replica)');
      const baseline = new ChildRole('baseline', ['--expose-gc', `--max-old-space-size=${Math.ceil((args.aggregates * 1_200) / 1_048_576) + 512}`, '--import', 'tsx', 'bench/scale-baseline.ts'], {
        KAFKA_BROKERS: args.brokers.join(','),
        SCHEMA_REGISTRY_URL: args.registryUrl,
        SCALE_TOPIC: topic,
        SCALE_METERS_FILE: metersFile,
      });
      try {
        const ready = await baseline.firstLine<ScaleBaselineReady>(startTimeoutMs);
        log(`  caught up in ${ready.loadMs} ms; heap ${(ready.heapUsedBytes / 1e6).toFixed(0)} MB`);
        const all = await timedGet(ready.port, ALL_PATH);
        if (all.status !== 200 || !all.answer) throw new Error(`baseline all-subject query: HTTP ${all.status}: ${all.text.slice(0, 300)}`);
        expectedAll = all.answer;
        if (expectedTotal !== undefined && totalOf(all.answer) !== expectedTotal) throw new Error(`baseline total ${totalOf(all.answer)} is not the generated ${expectedTotal}`);
        for (const subject of sample) {
          const t = await timedGet(ready.port, subjectPath(subject));
          if (t.status !== 200 || !t.answer) throw new Error(`baseline ${subject}: HTTP ${t.status}`);
          expectedSubject.set(subject, content(t.answer));
        }
        const single = await measure(args.requests, (i) => timedGet(ready.port, subjectPath(sample[i % sample.length]!)));
        const fanOut = await measure(args.fanoutRequests, () => timedGet(ready.port, ALL_PATH));
        result.baseline = { ready, memory: { ...procMemory(baseline.pid), heapUsedBytes: ready.heapUsedBytes }, latency: { single: summarise(single.map((t) => t.ms)), fanOut: summarise(fanOut.map((t) => t.ms)) } };
        result.ratios.todayHeapBytesPerAggregate = Math.round(ready.heapUsedBytes / Math.max(1, ready.aggregates));
        log(`  single p50/p99 ${fmt(result.baseline.latency.single)}; all-subject ${fmt(result.baseline.latency.fanOut)}`);
      } finally {
        await baseline.stop('SIGTERM', 10_000);
      }
    }

    // ---- idle: the fixed cost of a replica
    if (args.phases.has('idle')) {
      log('scale: idle replica (empty topic)');
      const emptyTopic = `${run}-empty-aggregates`;
      await createTopics(kafka, [emptyTopic], args.partitions, [{ name: 'cleanup.policy', value: 'compact' }]);
      const idle = startReplica('idle', { topic: emptyTopic, group: `${run}-idle-g` });
      try {
        await waitServing(idle, 120_000);
        await sleep(3_000); // let start-up garbage settle into the figures less
        result.idle = await memoryOf(idle);
        log(`  rss ${mb(result.idle.rssBytes)} (anon ${mb(result.idle.rssAnonBytes)}), heap ${mb(result.idle.heapUsedBytes)}`);
      } finally {
        await idle.role.stop();
      }
    }

    // ---- one replica
    if (args.phases.has('one')) {
      log('scale: one replica');
      let one = startReplica('r0', { storeDir: args.storeDir });
      const spawned = performance.now();
      const first = await untilComplete(one, spawned, startTimeoutMs);
      log(`  complete answer ${first.ms} ms after spawn (full restore from the topic)`);
      const probe = await timedGet(one.apiPort, subjectPath(sample[0]!));
      result.partitionedApi = probe.answer?.servedBy !== undefined;
      await sleep(2_000);
      const memory = await memoryOf(one);
      const local = await measure(args.requests, async (i) => {
        const subject = sample[i % sample.length]!;
        const t = await timedGet(one.apiPort, subjectPath(subject));
        checkSingle(subject, t);
        return t;
      });
      const fanOut = await measure(args.fanoutRequests, async () => {
        const t = await timedGet(one.apiPort, ALL_PATH);
        if (!isComplete(t.answer)) result.wrongAnswers++;
        return t;
      });
      result.one = { msToCompleteAnswer: first.ms, memory, latency: { local: summarise(local.map((t) => t.ms)), routed: null, fanOut: summarise(fanOut.map((t) => t.ms)) }, restores: [] };
      log(`  rss ${mb(memory.rssBytes)} (anon ${mb(memory.rssAnonBytes)}, file ${mb(memory.rssFileBytes)}), heap ${mb(memory.heapUsedBytes)}, store ${mb(memory.storeBytes?.allocated ?? null)}; single ${fmt(result.one.latency.local)}; all-subject ${fmt(result.one.latency.fanOut)}`);
      if (args.restore) {
        for (const kind of ['clean', 'crash'] as const) {
          const exit = await one.role.stop(kind === 'clean' ? 'SIGTERM' : 'SIGKILL');
          await sleep(500);
          one = startReplica('r0', { storeDir: one.storeDir, ports: { api: one.apiPort, metrics: one.metricsPort } });
          const since = performance.now();
          const restored = await untilComplete(one, since, startTimeoutMs);
          result.one.restores.push({ kind, exitCode: exit, msToCompleteAnswer: restored.ms, incompleteAnswers: restored.incomplete });
          log(`  ${kind} restart (exit ${exit}): complete answer after ${restored.ms} ms`);
        }
      }
      await one.role.stop();
    }

    // ---- many replicas
    if (args.phases.has('many')) {
      log(`scale: ${args.replicas} replicas`);
      const replicas = Array.from({ length: args.replicas }, (_, i) => startReplica(`m${i}`));
      const spawned = performance.now();
      try {
        let slowest = 0;
        for (const r of replicas) slowest = Math.max(slowest, (await untilComplete(r, spawned, startTimeoutMs)).ms);
        log(`  every replica answers completely ${slowest} ms after spawn`);
        // Who owns which subject: the node an answer says served it.
        const owners = new Map<string, number>();
        for (const subject of sample) {
          const t = await timedGet(replicas[0]!.apiPort, subjectPath(subject));
          checkSingle(subject, t);
          const node = t.answer?.servedBy?.length === 1 ? t.answer.servedBy[0]!.node : undefined;
          const index = replicas.findIndex((r) => r.node === node);
          if (index >= 0) owners.set(subject, index);
        }
        await sleep(2_000);
        const memory = await Promise.all(replicas.map((r) => memoryOf(r)));
        const known = sample.filter((s) => owners.has(s));
        const local = known.length === 0 ? [] : await measure(args.requests, async (i) => {
          const subject = known[i % known.length]!;
          const t = await timedGet(replicas[owners.get(subject)!]!.apiPort, subjectPath(subject));
          checkSingle(subject, t);
          return t;
        });
        const routed = known.length === 0 ? [] : await measure(args.requests, async (i) => {
          const subject = known[i % known.length]!;
          const owner = owners.get(subject)!;
          const other = replicas[(owner + 1 + (i % (replicas.length - 1))) % replicas.length]!;
          const t = await timedGet(other.apiPort, subjectPath(subject));
          checkSingle(subject, t);
          return t;
        });
        const fanOut = await measure(args.fanoutRequests, async (i) => {
          const t = await timedGet(replicas[i % replicas.length]!.apiPort, ALL_PATH);
          if (!isComplete(t.answer)) result.wrongAnswers++;
          return t;
        });
        result.many = {
          replicas: args.replicas,
          msToCompleteAnswer: slowest,
          memory,
          latency: { local: summarise(local.map((t) => t.ms)), routed: summarise(routed.map((t) => t.ms)), fanOut: summarise(fanOut.map((t) => t.ms)) },
          owners: Object.fromEntries(replicas.map((r, i) => [r.node, [...owners.values()].filter((o) => o === i).length])),
          ownerUnknown: sample.length - known.length,
        };
        for (const m of memory) log(`  ${m.node}: rss ${mb(m.rssBytes)} (anon ${mb(m.rssAnonBytes)}, file ${mb(m.rssFileBytes)}), heap ${mb(m.heapUsedBytes)}, store ${mb(m.storeBytes?.allocated ?? null)}`);
        log(`  local ${fmt(result.many.latency.local)}; routed ${fmt(result.many.latency.routed)}; fan-out ${fmt(result.many.latency.fanOut)}`);
      } finally {
        await Promise.all(replicas.map((r) => r.role.stop()));
      }
    }

    computeRatios(result);
    result.complete = result.wrongAnswers === 0;
    if (result.wrongAnswers > 0) result.error = `${result.wrongAnswers} answers differed from the oracle`;
    exitCode = result.complete ? 0 : 1;
  } catch (error) {
    result.error = `${pastDeadline ? `deadline of ${args.deadlineS} s reached: ` : ''}${(error as Error).message}`;
    log(`scale: failed: ${result.error}`);
    computeRatios(result);
  } finally {
    clearTimeout(deadline);
    killAllChildren();
    result.finishedAt = new Date().toISOString();
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `${result.startedAt.replace(/:/g, '-')}-scale.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`scale: ${file}`);
    process.stdout.write(`${JSON.stringify({ ratios: result.ratios, complete: result.complete, error: result.error ?? null })}\n`);
    const cleaned = await cleanUp(kafka, run, [`${run}-g-api-reads`, `${run}-idle-g-api-reads`]);
    if (cleaned.error) log(`scale: clean-up: ${cleaned.error}`);
    if (args.topic === undefined) await deleteSubject(args.registryUrl, `${topic}-value`);
    rmSync(scratch, { recursive: true, force: true });
    removeBenchMetersFile();
  }
  return pastDeadline ? 2 : exitCode;
}

function computeRatios(r: ScaleResult): void {
  const one = r.one?.memory;
  const many = r.many?.memory ?? [];
  const n = r.many?.replicas ?? 0;
  const maxOf = (f: (m: MemoryFigures) => number | null): number | null => {
    const xs = many.map(f).filter((x): x is number => x !== null);
    return xs.length === many.length && xs.length > 0 ? Math.max(...xs) : null;
  };
  const vsIdeal = (whole: number | null, largest: number | null): number | null => (whole === null || largest === null || n === 0 ? null : ratio(whole / n, largest));
  const idleRss = r.idle?.rssBytes ?? null;
  r.ratios.memoryRssVsIdeal = round3(vsIdeal(one?.rssBytes ?? null, maxOf((m) => m.rssBytes)));
  r.ratios.memoryRssNetVsIdeal =
    idleRss === null ? null : round3(vsIdeal(one?.rssBytes == null ? null : one.rssBytes - idleRss, maxOf((m) => (m.rssBytes === null ? null : m.rssBytes - idleRss))));
  r.ratios.storeDiskVsIdeal = round3(vsIdeal(one?.storeBytes?.allocated ?? null, maxOf((m) => m.storeBytes?.allocated ?? null)));
  const today = r.baseline?.latency.single?.p99 ?? null;
  r.ratios.routedP99VsLocalP99 = round3(ratio(r.many?.latency.routed?.p99 ?? null, r.many?.latency.local?.p99 ?? null));
  r.ratios.routedP99VsTodayP99 = round3(ratio(r.many?.latency.routed?.p99 ?? null, today));
  r.ratios.localP99VsTodayP99 = round3(ratio(r.many?.latency.local?.p99 ?? null, today));
  r.ratios.fanOutP99VsTodayP99 = round3(ratio(r.many?.latency.fanOut?.p99 ?? null, r.baseline?.latency.fanOut?.p99 ?? null));
}

/** Waits until a replica's /v1/meters answers (it serves). */
async function waitServing(r: Replica, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (!r.role.running()) throw new Error(`${r.node} exited (${r.role.child.exitCode}); last lines:\n${r.role.lastLines()}`);
    const ok = await fetch(`http://127.0.0.1:${r.apiPort}/v1/meters`, { signal: AbortSignal.timeout(5_000) }).then((res) => res.ok, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error(`${r.node} did not serve within ${timeoutMs} ms; last lines:\n${r.role.lastLines()}`);
    await sleep(200);
  }
}

/** WARMUP_REQUESTS unrecorded calls, then `n` recorded ones, sequentially. */
async function measure(n: number, call: (i: number) => Promise<Timed>): Promise<Timed[]> {
  for (let i = 0; i < Math.min(WARMUP_REQUESTS, n); i++) await call(i);
  const out: Timed[] = [];
  for (let i = 0; i < n; i++) out.push(await call(i));
  return out;
}

function round3(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}

function mb(bytes: number | null): string {
  return bytes === null ? '-' : `${(bytes / 1_048_576).toFixed(0)} MiB`;
}

function fmt(s: LatencySummary | null): string {
  return s === null ? '-' : `${s.p50}/${s.p99} ms`;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    killAllChildren();
    process.stderr.write(`scale: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
