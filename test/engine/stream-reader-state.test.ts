import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SourceRecord } from '../../src/model/records.js';
import { PartitionRing } from '../../src/engine/stream-ring.js';
import { ReaderState, recordBytes } from '../../src/engine/stream-reader-state.js';

function record(partition: number, offset: number): SourceRecord {
  return { topic: 't', partition, offset: String(offset), key: null, value: Buffer.from(`${partition}:${offset}`), headers: {}, timestamp: 0 };
}

/** A partition's log: per offset, whether it holds a committed record (false: a marker or an aborted record). */
type Log = boolean[];

/** A batch of `log` from `from` (at most `size` offsets, none at or past `visible`), as a consumer fetches it. */
function batch(partition: number, log: Log, from: number, size: number, visible: number): { first: bigint; last: bigint; records: SourceRecord[] } | undefined {
  const last = Math.min(visible, from + size) - 1;
  if (last < from) return undefined;
  const records = [];
  for (let o = from; o <= last; o++) if (log[o]) records.push(record(partition, o));
  return { first: BigInt(from), last: BigInt(last), records };
}

const command = fc.oneof(
  fc.record({ kind: fc.constant('produce' as const), partition: fc.nat(2), count: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('tail' as const), partition: fc.nat(2), size: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('catch-up' as const), partition: fc.nat(2), size: fc.integer({ min: 1, max: 6 }), stale: fc.nat(3) }),
  fc.record({ kind: fc.constant('take' as const), max: fc.integer({ min: 1, max: 5 }) }),
);

describe('ReaderState', () => {
  it('delivers every committed record >= the start exactly once, in offset order per partition, under any interleaving of tail, catch-up and reads', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(12), fc.nat(12), fc.nat(30)), { minLength: 3, maxLength: 3 }),
        fc.array(command, { maxLength: 120 }),
        (partitions, capacity, logs, starts, commands) => {
          const seq = (() => {
            let n = 0;
            return () => n++;
          })();
          // Per partition: records visible so far, where the tail starts and where the reader starts.
          const visible = starts.slice(0, partitions).map(([v, tailStart]) => Math.max(v, tailStart));
          const rings = new Map(starts.slice(0, partitions).map(([, tailStart], p) => [p, new PartitionRing(capacity, BigInt(tailStart))]));
          const from = new Map(starts.slice(0, partitions).map(([, , f], p) => [p, BigInt(Math.min(f, visible[p]!))]));
          const state = new ReaderState(from, rings, true);
          // The catch-up consumer's fetch position per partition, while it is open.
          let consumer: Map<number, number> | undefined = state.mode === 'catch-up' ? new Map([...state.positions()].map(([p, o]) => [p, Number(o)])) : undefined;
          const delivered: SourceRecord[] = [];

          const tail = (p: number, size: number): void => {
            const ring = rings.get(p)!;
            const b = batch(p, logs[p]!, Number(ring.next), size, visible[p]!);
            if (b) ring.append(b.first, b.last, b.records, seq);
          };
          const catchUp = (p: number, size: number, stale: number): void => {
            if (!consumer) return;
            const at = consumer.get(p)!;
            // A batch fetched again from before the position (before a seek applied) must not repeat anything.
            const b = batch(p, logs[p]!, Math.max(0, at - stale), size + stale, visible[p]!);
            if (!b) return;
            expect(state.accept(p, b.first, b.last, b.records)).toBe('ok');
            consumer.set(p, Math.max(at, Number(b.last) + 1));
            if (state.tryTail()) consumer = undefined;
          };
          const take = (max: number): void => {
            const taken = state.take(max);
            expect(taken.records.length).toBeLessThanOrEqual(max);
            delivered.push(...taken.records);
            if (taken.fellBehind) {
              expect(state.mode).toBe('catch-up');
              consumer = new Map([...state.positions()].map(([p, o]) => [p, Number(o)]));
            }
          };

          for (const c of commands) {
            const p = 'partition' in c ? c.partition % partitions : 0;
            if (c.kind === 'produce') visible[p] = Math.min(30, visible[p]! + c.count);
            else if (c.kind === 'tail') tail(p, c.size);
            else if (c.kind === 'catch-up') catchUp(p, c.size, c.stale);
            else take(c.max);
          }
          // Drain: everything produced, the tail and the catch-up at the end, then read it all.
          for (let p = 0; p < partitions; p++) visible[p] = 30;
          for (let round = 0; round < 200; round++) {
            for (let p = 0; p < partitions; p++) {
              tail(p, 30);
              catchUp(p, 30, 0);
            }
            const before = delivered.length;
            take(1000);
            if (delivered.length === before && !state.ready() && consumer === undefined) break;
          }
          expect(state.mode).toBe('tail');
          for (let p = 0; p < partitions; p++) {
            const expected = [];
            for (let o = Number(from.get(p)); o < 30; o++) if (logs[p]![o]) expected.push(o);
            expect(delivered.filter((r) => r.partition === p).map((r) => Number(r.offset))).toEqual(expected);
          }
          expect(state.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('starts at the tail when every ring covers the start, and in catch-up otherwise', () => {
    const rings = new Map([
      [0, new PartitionRing(10, 5n)],
      [1, new PartitionRing(10, 7n)],
    ]);
    expect(new ReaderState(new Map([[0, 5n], [1, 9n]]), rings, true).mode).toBe('tail');
    expect(new ReaderState(new Map([[0, 4n], [1, 9n]]), rings, true).mode).toBe('catch-up');
    // Only the partitions asked for count.
    expect(new ReaderState(new Map([[1, 7n]]), rings, true).mode).toBe('tail');
    // Without a tail (tailRecords 0) every reader catches up, for good.
    const none = new ReaderState(new Map([[0, 5n]]), rings, false);
    expect(none.mode).toBe('catch-up');
    expect(none.tryTail()).toBe(false);
  });

  it('of no partition is at the tail and has nothing to read', () => {
    const state = new ReaderState(new Map(), new Map([[0, new PartitionRing(10, 0n)]]), false);
    expect(state.mode).toBe('tail');
    expect(state.take(10)).toEqual({ records: [], fellBehind: false });
    expect(state.ready()).toBe(false);
  });

  it('calls a batch that starts after its position a gap and takes nothing from it', () => {
    const rings = new Map([[0, new PartitionRing(10, 100n)]]);
    const state = new ReaderState(new Map([[0, 3n]]), rings, true);
    expect(state.accept(0, 5n, 6n, [record(0, 5), record(0, 6)])).toBe('gap');
    expect(state.take(10).records).toEqual([]);
    expect(state.positions().get(0)).toBe(3n);
    // A partition it does not read: ignored.
    expect(state.accept(1, 0n, 0n, [record(1, 0)])).toBe('ignored');
  });

  it('counts the bytes it buffers and gives them back as records are taken', () => {
    const rings = new Map([[0, new PartitionRing(10, 100n)]]);
    const state = new ReaderState(new Map([[0, 0n]]), rings, true);
    const records = [record(0, 0), record(0, 1), record(0, 2)];
    state.accept(0, 0n, 2n, records);
    expect(state.bufferedBytes).toBe(records.reduce((sum, r) => sum + recordBytes(r), 0));
    expect(state.take(2).records.map((r) => r.offset)).toEqual(['0', '1']);
    expect(state.bufferedBytes).toBe(recordBytes(records[2]!));
  });

  it('keeps order and byte counts across the compaction of a long buffer', () => {
    const state = new ReaderState(new Map([[0, 0n]]), new Map([[0, new PartitionRing(10, 10_000n)]]), true);
    state.accept(0, 0n, 2_999n, Array.from({ length: 3_000 }, (_, o) => record(0, o)));
    const taken = [...state.take(1_600).records, ...state.take(1_000).records];
    state.accept(0, 3_000n, 3_099n, Array.from({ length: 100 }, (_, o) => record(0, 3_000 + o)));
    taken.push(...state.take(10_000).records);
    expect(taken.map((r) => Number(r.offset))).toEqual(Array.from({ length: 3_100 }, (_, o) => o));
    expect(state.bufferedBytes).toBe(0);
  });

  it('reports falling behind when the ring evicted a record it had not taken, and resumes from there', () => {
    const ring = new PartitionRing(2, 0n);
    const state = new ReaderState(new Map([[0, 0n]]), new Map([[0, ring]]), true);
    expect(state.mode).toBe('tail');
    ring.append(0n, 3n, [0, 1, 2, 3].map((o) => record(0, o)), () => 0);
    const taken = state.take(10);
    expect(taken.fellBehind).toBe(true);
    expect(state.mode).toBe('catch-up');
    expect(state.positions().get(0)).toBe(0n);
  });

  it('merges the tail across partitions in the order the tail read them', () => {
    const rings = new Map([
      [0, new PartitionRing(10, 0n)],
      [1, new PartitionRing(10, 0n)],
    ]);
    let n = 0;
    const seq = (): number => n++;
    const state = new ReaderState(new Map([[0, 0n], [1, 0n]]), rings, true);
    rings.get(1)!.append(0n, 0n, [record(1, 0)], seq);
    rings.get(0)!.append(0n, 1n, [record(0, 0), record(0, 1)], seq);
    rings.get(1)!.append(1n, 1n, [record(1, 1)], seq);
    expect(state.take(10).records.map((r) => `${r.partition}:${r.offset}`)).toEqual(['1:0', '0:0', '0:1', '1:1']);
  });
});
