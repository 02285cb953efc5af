import { expect } from 'vitest';
import { parseServiceTime } from '../../src/clock/service-time.js';
import { type ReadRecord, decodeEvent, header } from './cluster.js';

/** Asserts the read_committed output holds every expected id exactly once. */
export function expectExactlyOnce(records: ReadRecord[], expectedIds: string[]): void {
  const counts = new Map<string, number>();
  for (const r of records) {
    const id = decodeEvent(r.value).id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const duplicates = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const missing = expectedIds.filter((id) => !counts.has(id));
  const expected = new Set(expectedIds);
  const unexpected = [...counts.keys()].filter((id) => !expected.has(id));
  expect({ duplicates: duplicates.slice(0, 10), missing: missing.slice(0, 10), unexpected: unexpected.slice(0, 10) }).toEqual({ duplicates: [], missing: [], unexpected: [] });
  expect(records.length).toBe(expectedIds.length);
}

/** Per key, Ordo's service-time never goes backwards (across failover too). */
export function expectStampsIncreasePerKey(records: ReadRecord[]): void {
  const byPartition = new Map<number, ReadRecord[]>();
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const list of byPartition.values()) {
    list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
    const last = new Map<string, bigint>();
    for (const r of list) {
      const key = r.key!.toString();
      const stamp = parseServiceTime(header(r, 'service-time')!);
      const previous = last.get(key);
      if (previous !== undefined && !(stamp > previous)) {
        throw new Error(`service-time went backwards for key ${key} at offset ${r.offset}: ${previous} then ${stamp}`);
      }
      last.set(key, stamp);
    }
  }
}

/** Per key, in offset order, `ordo-seq` is 1, 2, 3…: no gap and no repeat (across failover too). */
export function expectGaplessSeq(records: ReadRecord[]): void {
  const byKey = new Map<string, ReadRecord[]>();
  for (const r of records) byKey.set(r.key!.toString(), [...(byKey.get(r.key!.toString()) ?? []), r]);
  for (const [key, list] of byKey) {
    list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
    const seqs = list.map((r) => Number(header(r, 'ordo-seq')));
    const bad = seqs.findIndex((s, i) => s !== i + 1);
    if (bad >= 0) throw new Error(`ordo-seq of key ${key} is not gapless at position ${bad}: ${seqs.slice(Math.max(0, bad - 3), bad + 3).join(', ')}`);
  }
}

/** The order key of an ordered (or global) record: origin-service-time/node, else Ordo's service-time/node. */
export function orderKeyOf(r: ReadRecord): [bigint, string] {
  const origin = header(r, 'origin-service-time');
  return origin !== undefined ? [parseServiceTime(origin), header(r, 'origin-service-node') ?? ''] : [parseServiceTime(header(r, 'service-time')!), header(r, 'service-node')!];
}

/** The global topic in offset order: ordo-global-seq 1..n, and the records not flagged late in (order key, node) order. */
export function expectGlobalOrder(records: ReadRecord[]): ReadRecord[] {
  const list = [...records].sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
  expect(list.map((r) => Number(header(r, 'ordo-global-seq')))).toEqual(list.map((_, i) => i + 1));
  const inOrder = list.filter((r) => header(r, 'ordo-late') === undefined);
  for (let i = 1; i < inOrder.length; i++) {
    const [t0, n0] = orderKeyOf(inOrder[i - 1]!);
    const [t1, n1] = orderKeyOf(inOrder[i]!);
    expect(t1 > t0 || (t1 === t0 && n1 >= n0), `global order at ${i}`).toBe(true);
  }
  return list;
}
