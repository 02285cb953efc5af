import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, constantTimeFind, sha256Hex } from '../../src/auth/constant-time.js';

describe('constantTimeEqual', () => {
  it('agrees with === on any two strings, of any lengths', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(a === b);
        expect(constantTimeEqual(a, a)).toBe(true);
      }),
    );
  });

  it('tells apart values that differ only in the last byte, only in length, or only in case', () => {
    expect(constantTimeEqual('ordo_abcdef', 'ordo_abcdeg')).toBe(false);
    expect(constantTimeEqual('ordo_abc', 'ordo_abc\u0000')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
    expect(constantTimeEqual('', 'a')).toBe(false);
    expect(constantTimeEqual('Token', 'token')).toBe(false);
  });

  it('compares bytes as well as strings', () => {
    fc.assert(
      fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(Buffer.compare(a, b) === 0);
      }),
    );
  });
});

describe('constantTimeFind', () => {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

  it('finds the index of the first equal candidate, like indexOf, comparing them all', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 4 }), { maxLength: 12 }), fc.string({ maxLength: 4 }), (names, needle) => {
        expect(constantTimeFind(digest(needle), names.map(digest))).toBe(names.indexOf(needle));
      }),
    );
  });

  it('never matches a candidate of another length', () => {
    expect(constantTimeFind(Buffer.from('abc'), [Buffer.from('abcd'), Buffer.from('ab')])).toBe(-1);
  });
});

describe('sha256Hex', () => {
  it('is the sha256 that sha256sum prints (FIPS 180-2 test vector)', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
