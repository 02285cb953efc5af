import { describe, expect, it } from 'vitest';
import { alignToPosition } from '../../src/engine/batch.js';

const at = (...offsets: number[]) => offsets.map((o) => ({ offset: String(o) }));

describe('alignToPosition', () => {
  it('takes the batch as it is when nothing was committed yet', () => {
    expect(alignToPosition(at(0, 1), undefined, false)).toEqual({ seek: false, records: at(0, 1) });
  });

  it('asks for one seek when the first batch starts elsewhere than the committed position', () => {
    expect(alignToPosition(at(3, 4, 5), '5', false)).toEqual({ seek: true, records: [] });
    expect(alignToPosition(at(5, 6), '5', false)).toEqual({ seek: false, records: at(5, 6) });
  });

  it('after the seek, skips what lies before the position and never seeks again', () => {
    expect(alignToPosition(at(3, 4, 5, 6), '5', true)).toEqual({ seek: false, records: at(5, 6) });
    expect(alignToPosition(at(1, 2), '5', true)).toEqual({ seek: false, records: [] });
  });
});
