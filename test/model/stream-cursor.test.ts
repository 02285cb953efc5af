import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CursorError, CursorTracker, type StreamCursor, cursorMode, decodeCursor, encodeCursor, startPositions } from '../../src/model/stream-cursor.js';

const int64 = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });
const cursor: fc.Arbitrary<StreamCursor> = fc.oneof(
  fc.record({ kind: fc.constant('global' as const), seq: int64, offset: int64 }),
  fc.record({ kind: fc.constant('subject' as const), seq: int64, partition: fc.integer({ min: 0, max: 2 ** 31 - 1 }), offset: int64 }),
  fc.record({ kind: fc.constant('vector' as const), next: fc.array(int64, { minLength: 1, maxLength: 40 }) }),
);

describe('stream cursors', () => {
  it('decode what they encode, and the text is URL- and header-safe', () => {
    fc.assert(
      fc.property(cursor, (c) => {
        const text = encodeCursor(c);
        expect(text).toMatch(/^[gsv](\.\d+)+$/);
        expect(decodeCursor(text)).toEqual(c);
      }),
    );
  });

  it.each([
    ['', /starts with g\. \(global\)/],
    ['x.1.2', /is not one of Ordo's/],
    ['g.1', /g\.<ordo-global-seq>\.<offset>/],
    ['g.1.2.3', /g\.<ordo-global-seq>\.<offset>/],
    ['g.-1.2', /ordo-global-seq "-1" is not a non-negative 64-bit integer/],
    ['g.01.2', /"01"/],
    ['g.1.9223372036854775808', /offset "9223372036854775808"/],
    ['s.1.2', /s\.<ordo-seq>\.<partition>\.<offset>/],
    ['s.1.2147483648.3', /partition 2147483648 is beyond Kafka's/],
    ['v.', /partition 0's offset ""/],
    ['v.1..2', /partition 1's offset ""/],
    ['v.1.2x', /partition 1's offset "2x"/],
    ['g.1.2'.padEnd(300_000, '0'), /300000 characters is not one of Ordo's/],
  ])('refuse %j, saying why', (text, why) => {
    expect(() => decodeCursor(text)).toThrow(CursorError);
    expect(() => decodeCursor(text)).toThrow(why);
  });

  it('refuse any text that is not a cursor, with a CursorError (never another error)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        try {
          encodeCursor(decodeCursor(text));
        } catch (error) {
          expect(error).toBeInstanceOf(CursorError);
        }
      }),
    );
  });

  it('start right after the record they name, on the stream they belong to', () => {
    expect(startPositions({ kind: 'global', seq: 7n, offset: 12n }, 'global', 1)).toEqual(new Map([[0, 13n]]));
    expect(startPositions({ kind: 'subject', seq: 3n, partition: 2, offset: 40n }, 'ordered', 3)).toEqual(new Map([[2, 41n]]));
    expect(startPositions({ kind: 'vector', next: [5n, 0n, 9n] }, 'ordered', 3)).toEqual(new Map([[0, 5n], [1, 0n], [2, 9n]]));
    expect(() => startPositions({ kind: 'global', seq: 7n, offset: 12n }, 'ordered', 3)).toThrow(/global-stream cursor; this is the ordered stream/);
    expect(() => startPositions({ kind: 'subject', seq: 1n, partition: 0, offset: 1n }, 'global', 1)).toThrow(/this is the global stream/);
    expect(() => startPositions({ kind: 'subject', seq: 1n, partition: 3, offset: 1n }, 'ordered', 3)).toThrow(/names partition 3; the ordered stream has 3/);
    expect(() => startPositions({ kind: 'vector', next: [1n, 2n] }, 'ordered', 3)).toThrow(/offsets of 2 partitions; the ordered stream has 3/);
  });

  it('name the global sequence, one subject\'s ordo-seq, or offsets', () => {
    expect(cursorMode('global', undefined)).toBe('global');
    expect(cursorMode('ordered', ['acme'])).toBe('subject');
    expect(cursorMode('ordered', ['acme', 'globex'])).toBe('vector');
    expect(cursorMode('ordered', undefined)).toBe('vector');
    const global = new CursorTracker('global', new Map([[0, 0n]]), 1);
    global.pass({ partition: 0, offset: '4' });
    expect(encodeCursor(global.cursorAfter({ partition: 0, offset: '4', headers: { 'ordo-global-seq': Buffer.from('3') } }))).toBe('g.3.4');
    // A record without the header (not written by Ordo) still gets a cursor that resumes.
    expect(encodeCursor(global.cursorAfter({ partition: 0, offset: '4', headers: {} }))).toBe('v.5');
    const subject = new CursorTracker('subject', new Map([[0, 0n], [1, 0n]]), 2);
    subject.pass({ partition: 1, offset: '9' });
    expect(encodeCursor(subject.cursorAfter({ partition: 1, offset: '9', headers: { 'ordo-seq': '2' } }))).toBe('s.2.1.9');
  });

  it('never point a resumed reader past a record it did not deliver (vector, any interleaving)', () => {
    // Records of 3 partitions read in any interleaving, some filtered out: resuming from the
    // cursor of any delivered record yields exactly the delivered records after it.
    const read = fc.array(fc.record({ partition: fc.integer({ min: 0, max: 2 }), keep: fc.boolean() }), { maxLength: 60 });
    fc.assert(
      fc.property(read, (reads) => {
        const counters = [0, 0, 0];
        const records = reads.map((r) => ({ partition: r.partition, offset: String(counters[r.partition]!++), keep: r.keep, headers: {} }));
        const tracker = new CursorTracker('vector', new Map([[0, 0n], [1, 0n], [2, 0n]]), 3);
        const delivered: { record: (typeof records)[number]; cursor: string }[] = [];
        for (const record of records) {
          tracker.pass(record);
          if (record.keep) delivered.push({ record, cursor: encodeCursor(tracker.cursorAfter(record)) });
        }
        for (const [i, d] of delivered.entries()) {
          const start = startPositions(decodeCursor(d.cursor), 'ordered', 3);
          const resumed = records.filter((r) => r.keep && BigInt(r.offset) >= start.get(r.partition)!);
          expect(resumed).toEqual(delivered.slice(i + 1).map((x) => x.record));
        }
      }),
    );
  });
});
