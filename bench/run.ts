/**
 * `npm run bench`: Ordo's pipeline (without and with aggregation) against raw kafkajs
 * passthrough baselines, through the real broker, in one process and one run; then the
 * usage query latency as events grow and the state restore rate. See bench/README.md.
 */
import type { Message } from 'kafkajs';
import { type AnchorSetup, prepareAnchors } from './anchors.js';
import { EventFactory, deleteSubject } from './events.js';
import { benchKafka, cleanUp, uniqueName } from './kafka.js';
import { removeBenchMetersFile } from './meters.js';
import { ANCHORS, type BenchParams, type SystemName, loadParams } from './params.js';
import { type LatencyResult, type ThroughputResult, runLatency, runThroughput } from './phases.js';
import { type QueryResult, runQuery } from './query.js';
import { type RestoreResult, runRestore } from './restore.js';
import { type IngestResult, formatIngest, runIngest } from './ingest.js';
import { type DeliverResult, formatDeliver, runDeliver } from './deliver.js';
import { formatReport, machineInfo, ratios, summariseSystem, withAnchorRatios, writeResult } from './report.js';

// Before any kafkajs client exists (imports only define; clients are made in main()).
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const SHORT: Record<SystemName, string> = {
  'kafka-producer-perf': 'perf',
  'java-eos-passthrough': 'java',
  'baseline-plain': 'plain',
  'baseline-tx': 'tx',
  'ordo-window-0': 'w0',
  'ordo-window-250': 'w250',
  'ordo-pipeline': 'ordo',
  'ordo-window-3000': 'w3000',
  'ordo-aggregate': 'agg',
  'ordo-aggregate-no-corrections': 'agg-nc',
};

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const loaded: BenchParams = loadParams();
  if (!loaded.anchors) log(`anchors off (BENCH_ANCHORS=0): no ${ANCHORS.join(', ')}`);
  const wantsAnchors = loaded.systems.some((s) => ANCHORS.includes(s));
  const anchors: AnchorSetup | undefined = wantsAnchors ? prepareAnchors(log) : undefined;
  if (anchors?.state === 'skipped') log(`anchors skipped: ${anchors.reason}`);
  if (anchors?.state === 'failed') log(`anchors FAILED to prepare (their phases fail): ${anchors.reason}`);
  if (anchors?.state === 'ready') log(`anchors: ${anchors.anchors.javaVersion}, Kafka ${anchors.anchors.kafkaVersion} jars`);
  // Skipped anchors (no JDK, or a secured broker) leave the run; failed ones stay and fail their phases.
  const params: BenchParams = anchors?.state === 'skipped' ? { ...loaded, systems: loaded.systems.filter((s) => !ANCHORS.includes(s)) } : loaded;
  const machineAtStart = machineInfo();
  const runPrefix = uniqueName('bench');
  const kafka = benchKafka(params.brokers, 'bench-admin');
  const inputSubject = `${runPrefix}-usage-events-value`;

  let finished = false;
  const emergencyCleanUp = async (why: string, code: number): Promise<void> => {
    if (finished) return;
    finished = true;
    log(`${why}: deleting ${runPrefix}* topics and exiting`);
    removeBenchMetersFile();
    await cleanUp(kafka, runPrefix);
    await deleteSubject(params.registryUrl, inputSubject);
    process.exit(code);
  };
  const watchdog = setTimeout(() => void emergencyCleanUp(`deadline of ${params.deadlineMs / 1000} s passed`, 2), params.deadlineMs);
  watchdog.unref();
  process.once('SIGINT', () => void emergencyCleanUp('interrupted', 130));
  process.once('SIGTERM', () => void emergencyCleanUp('terminated', 143));

  log(`run ${runPrefix}: systems ${params.systems.join(', ')}; ${params.events} events x ${params.partitions} partitions; ` +
    `latency ${params.latencyRate} ev/s x ${params.latencySeconds} s; ${params.rounds} round(s); ` +
    `query ${params.query ? `N = ${params.queryEvents.join(', ')}` : 'off'}; restore ${params.restore ? `${params.restoreRecords} records` : 'off'}`);
  const factory = await EventFactory.register(params.registryUrl, inputSubject, params.subjects, params.contextRatio);
  const now = Date.now();
  const messages: Message[] = Array.from({ length: params.events }, (_, i) => factory.message('t-', i, now));
  const ctx = { params, factory, log, ...(anchors ? { anchors } : {}) };

  const throughput = new Map<SystemName, ThroughputResult[]>(params.systems.map((s) => [s, []]));
  const latency = new Map<SystemName, LatencyResult[]>(params.systems.map((s) => [s, []]));
  if (params.warmupEvents > 0) {
    const warm = messages.slice(0, params.warmupEvents);
    for (const system of params.systems) {
      if (ANCHORS.includes(system)) {
        log(`warm-up ${system}: none (each phase starts a new JVM)`);
        continue;
      }
      log(`warm-up ${system}: ${warm.length} events (not recorded)`);
      const t = await runThroughput(ctx, system, `${runPrefix}-${SHORT[system]}-warm`, warm);
      if (t.error) log(`  warm-up ERROR: ${t.error}`);
    }
  }

  for (let round = 1; round <= params.rounds; round++) {
    for (const system of params.systems) {
      log(`round ${round}/${params.rounds} ${system}: throughput`);
      const t = await runThroughput(ctx, system, `${runPrefix}-${SHORT[system]}-tput${round}`, messages, { countWrites: true, selfDrivenRecords: params.perfRecords });
      throughput.get(system)!.push(t);
      log(`  ${fmt(t.eventsPerSecond)} ev/s (start-up ${t.startupMs ?? '-'} ms, ${t.outputs}/${t.events} outputs)${t.error ? `  ERROR: ${t.error}` : ''}`);
      if (t.measuredEventsPerSecond !== undefined) log(`  (its own figure; from the outside ${fmt(t.measuredEventsPerSecond)} ev/s)`);
      if (t.writes) log(`  writes per input event: outputs ${t.writes.outputsPerEvent ?? '-'}, state ${t.writes.statePerEvent ?? '-'} (${t.writes.topics.map((w) => `${w.name} ${w.records}`).join(', ')}; counted in ${t.writes.countMs} ms)`);

      if (system === 'kafka-producer-perf') continue; // no input: no end-to-end latency

      log(`round ${round}/${params.rounds} ${system}: latency`);
      const l = await runLatency(ctx, system, `${runPrefix}-${SHORT[system]}-lat${round}`);
      latency.get(system)!.push(l);
      log(`  p50 ${l.latencyMs?.p50 ?? '-'} ms, p99 ${l.latencyMs?.p99 ?? '-'} ms (${l.received}/${l.sent} outputs)${l.error ? `  ERROR: ${l.error}` : ''}`);
    }
  }

  let query: QueryResult | null = null;
  if (params.query) {
    query = await runQuery(params, log);
    if (query.error) log(`  query ERROR: ${query.error}`);
  }
  let restore: RestoreResult | null = null;
  if (params.restore) restore = await runRestore(params, runPrefix, log);
  if (restore?.error) log(`  restore ERROR: ${restore.error}`);
  let ingest: IngestResult | null = null;
  if (params.ingest) ingest = await runIngest(params, runPrefix, log);
  if (ingest?.error) log(`  ingest ERROR: ${ingest.error}`);
  let deliver: DeliverResult | null = null;
  if (params.deliver) deliver = await runDeliver(params, runPrefix, log);
  if (deliver?.error) log(`  deliver ERROR: ${deliver.error}`);

  const leftovers = await cleanUp(kafka, runPrefix);
  await deleteSubject(params.registryUrl, inputSubject);
  removeBenchMetersFile();
  finished = true;
  clearTimeout(watchdog);

  const summaries = withAnchorRatios(params.systems.map((s) => summariseSystem(s, throughput.get(s)!, latency.get(s)!)));
  const ratioRows = ratios(summaries);
  const finishedAt = new Date();
  const result = {
    benchmark: 'ordo-bench',
    version: 3,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    runPrefix,
    machine: { ...machineAtStart, loadAverageAtEnd: machineInfo().loadAverage },
    parameters: params,
    anchors: anchors === undefined ? null : anchors.state === 'ready'
      ? { state: anchors.state, java: anchors.anchors.java, javaVersion: anchors.anchors.javaVersion, kafkaVersion: anchors.anchors.kafkaVersion, classpathEntries: anchors.anchors.classpath.split(':').length }
      : anchors,
    definitions: {
      eventsPerSecond: '(N - records in the first visible output batch) / (last output visible - first output visible), N pre-produced before the processor starts',
      eventsPerSecondInclStartup: 'N / (all N outputs visible - processor start called)',
      startupMs: 'processor start called -> first output visible',
      latencyMs: 'per measured event: output visible to a read_committed reader - produce time (= input record timestamp), paced phase after a warm-up',
      'kafka-producer-perf': "Kafka's own org.apache.kafka.tools.ProducerPerformance in a child JVM, transactional (--transactional-id, --transaction-duration-ms perfTransactionMs), unthrottled, acks=all, perfRecords records of the bench events' mean key + value size to a fresh topic: the broker's limit. eventsPerSecond (and selfReportedEventsPerSecond) is the tool's own figure, records sent / its send time; measuredEventsPerSecond is the same definition as every other system's, coarse here since its records become visible one transaction at a time",
      'java-eos-passthrough': 'bench/java/EosPassthrough.java in a child JVM: read_committed consumer group + one transactional producer, one transaction per poll (outputs + sendOffsetsToTransaction with groupMetadata), same input and partitions as the baselines',
      throughputVsLimit: 'eventsPerSecond / kafka-producer-perf eventsPerSecond',
      throughputVsBaselineTx: 'eventsPerSecond / baseline-tx eventsPerSecond',
      writes: 'per throughput phase, after the system stopped: committed records (read_committed, from the beginning to the end offsets; transaction markers and aborted records not counted) of every topic of the phase but the input; outputs = all but *-changelog topics (ordered/out, aggregates, dlq, late, watermarks), state = *-changelog topics; per input event = records / N',
      ratios: 'numerator / denominator; throughput < 1 and latency > 1 mean the numerator is slower',
      'ordo-aggregate': 'the ordo-window-0 system (reorder window 0) with the bench meters (bench/meters.ts) in ORDO_METERS_FILE: every event updates one aggregate per meter and window size; aggregates and store changelogs go in the same transaction as the ordered output. ordo-aggregate / ordo-window-0 is the cost of aggregation itself',
      'ordo-aggregate-no-corrections': 'ordo-aggregate with ORDO_CORRECTIONS=false: no contributions kept for corrections (docs/corrections.md). ordo-aggregate / ordo-aggregate-no-corrections is the cost of being able to correct (no correction in the stream)',
      queryLatencyMs: 'per request: fetch() called -> whole response body read, one request in flight, keep-alive, GET /v1/meters/{slug}/usage on the real API server (127.0.0.1) over a ReadModel holding the aggregates of N folded events; the query kinds are requested in turn and the Ns alternate request by request; nearest-rank percentiles',
      queryRatio: 'latency at the largest N / latency at the smallest N (p50, p99); about 1 means the read cost does not grow with events',
      windowsRead: "the answer's windowsRead: stored-window lookups for the query (the read cost); equal for every N by construction of the workload",
      foldEventsPerSecond: 'N / time inside the in-process fold of N events (AggregateStep.measure, DedupeStep.run, AggregateStep.apply, store changelog encoding and commit, batches of 2000; event generation, decode, stamp, encode and Kafka excluded)',
      bytesPerEntry: 'heap used after full GCs (global.gc) before and after letting go of one structure, divided by its entries: per dedupe id (dedupe store), per UNIQUE_COUNT member (unique store), per aggregate in the aggregates store, per aggregate in a ReadModel of decoded aggregates',
      restoreRecordsPerSecond: 'records / (restorePartitions called -> resolved) reading one partition of a compacted aggregates changelog into an InMemoryStore with aggregateCodec; median of the repetitions. Includes admin connect, end offsets, the throwaway consumer group join and its deletion',
      ingestEventsPerSecond: 'bench/ingest.ts: N events / (first request sent -> last answer read), POST /v1/events in batches of 100 and of 1,000, 4 requests in flight, the ingest role and the client in this process; directEventsPerSecond: the same encoded events written by 4 transactional producers, 1,000 per transaction (the ingest\'s own Kafka work, without HTTP); vsDirect = ingest / direct; requestMs: per request, fetch() called -> answer read',
      deliver: 'bench/deliver.ts: N events shaped like the ordered topic (Avro UsageEvents with ordo-seq, keyed by deliverClients subjects). consumer: a kafkajs consumer group (read_committed, no decoding) from earliest; sse: one SSE client from=earliest on a deliver server started after the topic was written (a catch-up reader); sseFromTail: the same on a server whose in-memory tail holds the topic; per reader eventsPerSecond = N / (read started -> N received), steadyEventsPerSecond = (N - first chunk) / (first chunk -> N received), startupMs = read started -> first record; sseVsConsumer = the steady rates\' ratio (target >= 0.5); filtered: deliverClients SSE clients at once, each subject=<one subject>, from the tail, N / (first request -> last client complete); latency: produce time (bench-sent-at header) -> receipt at latencyRate ev/s for latencySeconds after a warm-up, one SSE client from=latest (its own thread) and one kafkajs consumer side by side. Server in process (auth none), SSE clients in a worker thread, fetch',
      restoreSteadyRecordsPerSecond: '(records - 1) / (first record restored -> last record restored): the reading rate without the fixed start-up',
    },
    summary: summaries,
    ratios: ratioRows,
    phases: Object.fromEntries(params.systems.map((s) => [s, { throughput: throughput.get(s), latency: latency.get(s) }])),
    query,
    restore,
    ingest,
    deliver,
    leftoverTopicsDeleted: leftovers.topics,
  };
  const paths = writeResult(result, startedAt);

  process.stdout.write(`\n${formatReport(params, machineAtStart, summaries, ratioRows, { query, restore })}\n\n`);
  if (ingest) process.stdout.write(`${formatIngest(ingest)}\n\n`);
  if (deliver) process.stdout.write(`${formatDeliver(deliver)}\n\n`);
  log(`result written to ${paths.file} (and ${paths.latest}) in ${Math.round(result.durationMs / 1000)} s`);
  const complete = summaries.every((s) => s.complete) && (query?.complete ?? true) && (restore?.complete ?? true) && (ingest?.complete ?? true) && (deliver?.complete ?? true);
  return complete ? 0 : 1;
}

function fmt(v: number | null): string {
  return v === null ? '-' : Math.round(v).toLocaleString('en-US');
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
