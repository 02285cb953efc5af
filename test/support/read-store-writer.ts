import { fileURLToPath } from 'node:url';
import { ReadStore, type AppliedRecord } from '../../src/api/read-store.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type UsageAggregate, aggregateKey } from '../../src/usage/aggregation.js';

/**
 * Deterministic batches of the aggregates topic, and (run as a script) a process that applies
 * them to a ReadStore until it is killed: the crash harness of test/api/read-store.test.ts.
 * Usage: tsx test/support/read-store-writer.ts <dir> <topic> <partitions>
 */

export const RECORDS_PER_BATCH = 200;
const HOUR = 3_600_000;
const BASE = Date.UTC(2026, 0, 1);

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Batch `batch` of `partition`: records of a small key space (so keys are updated, re-delivered and tombstoned). */
export function batchOf(partition: number, batch: number): AppliedRecord[] {
  const next = random(partition * 1_000_003 + batch);
  const records: AppliedRecord[] = [];
  for (let i = 0; i < RECORDS_PER_BATCH; i += 1) {
    const latest = next() < 0.5;
    const start = BASE + Math.floor(next() * 6) * HOUR;
    const subject = `s${partition}-${Math.floor(next() * 20)}`;
    const at = { meter: latest ? 'latest' : 'sum', subject, groupBy: { region: next() < 0.5 ? 'eu' : 'us' }, windowSize: 'HOUR' as const, windowStart: start };
    const key = aggregateKey(at);
    if (next() < 0.1) {
      records.push({ key, aggregate: null });
      continue;
    }
    // Versions grow with the batch; a few are re-deliveries of older ones.
    const version = batch * RECORDS_PER_BATCH + i - (next() < 0.1 ? RECORDS_PER_BATCH * 2 : 0);
    const value = String(Math.floor(next() * 1e6) - 5e5);
    const aggregate: UsageAggregate = {
      ...at,
      windowEnd: start + HOUR,
      aggregation: latest ? 'LATEST' : 'SUM',
      value,
      sum: latest ? null : value,
      count: 1 + Math.floor(next() * 100),
      firstEventTime: start + 1,
      lastEventTime: start + 2,
      lastServiceTime: Math.floor(next() * 2 ** 40).toString(16).padStart(16, '0'),
      lastServiceNode: `node-${Math.floor(next() * 3)}`,
      version,
      corrections: 0,
    };
    records.push({ key, aggregate });
  }
  return records;
}

/** The offset after batch `batch`. */
export function nextOffsetAfter(batch: number): bigint {
  return BigInt((batch + 1) * RECORDS_PER_BATCH);
}

async function main(dir: string, topic: string, partitions: number): Promise<void> {
  const store = ReadStore.open({ dir, topic, logger: noopLogger });
  const held = store.held();
  const batches = Array.from({ length: partitions }, (_, p) => Number((held.get(p)?.nextOffset ?? 0n) / BigInt(RECORDS_PER_BATCH)));
  for (let round = 0; ; round += 1) {
    // Partitions apply concurrently, as a reader's fetches do.
    await Promise.all(
      batches.map(async (batch, p) => {
        await store.apply(p, batchOf(p, batch), nextOffsetAfter(batch));
        batches[p] = batch + 1;
      }),
    );
    process.stdout.write(`round ${round}\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, topic, partitions] = process.argv.slice(2);
  await main(dir!, topic!, Number(partitions));
}
