import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SourceRecord } from '../../src/model/records.js';
import { PartitionRing } from '../../src/engine/stream-ring.js';

function record(offset: number, partition = 0): SourceRecord {
  return { topic: 't', partition, offset: String(offset), key: null, value: Buffer.from(`v${offset}`), headers: {}, timestamp: 0 };
}

let counter = 0;
const seq = (): number => counter++;

describe('PartitionRing', () => {
  it('holds the last `capacity` records; coveredFrom moves past each evicted one', () => {
    const ring = new PartitionRing(3, 10n);
    expect([ring.coveredFrom, ring.next, ring.firstIndex, ring.endIndex]).toEqual([10n, 10n, 0, 0]);
    ring.append(10n, 14n, [10, 11, 13].map((o) => record(o)), seq); // 12 aborted, 14 a marker
    expect([ring.coveredFrom, ring.next, ring.firstIndex, ring.endIndex]).toEqual([10n, 15n, 0, 3]);
    ring.append(15n, 16n, [record(15), record(16)], seq);
    expect(ring.coveredFrom).toBe(12n); // 10 and 11 evicted
    expect([0, 1, 2, 3, 4].map((i) => ring.at(i)?.offset)).toEqual([undefined, undefined, '13', '15', '16']);
    expect(ring.indexOf(12n)).toBe(2);
    expect(ring.indexOf(14n)).toBe(3);
    expect(ring.indexOf(17n)).toBe(5);
  });

  it('skips records it read already (a batch fetched again) and moves next past markers only batches', () => {
    const ring = new PartitionRing(10, 0n);
    ring.append(0n, 2n, [record(0), record(1), record(2)], seq);
    ring.append(1n, 3n, [record(1), record(2), record(3)], seq);
    expect(ring.endIndex).toBe(4);
    ring.append(4n, 5n, [], seq);
    expect(ring.next).toBe(6n);
    expect(ring.endIndex).toBe(4);
  });

  it('starts over at a batch that leaves a gap (records deleted under the tail)', () => {
    const ring = new PartitionRing(10, 0n);
    ring.append(0n, 1n, [record(0), record(1)], seq);
    expect(ring.append(5n, 6n, [record(5), record(6)], seq)).toBe(false);
    expect([ring.coveredFrom, ring.next, ring.firstIndex, ring.endIndex]).toEqual([5n, 7n, 2, 4]);
    expect(ring.at(2)?.offset).toBe('5');
  });

  it('of capacity 0 holds nothing and covers only from its position', () => {
    const ring = new PartitionRing(0, 0n);
    ring.append(0n, 2n, [record(0), record(2)], seq);
    expect([ring.coveredFrom, ring.next, ring.firstIndex, ring.endIndex]).toEqual([3n, 3n, 2, 2]);
  });

  it('refuses a negative or fractional capacity', () => {
    expect(() => new PartitionRing(-1, 0n)).toThrow(RangeError);
    expect(() => new PartitionRing(1.5, 0n)).toThrow(RangeError);
  });

  it('holds every committed record of [coveredFrom, next) in offset order, whatever the batches', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 40 }),
        (capacity, committed, sizes) => {
          const ring = new PartitionRing(capacity, 0n);
          let at = 0;
          for (const size of sizes) {
            if (at >= committed.length) break;
            const last = Math.min(committed.length, at + size) - 1;
            const records = [];
            for (let o = at; o <= last; o++) if (committed[o]) records.push(record(o));
            ring.append(BigInt(at), BigInt(last), records, seq);
            at = last + 1;
          }
          expect(ring.next).toBe(BigInt(at));
          const held = [];
          for (let i = ring.firstIndex; i < ring.endIndex; i++) held.push(Number(ring.at(i)!.offset));
          const expected = [];
          for (let o = Number(ring.coveredFrom); o < at; o++) if (committed[o]) expected.push(o);
          expect(held).toEqual(expected);
          expect(held.length).toBeLessThanOrEqual(capacity);
        },
      ),
    );
  });
});
