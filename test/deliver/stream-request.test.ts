import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseFilter, parseFrom, parseStreamName, parseStreamQuery, resolveStart } from '../../src/deliver/stream-request.js';
import { QueryError } from '../../src/errors.js';
import { encodeCursor } from '../../src/model/stream-cursor.js';

function refusal(fn: () => unknown): QueryError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(QueryError);
    return error as QueryError;
  }
  throw new Error('expected a QueryError');
}

const source = (partitions: number) => ({
  partitions: () => partitions,
  bounds: () => Promise.resolve(new Map(Array.from({ length: partitions }, (_, p) => [p, { earliest: BigInt(p * 10), end: BigInt(p * 10 + 5) }]))),
});

describe('stream-request', () => {
  it('parses the stream name; anything else is 404 not-found', () => {
    expect(parseStreamName('ordered')).toBe('ordered');
    expect(parseStreamName('global')).toBe('global');
    for (const name of ['', 'Ordered', 'input', 'global ']) {
      const e = refusal(() => parseStreamName(name));
      expect([e.status, e.kind]).toEqual([404, 'not-found']);
    }
  });

  it('parses a filter body; lists deduplicated, bad shapes are 400 bad-parameter', () => {
    expect(parseFilter(undefined)).toEqual({});
    expect(parseFilter(null)).toEqual({});
    expect(parseFilter({ subjects: ['a', 'b', 'a'], types: ['t'] })).toEqual({ subjects: ['a', 'b'], types: ['t'] });
    expect(parseFilter({ subjects: null })).toEqual({});
    for (const bad of ['x', 1, [], { subjects: 'a' }, { subjects: [] }, { subjects: [''] }, { types: [1] }, { other: [] }, { subjects: Array.from({ length: 101 }, (_, i) => `s${i}`) }]) {
      const e = refusal(() => parseFilter(bad));
      expect([e.status, e.kind], JSON.stringify(bad)).toEqual([400, 'bad-parameter']);
      expect(e.message).toMatch(/^filter/);
    }
    expect(parseFilter({ subjects: Array.from({ length: 100 }, (_, i) => `s${i}`) }).subjects).toHaveLength(100);
  });

  it('parses from: earliest, latest, cursors; absent is latest; malformed is 400 bad-cursor', () => {
    expect(parseFrom(undefined)).toEqual({ kind: 'latest' });
    expect(parseFrom('earliest')).toEqual({ kind: 'earliest' });
    expect(parseFrom('latest')).toEqual({ kind: 'latest' });
    expect(parseFrom('g.5.7')).toEqual({ kind: 'cursor', cursor: { kind: 'global', seq: 5n, offset: 7n } });
    for (const text of ['g.1', 'x.1.2', 's.1.2', 'v.', 'v.-1', 'g.01.2', 'LATEST']) {
      const e = refusal(() => parseFrom(text));
      expect([e.status, e.kind], text).toEqual([400, 'bad-cursor']);
    }
    for (const value of ['', 5, null, {}]) {
      const e = refusal(() => parseFrom(value));
      expect([e.status, e.kind], JSON.stringify(value)).toEqual([400, 'bad-parameter']);
    }
  });

  it('round-trips every cursor it makes', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), { minLength: 1, maxLength: 8 }), (next) => {
        const text = encodeCursor({ kind: 'vector', next });
        const start = parseFrom(text);
        expect(start.kind === 'cursor' && encodeCursor(start.cursor)).toBe(text);
      }),
    );
  });

  it('parses the SSE query: repeatable subject and type, from once, unknown parameters refused', () => {
    expect(parseStreamQuery(new URLSearchParams('subject=a&subject=b&type=t&from=earliest'))).toEqual({ filter: { subjects: ['a', 'b'], types: ['t'] }, from: 'earliest' });
    expect(parseStreamQuery(new URLSearchParams(''))).toEqual({ filter: {}, from: undefined });
    for (const query of ['from=a&from=b', 'subjects=a', 'subject=', 'type=', `${Array.from({ length: 101 }, (_, i) => `type=t${i}`).join('&')}`]) {
      const e = refusal(() => parseStreamQuery(new URLSearchParams(query)));
      expect([e.status, e.kind], query).toEqual([400, 'bad-parameter']);
    }
  });

  it('resolves starts to positions: bounds for earliest/latest, the cursor for one of this stream', async () => {
    expect(await resolveStart({ kind: 'earliest' }, 'ordered', source(3))).toEqual(new Map([[0, 0n], [1, 10n], [2, 20n]]));
    expect(await resolveStart({ kind: 'latest' }, 'ordered', source(3))).toEqual(new Map([[0, 5n], [1, 15n], [2, 25n]]));
    expect(await resolveStart(parseFrom('s.4.1.12'), 'ordered', source(3))).toEqual(new Map([[1, 13n]]));
    expect(await resolveStart(parseFrom('v.1.2.3'), 'ordered', source(3))).toEqual(new Map([[0, 1n], [1, 2n], [2, 3n]]));
    expect(await resolveStart(parseFrom('g.9.3'), 'global', source(1))).toEqual(new Map([[0, 4n]]));
    for (const [text, stream, partitions] of [['g.9.3', 'ordered', 3], ['s.1.0.0', 'global', 1], ['s.1.3.0', 'ordered', 3], ['v.1.2', 'ordered', 3]] as const) {
      await expect(resolveStart(parseFrom(text), stream, source(partitions))).rejects.toMatchObject({ kind: 'bad-cursor', status: 400 });
    }
  });
});
