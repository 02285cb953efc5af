import { createHash, timingSafeEqual } from 'node:crypto';

/** The sha256 of a token as the tokens file stores it: 64 lowercase hex digits. */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Whether `a` and `b` are equal, in a time that does not depend on where they first differ
 * nor on their lengths: both sides are hashed to 32 bytes first, because `timingSafeEqual`
 * throws on (and an early length check would leak) different lengths.
 */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The index of the first of `candidates` equal to `needle` (all the same length, e.g. sha256
 * digests), or -1. Every candidate is compared, whatever matched, so the time taken says
 * nothing about which one matched or how close a guess came.
 */
export function constantTimeFind(needle: Uint8Array, candidates: readonly Uint8Array[]): number {
  let found = -1;
  for (const [i, candidate] of candidates.entries()) {
    const equal = candidate.length === needle.length && timingSafeEqual(candidate, needle);
    if (equal && found === -1) found = i;
  }
  return found;
}

function digest(value: string | Uint8Array): Buffer {
  return createHash('sha256').update(value).digest();
}
