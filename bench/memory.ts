/**
 * Heap cost of the write path's state and of the read model, per entry: folds the query
 * workload (bench/fold.ts) and measures the heap after full GCs as each structure is let
 * go. Needs `global.gc`: `npm run bench` runs under tsx without --expose-gc, so run.ts
 * starts this file as a child (`node --expose-gc --import tsx bench/memory.ts`), which
 * prints one JSON line (MemoryResult) on stdout.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InMemoryStore } from '../src/engine/state-store.js';
import { ReadModel } from '../src/api/read-model.js';
import { aggregateCodec } from '../src/processors/aggregate.js';
import type { UsageAggregate } from '../src/usage/aggregation.js';
import { MeterCatalog } from '../src/usage/meters.js';
import { type FoldFigures, type QueryWorkload, foldWorkload, queryWorkload } from './fold.js';
import { BENCH_METERS } from './meters.js';
import { type BenchParams, loadParams } from './params.js';
import { ordoConfig } from './processors.js';

export interface MemoryResult {
  method: string;
  events: number;
  subjects: number;
  aggregates: number;
  dedupeIds: number;
  uniqueMembers: number;
  /** Heap after full GCs, bytes: what each structure held when it was let go. */
  heapBytes: { dedupeStore: number; uniqueStore: number; aggregatesStore: number; readModel: number };
  bytesPerDedupeId: number | null;
  bytesPerUniqueMember: number | null;
  bytesPerAggregateInStore: number | null;
  bytesPerAggregateInReadModel: number | null;
  /** The fold's own rate in this run (a by-product; the query phase reports the one that counts). */
  foldEventsPerSecond: number | null;
}

const CHILD_TIMEOUT_MS = 300_000;

/** Dedupe window and lateness as Ordo's configuration has them (ORDO_* variables apply). */
export function foldSettings(params: BenchParams): { dedupeWindowMs: number; allowedLatenessMs: number; maxFutureMs: number } {
  const config = ordoConfig(params, 'bench-fold');
  return { dedupeWindowMs: config.dedupeWindowMs, allowedLatenessMs: config.allowedLatenessMs, maxFutureMs: config.maxFutureMs };
}

/** Heap used after two full GCs; needs global.gc (node --expose-gc). */
export function settledHeap(): number {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('heap figures need global.gc (node --expose-gc)');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Measures in this process; needs global.gc (node --expose-gc). */
export async function measureMemory(params: BenchParams, method: string): Promise<MemoryResult> {
  const heap = settledHeap;
  heap(); // fails at once without global.gc, before the fold
  const w = queryWorkload(params.querySubjects);
  // Only `state` holds the stores, and nothing holds the fold itself (not even an awaited
  // value left in this async frame), so each store is freed when it is deleted here.
  const state: FoldState = {};
  const figures = await foldInto(state, w, params.memoryEvents, foldSettings(params));
  const withStores = heap();
  delete state.dedupe;
  const withoutDedupe = heap();
  delete state.unique;
  const withoutUnique = heap();
  const readModel = readModelOf(state);
  const withReadModel = heap();
  delete state.aggregates;
  const readModelOnly = heap();
  const heldAggregates = readModel.size;
  const per = (bytes: number, count: number): number | null => (count > 0 ? Math.round(bytes / count) : null);
  const heapBytes = {
    dedupeStore: withStores - withoutDedupe,
    uniqueStore: withoutDedupe - withoutUnique,
    aggregatesStore: withReadModel - readModelOnly,
    readModel: withReadModel - withoutUnique,
  };
  return {
    method,
    events: figures.events,
    subjects: w.subjects,
    aggregates: heldAggregates,
    dedupeIds: figures.dedupeIds,
    uniqueMembers: figures.uniqueMembers,
    heapBytes,
    bytesPerDedupeId: per(heapBytes.dedupeStore, figures.dedupeIds),
    bytesPerUniqueMember: per(heapBytes.uniqueStore, figures.uniqueMembers),
    bytesPerAggregateInStore: per(heapBytes.aggregatesStore, figures.aggregates),
    bytesPerAggregateInReadModel: per(heapBytes.readModel, heldAggregates),
    foldEventsPerSecond: figures.eventsPerSecond,
  };
}

interface FoldState {
  dedupe?: InMemoryStore<number>;
  unique?: InMemoryStore<number>;
  aggregates?: InMemoryStore<UsageAggregate>;
}

async function foldInto(state: FoldState, w: QueryWorkload, n: number, settings: ReturnType<typeof foldSettings>): Promise<FoldFigures> {
  const { fold, figures } = await foldWorkload(w, n, settings);
  state.dedupe = fold.dedupe;
  state.unique = fold.unique;
  state.aggregates = fold.aggregates;
  return figures;
}

/** As the api role holds them: fresh keys and aggregates decoded from the topic's bytes. */
function readModelOf(state: FoldState): ReadModel {
  // Read from `state` here, not passed in: a value loaded in the caller's frame can stay
  // referenced there and keep the store alive after it is deleted.
  const readModel = new ReadModel(new MeterCatalog(BENCH_METERS));
  for (const [key, aggregate] of state.aggregates?.entries() ?? []) {
    readModel.apply(Buffer.from(key, 'utf8').toString('utf8'), aggregateCodec.decode(aggregateCodec.encode(aggregate)));
  }
  return readModel;
}

/**
 * The memory figures: measured here if this process has global.gc, else in a child
 * `node --expose-gc --import tsx bench/memory.ts`. Null (with the reason) when neither works.
 */
export async function memoryFigures(params: BenchParams): Promise<{ result: MemoryResult | null; note: string | null }> {
  if (params.memoryEvents === 0) return { result: null, note: 'skipped (BENCH_MEMORY_EVENTS=0)' };
  if (globalThis.gc !== undefined) return { result: await measureMemory(params, 'in-process global.gc'), note: null };
  try {
    return { result: await runChild(params), note: null };
  } catch (error) {
    return { result: null, note: `global.gc is not available here and the --expose-gc child failed: ${(error as Error).message}` };
  }
}

function runChild(params: BenchParams): Promise<MemoryResult> {
  const script = fileURLToPath(import.meta.url);
  const root = resolve(script, '..', '..');
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, BENCH_MEMORY_EVENTS: String(params.memoryEvents), BENCH_QUERY_SUBJECTS: String(params.querySubjects) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // process.exit (the deadline, a signal) must not leave the child running.
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise<MemoryResult>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`no result within ${CHILD_TIMEOUT_MS / 1000} s`));
    }, CHILD_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      process.off('exit', killChild);
      fail(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      process.off('exit', killChild);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code ?? signal}`);
        done(JSON.parse(line) as MemoryResult);
      } catch (error) {
        fail(new Error(`${(error as Error).message}; stderr: ${stderr.trim().slice(-500) || '(empty)'}`));
      }
    });
  });
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  measureMemory(loadParams(), 'child process: node --expose-gc --import tsx bench/memory.ts').then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
