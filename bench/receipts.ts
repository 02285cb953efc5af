/**
 * Receipts phase: does a receipt lookup stay flat as the index grows? One lmdb index (the
 * api role's own ReceiptIndex, written through its `apply`, so the layout is the real one)
 * is filled in bulk to each N of BENCH_RECEIPTS_SIZES (default 10^5, 10^6, 10^7 receipts;
 * no broker: the lookup curve is the index's), and at each N sequential lookups of random
 * indexed events (and of events never seen) are timed through the same path the route takes
 * (index range read + receiptAnswer). Reports p50/p99 per N and p99(largest)/p99(smallest).
 *
 *   npx tsx bench/receipts.ts            (BENCH_RECEIPTS_SIZES=100000,1000000 for a short run)
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { receiptAnswer } from '../src/receipts/answers.js';
import { type IndexEntries, type Receipt, eventKey } from '../src/receipts/entries.js';
import { ReceiptIndex } from '../src/receipts/receipt-index.js';
import { machineInfo } from './report.js';
import { type LatencySummary, ratio, round2, summarise } from './stats.js';

const SIZES = (process.env.BENCH_RECEIPTS_SIZES ?? '100000,1000000,10000000').split(',').map((s) => Number(s.trim()));
const LOOKUPS = Number(process.env.BENCH_RECEIPTS_LOOKUPS ?? 20_000);
const WARMUP = 2_000;
/** Records per lmdb transaction while filling (the follower's batches are smaller; bulk is what this is). */
const FILL_BATCH = 20_000;
const T0 = Date.UTC(2026, 10, 1);
const SOURCES = ['api-gateway', 'billing', 'llm-proxy', 'storage'];

interface SizeResult {
  entries: number;
  fillSeconds: number;
  fillPerSecond: number;
  dirBytes: number;
  hit: LatencySummary | null;
  miss: LatencySummary | null;
}

/** The i-th event of the bench: realistic sizes (an accepted receipt with three aggregate keys, one in 20 also a dropped re-send). */
function entriesOf(i: number): { at: number; entries: IndexEntries } {
  const source = SOURCES[i % SOURCES.length]!;
  const id = `evt-${i.toString(36)}-${(i * 2654435761) % 4294967296}`;
  const at = T0 + Math.floor(i / 100);
  const time = (BigInt(at) << 16n).toString(16).padStart(16, '0');
  const subject = `cust-${i % 5_000}`;
  const day = new Date(at - (at % 86_400_000)).toISOString();
  const accepted: Receipt = {
    kind: 'accepted',
    source,
    id,
    subject,
    type: 'api.request',
    seq: String(Math.floor(i / 5_000)),
    serviceTime: time,
    serviceNode: 'ordo-0',
    orderKey: { time, node: 'ordo-0' },
    position: { partition: i % 12, offset: String(Math.floor(i / 12)) },
    at,
    aggregates: [`["api-requests","${subject}",{"region":"eu"},"DAY","${day}"]`, `["api-spend","${subject}",{},"DAY","${day}"]`, `["active-users","${subject}",{},"DAY","${day}"]`],
  };
  const receipts: IndexEntries['receipts'] = [{ key: eventKey(source, id), receipt: accepted }];
  if (i % 20 === 0) receipts.push({ key: eventKey(source, id), receipt: { kind: 'duplicate', source, id, input: { partition: i % 12, offset: String(i) }, seenAt: at + 5, position: { partition: i % 12, offset: String(i) }, at: at + 5 } });
  return { at, entries: { receipts, trail: undefined } };
}

function idOf(i: number): { source: string; id: string } {
  return { source: SOURCES[i % SOURCES.length]!, id: `evt-${i.toString(36)}-${(i * 2654435761) % 4294967296}` };
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

function time(lookups: number, pick: () => { source: string; id: string }, index: ReceiptIndex, expectFound: boolean): LatencySummary | null {
  const ms: number[] = [];
  for (let i = 0; i < WARMUP + lookups; i++) {
    const { source, id } = pick();
    const started = process.hrtime.bigint();
    const answer = receiptAnswer(source, id, index.receipts(source, id));
    const took = Number(process.hrtime.bigint() - started) / 1e6;
    if ((answer !== undefined) !== expectFound) throw new Error(`lookup of ${source}/${id}: ${expectFound ? 'not found' : 'found'}`);
    if (i >= WARMUP) ms.push(took);
  }
  return summarise(ms);
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'ordo-bench-receipts-'));
  mkdirSync(dir, { recursive: true });
  const index = new ReceiptIndex({ dir, topics: { ordered: 'o', dlq: 'd', late: 'l', duplicates: 'u' }, terminalTypes: [] });
  const results: SizeResult[] = [];
  let filled = 0;
  let fillMs = 0;
  // A fixed seed: every run looks up the same events.
  let seed = 12345;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  try {
    for (const size of [...SIZES].sort((a, b) => a - b)) {
      const started = Date.now();
      while (filled < size) {
        const n = Math.min(FILL_BATCH, size - filled);
        const batch = Array.from({ length: n }, (_, k) => entriesOf(filled + k));
        index.apply('ordered', 0, BigInt(filled + n), batch);
        filled += n;
      }
      fillMs += Date.now() - started;
      const hit = time(LOOKUPS, () => idOf(Math.floor(random() * filled)), index, true);
      const miss = time(LOOKUPS, () => ({ source: 'api-gateway', id: `never-${Math.floor(random() * 1e12)}` }), index, false);
      const result: SizeResult = { entries: index.entries(), fillSeconds: round2(fillMs / 1000), fillPerSecond: Math.round(filled / (fillMs / 1000)), dirBytes: dirBytes(dir), hit, miss };
      results.push(result);
      console.log(
        `${String(size).padStart(9)} receipts  hit p50 ${hit?.p50} ms  p99 ${hit?.p99} ms  p999 ${hit?.p999} ms | miss p50 ${miss?.p50} ms  p99 ${miss?.p99} ms | ` +
          `filled in ${result.fillSeconds} s (${result.fillPerSecond}/s), ${(result.dirBytes / 1e9).toFixed(2)} GB`,
      );
    }
  } finally {
    void index.close().then(() => rmSync(dir, { recursive: true, force: true }));
  }
  const first = results[0]!;
  const last = results[results.length - 1]!;
  const flatness = { hitP99Ratio: ratio(last.hit?.p99 ?? null, first.hit?.p99 ?? null), missP99Ratio: ratio(last.miss?.p99 ?? null, first.miss?.p99 ?? null), from: first.entries, to: last.entries };
  console.log(`p99(${last.entries}) / p99(${first.entries}): hits ${flatness.hitP99Ratio}, misses ${flatness.missP99Ratio}`);
  const out = join('bench', 'results', `${new Date().toISOString().replace(/:/g, '-').replace(/\..*/, '')}-receipts.json`);
  writeFileSync(out, `${JSON.stringify({ phase: 'receipts-lookup', lookups: LOOKUPS, results, flatness, machine: machineInfo() }, null, 2)}\n`);
  console.log(`written to ${out}`);
}

main();
