/**
 * Footprint of the api replica's persistent store (src/api/read-store.ts): bytes on disk and
 * JS heap per aggregate, with the bench's aggregates (bench/fold.ts: the query workload's
 * month of the bench meters). Run once, by hand, not by `npm run bench`:
 *
 *   node --expose-gc --import tsx bench/read-store-footprint.ts [aggregates, default 1000000] [partitions, default 12]
 *
 * Phase 1 (this process) folds the workload and applies its aggregates to a ReadStore in
 * batches of 2,000 per partition. Phase 2 (a child, so the fold's heap is gone) opens the
 * store, reads every stored window of every meter once and measures the heap after full
 * GCs against an empty store's. Prints one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planQuery } from '../src/api/query-plan.js';
import { collectParts, mergeParts } from '../src/api/query-parts.js';
import { ReadModel } from '../src/api/read-model.js';
import { ReadStore } from '../src/api/read-store.js';
import { partitionOf } from '../src/kafka/partition-of.js';
import { noopLogger } from '../src/observability/logger.js';
import type { UsageAggregate } from '../src/usage/aggregation.js';
import { MeterCatalog } from '../src/usage/meters.js';
import { windowEnd } from '../src/usage/windows.js';
import { eventsToFillWindows, foldWorkload, queryWorkload } from './fold.js';
import { BENCH_METERS, UPDATES_PER_EVENT } from './meters.js';

const TOPIC = 'usage-aggregates';
const BATCH = 2_000;
/** Stored windows per subject in the workload's month: HOUR 720 x 3 meters + DAY 30 x 4 + MONTH x 3. */
const AGGREGATES_PER_SUBJECT = BENCH_METERS.reduce((n, m) => n + m.windows.reduce((k, size) => k + (size === 'HOUR' ? 720 : size === 'DAY' ? 30 : 1), 0), 0);

async function write(dir: string, aggregates: number, partitions: number): Promise<Record<string, number>> {
  const w = queryWorkload(Math.ceil(aggregates / AGGREGATES_PER_SUBJECT));
  const { fold } = await foldWorkload(w, eventsToFillWindows(w), { dedupeWindowMs: 86_400_000, allowedLatenessMs: 35 * 86_400_000, maxFutureMs: 60_000 });
  const byPartition = new Map<number, { key: string; aggregate: UsageAggregate }[]>();
  let keyBytes = 0;
  for (const [key, aggregate] of fold.aggregates.entries()) {
    const p = partitionOf(aggregate.subject, partitions);
    let list = byPartition.get(p);
    if (list === undefined) byPartition.set(p, (list = []));
    list.push({ key, aggregate });
    keyBytes += Buffer.byteLength(key);
  }
  const store = ReadStore.open({ dir, topic: TOPIC, logger: noopLogger });
  const started = performance.now();
  for (const [p, list] of byPartition) {
    for (let i = 0; i < list.length; i += BATCH) await store.apply(p, list.slice(i, i + BATCH), BigInt(i + BATCH));
  }
  const applyMs = performance.now() - started;
  const held = store.size();
  const diskBytes = store.diskBytes();
  const compared = compareSingleSubject(fold.aggregates.entries(), store, partitions);
  await store.close();
  return {
    subjects: w.subjects,
    aggregates: held,
    updatesPerEvent: UPDATES_PER_EVENT,
    diskBytes,
    diskBytesPerAggregate: Math.round(diskBytes / held),
    kafkaKeyBytesPerAggregate: Math.round(keyBytes / held),
    applyAggregatesPerSecond: Math.round(held / (applyMs / 1000)),
    ...compared,
  };
}

/**
 * A single subject's month by day (api-spend, as a dashboard asks), answered by today's
 * in-memory ReadModel and by the store reading the subject's partition only (what a routed
 * query costs locally): mean ms over 500 queries each, same process, same moment.
 */
function compareSingleSubject(entries: Iterable<[string, UsageAggregate]>, store: ReadStore, partitions: number): Record<string, number> {
  const meters = new MeterCatalog(BENCH_METERS);
  const model = new ReadModel(meters);
  for (const [key, aggregate] of entries) model.apply(key, aggregate);
  const w = queryWorkload(1);
  const q = { meter: 'api-spend', subjects: ['cust-7'], from: w.from, to: w.to, windowSize: 'DAY' as const, timeZone: 'UTC', groupBy: [], filter: {} };
  const partition = new Set([partitionOf('cust-7', partitions)]);
  const time = (run: () => unknown): number => {
    for (let i = 0; i < 50; i += 1) run();
    const started = performance.now();
    for (let i = 0; i < 500; i += 1) run();
    return Number(((performance.now() - started) / 500).toFixed(4));
  };
  const memoryMs = time(() => model.query(q));
  const storeMs = time(() => {
    const plan = planQuery(meters, q);
    return mergeParts(plan, [collectParts(plan, store, partition)]);
  });
  return { singleSubjectReadModelMs: memoryMs, singleSubjectStoreMs: storeMs };
}

async function read(dir: string): Promise<Record<string, number>> {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  const heap = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const emptyDir = mkdtempSync(join(tmpdir(), 'ordo-footprint-empty-'));
  const empty = ReadStore.open({ dir: emptyDir, topic: TOPIC, logger: noopLogger });
  const before = heap();
  await empty.close();
  rmSync(emptyDir, { recursive: true, force: true });
  const store = ReadStore.open({ dir, topic: TOPIC, logger: noopLogger });
  const meters = new MeterCatalog(BENCH_METERS);
  const w = queryWorkload(1);
  // Every stored window of every meter, all subjects: each aggregate is read once.
  let rows = 0;
  const started = performance.now();
  for (const meter of BENCH_METERS) {
    const groupBy = meter.aggregation === 'UNIQUE_COUNT' ? ['subject', ...Object.keys(meter.groupBy)] : ['subject'];
    for (const size of meter.windows) {
      const plan = planQuery(meters, { meter: meter.slug, subjects: undefined, from: w.from, to: size === 'MONTH' ? windowEnd(w.from, 'MONTH') : w.to, windowSize: size, timeZone: 'UTC', groupBy, filter: {} });
      rows += mergeParts(plan, [collectParts(plan, store)]).data.length;
    }
  }
  const readMs = performance.now() - started;
  // A single subject's month by day, as a dashboard asks: the routed query's local cost.
  const single = planQuery(meters, { meter: 'api-spend', subjects: ['cust-7'], from: w.from, to: w.to, windowSize: 'DAY', timeZone: 'UTC', groupBy: [], filter: {} });
  const singleStarted = performance.now();
  for (let i = 0; i < 200; i += 1) mergeParts(single, [collectParts(single, store)]);
  const singleMs = (performance.now() - singleStarted) / 200;
  const after = heap();
  const held = store.size();
  await store.close();
  return {
    rowsRead: rows,
    readAggregatesPerSecond: Math.round(rows / (readMs / 1000)),
    singleSubjectMonthByDayMs: Number(singleMs.toFixed(3)),
    heapBytesWithStore: after - before,
    heapBytesPerAggregate: Number(((after - before) / held).toFixed(3)),
  };
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'read') {
    process.stdout.write(JSON.stringify(await read(args[0]!)) + '\n');
    return;
  }
  const aggregates = Number(mode ?? 1_000_000);
  const partitions = Number(args[0] ?? 12);
  const dir = mkdtempSync(join(tmpdir(), 'ordo-footprint-'));
  if (process.env.FOOTPRINT_KEEP === '1') process.stderr.write(`store kept in ${dir}\n`);
  try {
    const written = await write(dir, aggregates, partitions);
    const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), 'read', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`read phase failed (${child.status})`);
    process.stdout.write(JSON.stringify({ partitions, ...written, ...(JSON.parse(child.stdout) as object) }) + '\n');
  } finally {
    if (process.env.FOOTPRINT_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

await main();
