import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { heldPositionsCodec } from '../../src/processors/held-positions.js';
import type { HeldPosition } from '../../src/processors/order.js';

const position = fc.record({
  offset: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
  stamp: fc.record({ time: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), node: fc.oneof(fc.constantFrom('ordo-1', 'ordo-2'), fc.string()) }),
});

const byOffset = (a: HeldPosition, b: HeldPosition): number => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0);

describe('heldPositionsCodec', () => {
  it('round-trips any set of held positions (ordered by offset)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(position, { selector: (p) => p.offset, maxLength: 200 }), (positions) => {
        expect(heldPositionsCodec.decode(heldPositionsCodec.encode(positions))).toEqual([...positions].sort(byOffset));
      }),
    );
  });

  it('takes a few bytes per held event of a busy partition', () => {
    const base = 1_790_000_000_000n << 16n;
    const positions = Array.from({ length: 10_000 }, (_, i) => ({ offset: 5_000_000n + BigInt(i), stamp: { time: base + BigInt(i * 40), node: 'ordo-pipeline-7' } }));
    expect(heldPositionsCodec.encode(positions).length).toBeLessThan(10_000 * 6);
  });

  it('refuses bytes that are not a held-positions value', () => {
    const good = heldPositionsCodec.encode([{ offset: 1n, stamp: { time: 2n, node: 'n' } }]);
    expect(() => heldPositionsCodec.decode(Buffer.from([9]))).toThrow(/version 9/);
    expect(() => heldPositionsCodec.decode(good.subarray(0, good.length - 1))).toThrow(/truncated/);
    expect(() => heldPositionsCodec.decode(Buffer.concat([good, Buffer.from([0])]))).toThrow(/trailing/);
  });
});
