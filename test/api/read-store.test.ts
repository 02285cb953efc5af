import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fc from 'fast-check';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { MemorySource } from '../../src/api/memory-source.js';
import type { QueriedAggregate } from '../../src/api/query-parts.js';
import { ReadStore } from '../../src/api/read-store.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type UsageAggregate, aggregateKey } from '../../src/usage/aggregation.js';
import type { WindowSize } from '../../src/usage/windows.js';
import { ROOT } from '../support/process.js';
import { batchOf, nextOffsetAfter, RECORDS_PER_BATCH } from '../support/read-store-writer.js';
import { tempDirs } from '../support/temp-dirs.js';
import { ALL_METERS, anyEvents, anyPlacement, anyQuery, deliveries, expectMergedEqualsOracle, oracleOf, partitionOf, splits, writeAggregates } from '../support/unit/usage-parts.js';

const newDir = tempDirs('ordo-read-store-');
/** Writer processes: killed after each test, whatever its outcome (a failed test must not leave one running). */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 1);

function openStore(dir: string, topic = 'usage-aggregates'): ReadStore {
  return ReadStore.open({ dir, topic, logger: noopLogger });
}

function aggregate(overrides: Partial<UsageAggregate> = {}): UsageAggregate {
  return {
    meter: 'sum',
    subject: 'acme',
    groupBy: { region: 'eu' },
    windowSize: 'HOUR',
    windowStart: START,
    windowEnd: START + HOUR,
    aggregation: 'SUM',
    value: '1.5',
    sum: '1.5',
    count: 1,
    firstEventTime: START + 10,
    lastEventTime: START + 10,
    lastServiceTime: '0000000000000001',
    lastServiceNode: 'node-a',
    version: 1,
    corrections: 0,
    ...overrides,
  };
}

const keyOf = (a: UsageAggregate): string => aggregateKey(a);

/** What a query reads of an aggregate, as the store gives it back (the order key only for LATEST). */
function queried(a: UsageAggregate): QueriedAggregate {
  const latest = a.aggregation === 'LATEST';
  return {
    subject: a.subject,
    groupBy: a.groupBy,
    aggregation: a.aggregation,
    value: a.value,
    sum: a.sum ?? (a.aggregation === 'SUM' ? a.value : null),
    count: a.count,
    firstEventTime: a.firstEventTime,
    lastEventTime: a.lastEventTime,
    lastServiceTime: latest ? a.lastServiceTime : '0000000000000000',
    lastServiceNode: latest ? a.lastServiceNode : '',
  };
}

function read(store: ReadStore, meter = 'sum', start = START, subjects?: string[], partitions?: number[], size: WindowSize = 'HOUR'): QueriedAggregate[] {
  return [...store.window(meter, size, start, subjects, partitions === undefined ? undefined : new Set(partitions))];
}

describe('ReadStore.apply', () => {
  it('keeps the highest version per key, in one batch and across batches, and counts what it holds', async () => {
    const store = openStore(newDir());
    const v1 = aggregate();
    const v2 = aggregate({ version: 2, value: '4', sum: '4', count: 2 });
    await store.apply(0, [{ key: keyOf(v1), aggregate: v1 }, { key: keyOf(v2), aggregate: v2 }, { key: keyOf(v1), aggregate: v1 }], 3n);
    expect(read(store)).toEqual([queried(v2)]);
    await store.apply(0, [{ key: keyOf(v1), aggregate: v1 }], 4n);
    expect(read(store)).toEqual([queried(v2)]);
    expect(store.size()).toBe(1);
    expect(store.size(0)).toBe(1);
    expect(store.held()).toEqual(new Map([[0, { nextOffset: 4n, appliedAt: expect.any(Number) as number }]]));
    await store.close();
  });

  it('removes a key on a tombstone; a value after it in the batch comes back whatever its version', async () => {
    const store = openStore(newDir());
    const a = aggregate({ version: 5 });
    const b = aggregate({ subject: 'globex', version: 7 });
    await store.apply(2, [{ key: keyOf(a), aggregate: a }, { key: keyOf(b), aggregate: b }], 2n);
    expect(store.size(2)).toBe(2);
    const again = aggregate({ version: 1, value: '9', sum: '9' });
    await store.apply(2, [{ key: keyOf(a), aggregate: null }, { key: keyOf(b), aggregate: null }, { key: keyOf(a), aggregate: again }, { key: 'not a key', aggregate: null }], 6n);
    expect(read(store)).toEqual([queried(again)]);
    expect(store.size(2)).toBe(1);
    // A tombstone of a key never held changes nothing but the checkpoint.
    await store.apply(2, [{ key: keyOf(b), aggregate: null }], 7n);
    expect(store.size(2)).toBe(1);
    expect(store.held().get(2)?.nextOffset).toBe(7n);
    await store.close();
  });

  it('skips (and counts) records whose key is not an aggregate key or not of their aggregate, or no schema can carry, and applies the rest', async () => {
    const store = openStore(newDir());
    const a = aggregate();
    const beyond = aggregate({ subject: 'beyond', firstEventTime: Number.MIN_SAFE_INTEGER });
    await store.apply(0, [{ key: 'x', aggregate: a }, { key: keyOf(aggregate({ subject: 'other' })), aggregate: a }, { key: keyOf(beyond), aggregate: beyond }, { key: keyOf(a), aggregate: a }], 3n);
    expect(store.rejected).toBe(3);
    expect(read(store)).toEqual([queried(a)]);
    await store.close();
  });

  it('gives back every aggregation as stored, with the window, subject and group values it was applied under', async () => {
    const store = openStore(newDir());
    const all = [
      aggregate({ meter: 'count', aggregation: 'COUNT', value: '3', sum: null, count: 3 }),
      aggregate({ meter: 'count', subject: 'odd', aggregation: 'COUNT', value: '0', sum: null, count: 3 }),
      aggregate({ meter: 'avg', aggregation: 'AVG', value: '0.33333333333333333333', sum: '1', count: 3 }),
      aggregate({ meter: 'sum', subject: 'b', value: '-12.000001', sum: '-12.000001', groupBy: {} }),
      aggregate({ meter: 'min', aggregation: 'MIN', value: '-1', sum: null }),
      aggregate({ meter: 'latest', aggregation: 'LATEST', value: '7', sum: null, lastServiceTime: 'ffffffffffff0001', lastServiceNode: 'ü-node' }),
      aggregate({ meter: 'unique', aggregation: 'UNIQUE_COUNT', value: '12', sum: null, count: 40, windowSize: 'MONTH', windowEnd: Date.UTC(2026, 1, 1) }),
      aggregate({ meter: 'sum', subject: 'voided', value: '0', sum: '0', count: 0, firstEventTime: START - 5 * HOUR, lastEventTime: START + 7 * HOUR }),
      aggregate({ meter: 'sum', subject: 'early', windowStart: Date.UTC(1969, 11, 31, 23), windowEnd: Date.UTC(1970, 0, 1) }),
    ];
    await store.apply(0, all.map((a) => ({ key: keyOf(a), aggregate: a })), 9n);
    for (const a of all) expect(read(store, a.meter, a.windowStart, [a.subject], undefined, a.windowSize)).toEqual([queried(a)]);
    expect(read(store, 'sum').map((a) => a.subject).sort()).toEqual(['b', 'voided']);
    await store.close();
  });

  it('keeps subjects and group values too long for an lmdb key (hashed in the key, kept in the value)', async () => {
    const store = openStore(newDir());
    const long = 'ß'.repeat(1_000);
    const a = aggregate({ subject: long });
    const b = aggregate({ subject: 'acme', groupBy: { region: long } });
    const c = aggregate({ subject: long, groupBy: { region: long } });
    await store.apply(1, [a, b, c].map((x) => ({ key: keyOf(x), aggregate: x })), 3n);
    expect(sorted(read(store, 'sum', START, [long]))).toEqual(sorted([queried(a), queried(c)]));
    expect(read(store, 'sum', START, ['acme'])).toEqual([queried(b)]);
    await store.apply(1, [{ key: keyOf(c), aggregate: null }], 4n);
    expect(read(store, 'sum', START, [long])).toEqual([queried(a)]);
    expect(store.size()).toBe(2);
    await store.close();
  });
});

describe('ReadStore.window', () => {
  it('reads only the partitions asked for, and of those only the ones held', async () => {
    const store = openStore(newDir());
    const a = aggregate({ subject: 'a' });
    const b = aggregate({ subject: 'b' });
    await store.apply(0, [{ key: keyOf(a), aggregate: a }], 1n);
    await store.apply(5, [{ key: keyOf(b), aggregate: b }], 1n);
    expect(read(store).map((x) => x.subject)).toEqual(['a', 'b']);
    expect(read(store, 'sum', START, undefined, [5, 7]).map((x) => x.subject)).toEqual(['b']);
    expect(read(store, 'sum', START, ['a', 'b'], [0]).map((x) => x.subject)).toEqual(['a']);
    expect(read(store, 'sum', START + HOUR)).toEqual([]);
    expect(read(store, 'other')).toEqual([]);
    await store.close();
  });
});

describe('ReadStore checkpoints', () => {
  it('survive close and reopen, with the aggregates of the batches they end', async () => {
    const dir = newDir();
    const store = openStore(dir);
    const a = aggregate();
    await store.apply(3, [{ key: keyOf(a), aggregate: a }], 41n);
    await store.apply(1, [], 7n);
    const held = store.held();
    await store.close();
    const again = openStore(dir);
    expect(again.held()).toEqual(held);
    expect([...again.held().keys()]).toEqual([1, 3]);
    expect(again.size(3)).toBe(1);
    expect(read(again)).toEqual([queried(a)]);
    await again.close();
  });

  it('a store written for another topic is wiped at open', async () => {
    const dir = newDir();
    const store = openStore(dir, 'aggregates-a');
    await store.apply(0, [{ key: keyOf(aggregate()), aggregate: aggregate() }], 1n);
    await store.close();
    const logged: string[] = [];
    const other = ReadStore.open({ dir, topic: 'aggregates-b', logger: { ...noopLogger, info: (message) => void logged.push(message) } });
    expect(other.held()).toEqual(new Map());
    expect(other.size()).toBe(0);
    expect(read(other)).toEqual([]);
    expect(logged).toEqual([expect.stringMatching(/another topic/) as string]);
    await other.close();
    const same = openStore(dir, 'aggregates-b');
    expect(same.held()).toEqual(new Map());
    await same.close();
  });

  it('never holds the aggregates of a batch without its checkpoint, nor the reverse, after a SIGKILL at any point', async () => {
    const partitions = 3;
    for (const delayMs of [0, 5, 40, 150]) {
      const dir = newDir();
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/read-store-writer.ts', dir, 'usage-aggregates', String(partitions)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      // Killed some time after its third round, mid-batch more often than not.
      let rounds = 0;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (rounds += chunk.split('\n').length - 1));
      while (rounds < 3) {
        if (child.exitCode !== null) throw new Error(`the writer exited (${child.exitCode}) before applying anything`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      await once(child, 'exit');

      const store = openStore(dir);
      const held = store.held();
      expect([...held.keys()]).toEqual([0, 1, 2]);
      for (const [partition, { nextOffset }] of held) {
        const batches = Number(nextOffset / BigInt(RECORDS_PER_BATCH));
        expect(nextOffset).toBe(nextOffsetAfter(batches - 1));
        // The state the checkpoint promises: exactly its batches, applied in order.
        const expected = new MemorySource();
        for (let b = 0; b < batches; b += 1) {
          for (const { key, aggregate: a } of batchOf(partition, b)) {
            if (a === null) expected.remove(key, partition);
            else expected.apply(key, a, partition);
          }
        }
        expect(store.size(partition)).toBe(expected.size);
        for (const meter of ['sum', 'latest']) {
          for (let h = 0; h < 6; h += 1) {
            const at = START + h * HOUR;
            const want = [...expected.window(meter, 'HOUR', at, undefined, undefined)].map(queried);
            const got = read(store, meter, at, undefined, [partition]);
            expect(sorted(got)).toEqual(sorted(want));
          }
        }
      }
      await store.close();
    }
  }, 120_000);
});

function sorted(list: QueriedAggregate[]): QueriedAggregate[] {
  const id = (a: QueriedAggregate): string => JSON.stringify([a.subject, a.groupBy]);
  return [...list].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
}

describe('ReadStore.drop', () => {
  it('forgets a partition (aggregates and checkpoint), keeps the others, and stays forgotten after reopen', async () => {
    const dir = newDir();
    const store = openStore(dir);
    const many = Array.from({ length: 25_000 }, (_, i) => aggregate({ subject: `s${i}` }));
    await store.apply(4, many.map((a) => ({ key: keyOf(a), aggregate: a })), 25_000n);
    const kept = aggregate({ subject: 'kept' });
    await store.apply(5, [{ key: keyOf(kept), aggregate: kept }], 1n);
    const before = store.diskBytes();
    expect(before).toBeGreaterThan(25_000 * 20);
    await store.drop(4);
    expect([...store.held().keys()]).toEqual([5]);
    expect(store.size()).toBe(1);
    expect(read(store)).toEqual([queried(kept)]);
    await store.close();
    const again = openStore(dir);
    expect([...again.held().keys()]).toEqual([5]);
    expect(read(again)).toEqual([queried(kept)]);
    // Taken again, it starts from nothing.
    await again.apply(4, [{ key: keyOf(kept), aggregate: kept }], 1n);
    expect(again.size(4)).toBe(1);
    await again.close();
  });

  it('clears at open the aggregates of a partition whose checkpoint is gone (a drop cut short)', async () => {
    const dir = newDir();
    const store = openStore(dir);
    const a = aggregate();
    await store.apply(6, [{ key: keyOf(a), aggregate: a }], 1n);
    await store.apply(2, [{ key: keyOf(a), aggregate: a }], 1n);
    await store.close();
    // What a crash right after drop's first transaction leaves: the aggregates without their checkpoint.
    const env = open({ path: dir, maxDbs: 4 });
    env.openDB<unknown, string>({ name: 'meta' }).removeSync('p:6');
    await env.close();
    const again = openStore(dir);
    expect([...again.held().keys()]).toEqual([2]);
    await again.apply(6, [], 1n);
    expect(again.size(6)).toBe(0);
    expect(read(again, 'sum', START, undefined, [6])).toEqual([]);
    await again.close();
  });
});

describe('ReadStore as the AggregateSource of collectParts', () => {
  it('merges into the in-memory oracle answer for any split of the partitions', async () => {
    await fc.assert(
      fc.asyncProperty(anyEvents, anyPlacement, fc.array(anyQuery, { minLength: 4, maxLength: 4 }), fc.integer({ min: 5, max: 80 }), async (events, placement, queries, batch) => {
        const versions = writeAggregates(ALL_METERS, events);
        const oracle = oracleOf(versions);
        const store = openStore(newDir());
        try {
          const byPartition = new Map<number, { key: string; aggregate: UsageAggregate }[]>();
          for (const record of deliveries(versions)) {
            const p = partitionOf(record.key, placement);
            byPartition.set(p, [...(byPartition.get(p) ?? []), record]);
          }
          for (const [p, records] of byPartition) {
            for (let i = 0; i < records.length; i += batch) await store.apply(p, records.slice(i, i + batch), BigInt(i + batch));
          }
          expect(store.size()).toBe(oracle.size);
          for (const q of queries) expectMergedEqualsOracle(oracle, q, store, splits(placement));
        } finally {
          await store.close();
        }
      }),
      { numRuns: Number(process.env.RUNS ?? 20) },
    );
  }, 300_000);
});
