import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsistencyTokenError, decodeConsistencyToken, encodeConsistencyToken, highestPerPartition } from '../../src/model/consistency-token.js';

const topic = fc.stringMatching(/^[a-zA-Z0-9._-]{1,249}$/);
const position = fc.record({ topic, partition: fc.integer({ min: 0, max: 2 ** 31 - 1 }), offset: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }).map(String) });

describe('consistency tokens', () => {
  it('round-trip every input position, URL-safe', () => {
    fc.assert(
      fc.property(position, (p) => {
        const token = encodeConsistencyToken(p);
        expect(token).toMatch(/^[A-Za-z0-9._-]+$/);
        expect(encodeURIComponent(token)).toBe(token);
        expect(decodeConsistencyToken(token)).toEqual(p);
      }),
    );
  });

  it.each([
    ['', /not a consistency token/],
    ['c2.aW4.0.1', /not a consistency token/],
    ['c1.aW4.0', /not a consistency token/],
    ['c1.aW4.-1.1', /partition is not a whole number/],
    ['c1.aW4.0.01', /offset is not a whole number/],
    ['c1.aW4.0.1e3', /offset is not a whole number/],
    ['c1.aW4.0.9223372036854775808', /offset "9223372036854775808" is not an offset/],
    ['c1.aW4.2147483648.1', /partition 2147483648 is out of range/],
    ['c1..0.1', /topic "" is not a Kafka topic name/],
    [`c1.${Buffer.from('a b').toString('base64url')}.0.1`, /topic "a b" is not a Kafka topic name/],
    ['c1.a+b=.0.1', /topic "" is not a Kafka topic name/],
  ])('refuses %j with a message', (token, message) => {
    expect(() => decodeConsistencyToken(token)).toThrow(ConsistencyTokenError);
    expect(() => decodeConsistencyToken(token)).toThrow(message);
  });

  it('refuses to make a token of a position that is not one', () => {
    expect(() => encodeConsistencyToken({ topic: 'in', partition: -1, offset: '0' })).toThrow(/partition -1/);
    expect(() => encodeConsistencyToken({ topic: 'in', partition: 0, offset: '-1' })).toThrow(/offset "-1"/);
  });

  it('keeps the highest offset per partition', () => {
    fc.assert(
      fc.property(fc.array(position, { maxLength: 30 }), (ps) => {
        const best = highestPerPartition(ps);
        for (const p of ps) {
          const b = best.find((x) => x.topic === p.topic && x.partition === p.partition);
          expect(b).toBeDefined();
          expect(BigInt(b!.offset) >= BigInt(p.offset)).toBe(true);
        }
        expect(new Set(best.map((b) => `${b.topic}/${b.partition}`)).size).toBe(best.length);
      }),
    );
  });
});
