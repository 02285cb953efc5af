import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startOf } from '../../src/engine/partitioned-reader.js';

const DAY = 86_400_000;

describe('startOf (where a partition is read from on assignment)', () => {
  it('resumes a checkpoint inside the log and younger than delete.retention.ms', () => {
    expect(startOf({ nextOffset: 40n, appliedAt: 1_000 }, { low: 0n, high: 50n }, DAY, 2_000)).toEqual({ from: 'checkpoint', offset: 40n });
    expect(startOf({ nextOffset: 50n, appliedAt: 1_000 }, { low: 50n, high: 50n }, DAY, 2_000)).toEqual({ from: 'checkpoint', offset: 50n });
  });

  it('reads from the log start without a checkpoint, and drops a stale one first', () => {
    expect(startOf(undefined, { low: 7n, high: 50n }, DAY, 0)).toMatchObject({ from: 'beginning', offset: 7n, drop: false });
    expect(startOf({ nextOffset: 3n, appliedAt: 0 }, { low: 7n, high: 50n }, DAY, 0)).toMatchObject({ from: 'beginning', offset: 7n, drop: true, why: expect.stringContaining('below the log start') });
    expect(startOf({ nextOffset: 60n, appliedAt: 0 }, { low: 0n, high: 50n }, DAY, 0)).toMatchObject({ drop: true, why: expect.stringContaining('above the log end') });
    expect(startOf({ nextOffset: 10n, appliedAt: 0 }, { low: 0n, high: 50n }, DAY, DAY + 1)).toMatchObject({ drop: true, why: expect.stringContaining('delete.retention.ms') });
  });

  it('never resumes a checkpoint a missed tombstone could hide behind (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 100n }), fc.bigInt({ min: 0n, max: 100n }), fc.bigInt({ min: 0n, max: 100n }), fc.nat(10 * DAY), fc.nat(10 * DAY), fc.option(fc.nat(5 * DAY), { nil: undefined }), (next, a, b, appliedAt, now, retention) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        const d = startOf({ nextOffset: next, appliedAt }, { low, high }, retention, now);
        const trusted = next >= low && next <= high && (retention === undefined || now - appliedAt <= retention);
        expect(d.from === 'checkpoint').toBe(trusted);
        expect(d.offset).toBe(trusted ? next : low);
      }),
    );
  });
});
