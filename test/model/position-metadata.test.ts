import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePositionMetadata, encodePositionMetadata } from '../../src/model/position-metadata.js';

const topic = fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/);
const offset = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });

describe('position metadata (the offset commit metadata a pipeline task writes)', () => {
  it('round-trips any set of topic end offsets', () => {
    fc.assert(
      fc.property(fc.dictionary(topic, offset, { maxKeys: 5 }), (record) => {
        const ends = new Map(Object.entries(record));
        const text = encodePositionMetadata({ ends });
        expect(text.startsWith('ordo1 ')).toBe(true);
        expect(decodePositionMetadata(text)?.ends).toEqual(ends);
      }),
    );
  });

  it('has a readable, versioned form', () => {
    expect(encodePositionMetadata({ ends: new Map([['usage-aggregates', 42n]]) })).toBe('ordo1 ends=usage-aggregates:42');
    expect(decodePositionMetadata('ordo1 ends=')?.ends).toEqual(new Map());
  });

  it('skips the fields of a later writer', () => {
    expect(decodePositionMetadata('ordo1 ends=agg:7 released=42')?.ends).toEqual(new Map([['agg', 7n]]));
    expect(decodePositionMetadata('ordo1 held=3 ends=agg:7')?.ends).toEqual(new Map([['agg', 7n]]));
  });

  it('answers undefined for metadata it did not write: none, another tool, another version, malformed', () => {
    for (const text of [null, undefined, '', 'some tool', 'ordo2 ends=a:1', 'ordo1 ends=a', 'ordo1 ends=a:-1', 'ordo1 ends=a:01', 'ordo1 ends=a b:1', 'ordo1 ends=a:1,a:2', 'ordo1 ends=:1', 'ordo1', 'ordo1 released=4', 'ordo1 ends=a:1 ends=b:2', 'ordo1  ends=a:1', 'ordo1 ends=a:1 Bad']) {
      expect(decodePositionMetadata(text)).toBeUndefined();
    }
  });

  it('refuses to encode what it could not decode', () => {
    expect(() => encodePositionMetadata({ ends: new Map([['a,b', 1n]]) })).toThrow(/not a Kafka topic name/);
    expect(() => encodePositionMetadata({ ends: new Map([['a', -1n]]) })).toThrow(/negative/);
  });
});
