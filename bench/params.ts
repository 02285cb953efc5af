import { EnvReader } from '../src/config/env.js';

/** Everything a bench run is parameterised by; all from the environment, all recorded in the result. */
export interface BenchParams {
  brokers: string[];
  registryUrl: string;
  /** Events pre-produced for each throughput phase. */
  events: number;
  /** Partitions of every input/output topic. */
  partitions: number;
  /** Paced latency phase: events per second and seconds of measured production. */
  latencyRate: number;
  latencySeconds: number;
  /** Paced events sent (and awaited) before the measured window, so start-up is not measured. */
  latencyWarmupSeconds: number;
  /** Distinct subjects (Kafka keys). */
  subjects: number;
  /** Share of events that carry an upstream `service-time` context header. */
  contextRatio: number;
  /**
   * Events of an unrecorded throughput pass per system before anything is measured, so
   * the first system measured does not pay alone for a cold JIT, cold connections and a
   * cold broker (0 disables).
   */
  warmupEvents: number;
  /** Repetitions of the whole set of phases; medians are reported when > 1. */
  rounds: number;
  /** Systems to run, in order (SYSTEMS). */
  systems: SystemName[];
  /** Upper bound for a throughput drain (all N outputs visible). */
  drainTimeoutMs: number;
  /** Hard deadline for the whole run; past it the bench cleans up and exits non-zero. */
  deadlineMs: number;
  /** Poll interval of the read_committed output reader (its fetch maxWaitTimeInMs). */
  readerMaxWaitMs: number;
  /** Query phase (bench/query.ts): in-process fold of N events, then HTTP query latency per N. */
  query: boolean;
  /** The Ns compared, ascending (the ratio is largest / smallest). */
  queryEvents: number[];
  /** Measured sequential GETs per N (after a fixed unrecorded warm-up). */
  queryRequests: number;
  /** Subjects of the query workload: fixed, so every N fills the same windows. */
  querySubjects: number;
  /** Events folded in a child process with --expose-gc to measure heap per aggregate / dedupe id (0: skip). */
  memoryEvents: number;
  /** Restore phase (bench/restore.ts): restorePartitions over an aggregates changelog. */
  restore: boolean;
  restoreRecords: number;
  restoreRepetitions: number;
  /** Run the Java anchors (bench/anchors.ts) when their systems are selected; false drops them. */
  anchors: boolean;
  /** Records kafka-producer-perf writes in a measured phase. */
  perfRecords: number;
  /** kafka-producer-perf's --transaction-duration-ms (a commit every this many ms). */
  perfTransactionMs: number;
  /** Ingest phase (bench/ingest.ts): HTTP batches of 100 and 1,000 against direct produce. */
  ingest: boolean;
  ingestEvents: number;
  /** Deliver phase (bench/deliver.ts): SSE clients of the deliver role against a kafkajs consumer. */
  deliver: boolean;
  deliverEvents: number;
  /** Concurrent SSE clients of the filtered run, one subject each (also the topic's subject count). */
  deliverClients: number;
}

/**
 * kafka-producer-perf and java-eos-passthrough are the anchors (bench/anchors.ts): Kafka's
 * own transactional producer (the broker's limit) and a Java exactly-once passthrough.
 * ordo-pipeline runs the default reorder window (1 s); ordo-window-<ms> the same pipeline
 * with ORDO_REORDER_WINDOW_MS=<ms> (0: events are only sorted within a batch).
 */
export const SYSTEMS = ['kafka-producer-perf', 'java-eos-passthrough', 'baseline-plain', 'baseline-tx', 'ordo-window-0', 'ordo-window-250', 'ordo-pipeline', 'ordo-window-3000', 'ordo-aggregate', 'ordo-aggregate-no-corrections'] as const;
/** The reorder window of each Ordo system without aggregation. */
export const WINDOW_MS: Partial<Record<SystemName, number>> = { 'ordo-window-0': 0, 'ordo-window-250': 250, 'ordo-pipeline': 1_000, 'ordo-window-3000': 3_000 };
export type SystemName = (typeof SYSTEMS)[number];
/** The systems BENCH_ANCHORS=0 drops. */
export const ANCHORS: readonly SystemName[] = ['kafka-producer-perf', 'java-eos-passthrough'];

export function loadParams(env: Record<string, string | undefined> = process.env): BenchParams {
  const read = new EnvReader(env);
  const systems = read.list('BENCH_SYSTEMS', [...SYSTEMS]);
  for (const s of systems) {
    if (!(SYSTEMS as readonly string[]).includes(s)) throw new Error(`BENCH_SYSTEMS: "${s}" is not one of ${SYSTEMS.join(', ')}`);
  }
  const anchors = read.bool('BENCH_ANCHORS', true);
  const contextPercent = read.int('BENCH_CONTEXT_PERCENT', 10, 0, 100);
  return {
    brokers: read.list('KAFKA_BROKERS', ['127.0.0.1:9092']),
    registryUrl: read.string('SCHEMA_REGISTRY_URL', 'http://127.0.0.1:8081/apis/ccompat/v7'),
    events: read.int('BENCH_EVENTS', 50_000, 1, 10_000_000),
    partitions: read.int('BENCH_PARTITIONS', 3, 1, 1_000),
    latencyRate: read.int('BENCH_LATENCY_RATE', 1_000, 1, 1_000_000),
    latencySeconds: read.int('BENCH_LATENCY_SECONDS', 10, 1, 3_600),
    latencyWarmupSeconds: read.int('BENCH_LATENCY_WARMUP_SECONDS', 2, 0, 600),
    subjects: read.int('BENCH_SUBJECTS', 1_000, 1, 10_000_000),
    contextRatio: contextPercent / 100,
    warmupEvents: read.int('BENCH_WARMUP_EVENTS', 10_000, 0, 10_000_000),
    rounds: read.int('BENCH_ROUNDS', 1, 1, 100),
    systems: (systems as SystemName[]).filter((s) => anchors || !ANCHORS.includes(s)),
    drainTimeoutMs: read.int('BENCH_DRAIN_TIMEOUT_S', 120, 1, 3_600) * 1000,
    deadlineMs: read.int('BENCH_DEADLINE_S', 900, 10, 24 * 3_600) * 1000,
    readerMaxWaitMs: read.int('BENCH_READER_MAX_WAIT_MS', 50, 1, 5_000),
    query: read.bool('BENCH_QUERY', true),
    queryEvents: queryEvents(read),
    queryRequests: read.int('BENCH_QUERY_REQUESTS', 2_000, 1, 1_000_000),
    querySubjects: read.int('BENCH_QUERY_SUBJECTS', 10, 1, 100_000),
    memoryEvents: read.int('BENCH_MEMORY_EVENTS', 200_000, 0, 10_000_000),
    restore: read.bool('BENCH_RESTORE', true),
    restoreRecords: read.int('BENCH_RESTORE_RECORDS', 200_000, 1, 10_000_000),
    restoreRepetitions: read.int('BENCH_RESTORE_REPETITIONS', 3, 1, 20),
    anchors,
    perfRecords: read.int('BENCH_PERF_RECORDS', 200_000, 1, 100_000_000),
    perfTransactionMs: read.int('BENCH_PERF_TRANSACTION_MS', 1_000, 1, 60_000),
    ingest: read.bool('BENCH_INGEST', true),
    ingestEvents: read.int('BENCH_INGEST_EVENTS', 20_000, 1_000, 10_000_000),
    deliver: read.bool('BENCH_DELIVER', true),
    deliverEvents: read.int('BENCH_DELIVER_EVENTS', 50_000, 1_000, 1_000_000),
    deliverClients: read.int('BENCH_DELIVER_CLIENTS', 100, 1, 1_000),
  };
}

function queryEvents(read: EnvReader): number[] {
  const items = read.list('BENCH_QUERY_EVENTS', ['10000', '1000000']);
  const ns = items.map((item) => {
    if (!/^\d+$/.test(item) || Number(item) < 1 || Number(item) > 100_000_000) {
      throw new Error(`BENCH_QUERY_EVENTS: "${item}" is not a whole number of events in [1, 100000000]`);
    }
    return Number(item);
  });
  return [...new Set(ns)].sort((a, b) => a - b);
}
