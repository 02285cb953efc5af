/**
 * Query phase: does a usage read stay flat as the events behind it grow? For each N, the
 * query workload (bench/fold.ts) is folded in process through the pipeline's own steps
 * into the aggregates store, the aggregates go into a ReadModel, and the real HTTP API
 * serves it on a free port; then sequential GETs are timed, alternating between the Ns.
 */
import { ReadModel } from '../src/api/read-model.js';
import { type ApiServer, type Freshness, startApiServer } from '../src/api/server.js';
import { noAuthentication } from '../src/auth/authenticator.js';
import { aggregateCodec } from '../src/processors/aggregate.js';
import { MeterCatalog } from '../src/usage/meters.js';
import { type FoldFigures, type QueryWorkload, eventsToFillWindows, foldWorkload, queryWorkload } from './fold.js';
import { withTimeout } from './kafka.js';
import { type MemoryResult, foldSettings, memoryFigures } from './memory.js';
import { BENCH_METERS } from './meters.js';
import type { BenchParams } from './params.js';
import { type LatencySummary, ratio, round2, summarise } from './stats.js';

/** Unrecorded requests per N before measuring (JIT, connection, caches). */
const WARMUP_REQUESTS = 300;
/** An unrecorded fold first, so the first N measured does not pay alone for a cold JIT. */
const WARMUP_FOLD_EVENTS = 20_000;
const REQUEST_TIMEOUT_MS = 10_000;
const FRESH: Freshness = { caughtUp: true, lagRecords: 0, partitions: [] };

interface QueryKind {
  name: string;
  description: string;
  path: (w: QueryWorkload) => string;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const DAY_MS = 86_400_000;
const subjectOf = (w: QueryWorkload): string => `cust-${Math.min(3, w.subjects - 1)}`;
const usage = (meter: string, params: Record<string, string>): string => `/v1/meters/${meter}/usage?${new URLSearchParams(params).toString()}`;

/** The mix, requested in turn: what a billing page, a usage chart and an invoice run ask. */
export const QUERY_KINDS: readonly QueryKind[] = [
  {
    name: 'subject-days',
    description: 'one subject, DAY windows over the 30-day month (api-spend, SUM)',
    path: (w) => usage('api-spend', { subject: subjectOf(w), from: iso(w.from), to: iso(w.to), windowSize: 'DAY' }),
  },
  {
    name: 'subject-hours',
    description: 'one subject, HOUR windows over one day, grouped by region (api-requests, COUNT)',
    path: (w) => usage('api-requests', { subject: subjectOf(w), from: iso(w.from + 14 * DAY_MS), to: iso(w.from + 15 * DAY_MS), windowSize: 'HOUR', groupBy: 'region' }),
  },
  {
    name: 'month-total',
    description: 'all subjects, one total over the calendar month (api-spend, SUM)',
    path: (w) => usage('api-spend', { from: iso(w.from), to: iso(w.to) }),
  },
];

export interface QueryKindResult {
  kind: string;
  /** The answer's windowsRead (stored-window lookups), the same for every request of the kind. */
  windowsRead: number | null;
  /** Rows in the answer's data. */
  rows: number | null;
  latencyMs: LatencySummary | null;
}

export interface QueryCase {
  events: number;
  /** N >= subjects * 720: every (subject, hour) window holds events. */
  allWindowsFilled: boolean;
  fold: FoldFigures;
  readModelAggregates: number;
  /** All measured requests of the N, every kind. */
  latencyMs: LatencySummary | null;
  kinds: QueryKindResult[];
}

export interface QueryResult {
  complete: boolean;
  error?: string;
  subjects: number;
  month: { from: string; to: string };
  requestsPerN: number;
  warmupRequestsPerN: number;
  kinds: { name: string; description: string; path: string }[];
  cases: QueryCase[];
  /** Largest N / smallest N, all kinds together and per kind: about 1 means the read is flat. */
  ratio: { numeratorEvents: number; denominatorEvents: number; p50: number | null; p99: number | null; byKind: { kind: string; p50: number | null; p99: number | null }[] } | null;
  /** Every kind read as many stored windows for every N. */
  windowsReadEqual: boolean | null;
  /** Every N left as many aggregates. */
  aggregatesEqual: boolean | null;
  memory: MemoryResult | null;
  memoryNote: string | null;
}

interface Served {
  events: number;
  fold: FoldFigures;
  readModel: ReadModel;
  server: ApiServer;
  latencies: number[][];
  windowsRead: (number | null)[];
  rows: (number | null)[];
}

export async function runQuery(params: BenchParams, log: (line: string) => void): Promise<QueryResult> {
  const w = queryWorkload(params.querySubjects);
  const result: QueryResult = {
    complete: false,
    subjects: w.subjects,
    month: { from: iso(w.from), to: iso(w.to) },
    requestsPerN: params.queryRequests,
    warmupRequestsPerN: WARMUP_REQUESTS,
    kinds: QUERY_KINDS.map((k) => ({ name: k.name, description: k.description, path: k.path(w) })),
    cases: [],
    ratio: null,
    windowsReadEqual: null,
    aggregatesEqual: null,
    memory: null,
    memoryNote: null,
  };
  const meters = new MeterCatalog(BENCH_METERS);
  const served: Served[] = [];
  try {
    await foldWorkload(w, WARMUP_FOLD_EVENTS, foldSettings(params));
    for (const n of params.queryEvents) {
      log(`query: folding ${n.toLocaleString('en-US')} events in process (${w.subjects} subjects, one month)`);
      const { readModel, fold } = await readModelFor(w, n, params, meters);
      log(`  ${fold.eventsPerSecond?.toLocaleString('en-US') ?? '-'} ev/s; ${readModel.size} aggregates`);
      const server = await startApiServer({ port: 0, host: '127.0.0.1', meters, readModel, freshness: () => FRESH, auth: noAuthentication });
      served.push({ events: n, fold, readModel, server, latencies: QUERY_KINDS.map(() => []), windowsRead: QUERY_KINDS.map(() => null), rows: QUERY_KINDS.map(() => null) });
    }
    const paths = QUERY_KINDS.map((k) => k.path(w));
    log(`query: ${WARMUP_REQUESTS} warm-up + ${params.queryRequests} measured GETs per N, alternating between N = ${params.queryEvents.join(', ')}`);
    for (let r = 0; r < WARMUP_REQUESTS + params.queryRequests; r++) {
      const k = r % QUERY_KINDS.length;
      // Alternate who goes first, so neither N always follows the other's request.
      const order = r % 2 === 0 ? served : [...served].reverse();
      for (const s of order) {
        const answer = await timedGet(s.server.port, paths[k]!);
        if (r < WARMUP_REQUESTS) continue;
        s.latencies[k]!.push(answer.ms);
        const known = s.windowsRead[k];
        if (known === null) {
          s.windowsRead[k] = answer.windowsRead;
          s.rows[k] = answer.rows;
        } else if (known !== answer.windowsRead) {
          throw new Error(`${QUERY_KINDS[k]!.name} at N=${s.events}: windowsRead changed from ${known} to ${answer.windowsRead}`);
        }
      }
    }
    result.complete = true;
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    for (const s of served) await withTimeout(s.server.close(), 10_000, 'closing the API server').catch(() => undefined);
  }
  result.cases = served.map((s) => ({
    events: s.events,
    allWindowsFilled: s.events >= eventsToFillWindows(w),
    fold: s.fold,
    readModelAggregates: s.readModel.size,
    latencyMs: summarise(s.latencies.flat()),
    kinds: QUERY_KINDS.map((k, i) => ({ kind: k.name, windowsRead: s.windowsRead[i] ?? null, rows: s.rows[i] ?? null, latencyMs: summarise(s.latencies[i]!) })),
  }));
  const first = result.cases[0];
  const last = result.cases[result.cases.length - 1];
  if (first && last && result.cases.length > 1) {
    result.ratio = {
      numeratorEvents: last.events,
      denominatorEvents: first.events,
      p50: ratio(last.latencyMs?.p50 ?? null, first.latencyMs?.p50 ?? null),
      p99: ratio(last.latencyMs?.p99 ?? null, first.latencyMs?.p99 ?? null),
      byKind: QUERY_KINDS.map((k, i) => ({
        kind: k.name,
        p50: ratio(last.kinds[i]?.latencyMs?.p50 ?? null, first.kinds[i]?.latencyMs?.p50 ?? null),
        p99: ratio(last.kinds[i]?.latencyMs?.p99 ?? null, first.kinds[i]?.latencyMs?.p99 ?? null),
      })),
    };
    result.windowsReadEqual = QUERY_KINDS.every((_, i) => result.cases.every((c) => c.kinds[i]?.windowsRead === first.kinds[i]?.windowsRead));
    result.aggregatesEqual = result.cases.every((c) => c.readModelAggregates === first.readModelAggregates);
  }
  served.length = 0; // let the read models go before the memory measurement
  log(`query: heap per entry (${params.memoryEvents.toLocaleString('en-US')} events, --expose-gc)`);
  const memory = await memoryFigures(params);
  result.memory = memory.result;
  result.memoryNote = memory.note;
  return result;
}

/** Folds n events and loads the resulting aggregates into a ReadModel; the fold's stores are dropped on return. */
async function readModelFor(w: QueryWorkload, n: number, params: BenchParams, meters: MeterCatalog): Promise<{ readModel: ReadModel; fold: FoldFigures }> {
  const { fold, figures } = await foldWorkload(w, n, foldSettings(params));
  const readModel = new ReadModel(meters);
  // As the api role holds them: decoded from the bytes the aggregates topic carries.
  for (const [key, aggregate] of fold.aggregates.entries()) readModel.apply(key, aggregateCodec.decode(aggregateCodec.encode(aggregate)));
  return { readModel, fold: figures };
}

/** One GET, timed from the call to the whole body read; the body is parsed after the clock stops. */
async function timedGet(port: number, path: string): Promise<{ ms: number; windowsRead: number; rows: number }> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await response.text();
  const ms = round2(performance.now() - started);
  if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${response.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { windowsRead: number; data: unknown[] };
  return { ms, windowsRead: body.windowsRead, rows: body.data.length };
}
