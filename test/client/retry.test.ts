import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, backoffDelay, parseRetryAfter, retryDelay } from '../../src/client/index.js';
import { retryPolicy } from '../../src/client/retry.js';

const policy = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 20 }),
  initialDelayMs: fc.integer({ min: 0, max: 10_000 }),
  maxDelayMs: fc.integer({ min: 0, max: 100_000 }),
  maxRetryAfterMs: fc.integer({ min: 0, max: 600_000 }),
});
const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe('backoff', () => {
  it('stays within [d/2, d] of the capped exponential delay d, for any failure count and jitter', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 1, max: 2_000 }), unit, (p, failed, r) => {
        const d = p.initialDelayMs === 0 ? 0 : Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** (failed - 1));
        const delay = backoffDelay(failed, p, () => r);
        expect(delay).toBeGreaterThanOrEqual(d / 2);
        expect(delay).toBeLessThanOrEqual(d);
        expect(Number.isFinite(delay)).toBe(true);
      }),
    );
  });

  it('never shrinks from one failure to the next for the same jitter draw', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 1, max: 60 }), unit, (p, failed, r) => {
        expect(backoffDelay(failed + 1, p, () => r)).toBeGreaterThanOrEqual(backoffDelay(failed, p, () => r));
      }),
    );
  });

  it('doubles from 100 ms by default, and the jitter spreads clients', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, DEFAULT_RETRY, () => 0.999_999))).toEqual([100, 200, 400, 800].map((d) => expect.closeTo(d, 0) as number));
    expect(backoffDelay(1, DEFAULT_RETRY, () => 0)).toBe(50);
    expect(backoffDelay(30, DEFAULT_RETRY, () => 0.999_999)).toBeCloseTo(5_000, 0);
  });

  it('rejects options that make no sense, naming them', () => {
    expect(() => retryPolicy({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => retryPolicy({ initialDelayMs: -1 })).toThrow(/initialDelayMs/);
    expect(() => retryPolicy({ maxDelayMs: Number.NaN })).toThrow(/maxDelayMs/);
    expect(retryPolicy({ maxAttempts: undefined })).toEqual(DEFAULT_RETRY);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');

  it('reads delay-seconds and HTTP-dates, in ms', () => {
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Mon, 30 Nov 2026 12:00:07 GMT', now)).toBe(7_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 11:00:00 GMT', now)).toBe(0);
  });

  it('ignores what is neither', () => {
    for (const value of [null, undefined, '', '1.5', '-1', 'soon', '12abc']) expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  it('wins over the backoff, up to maxRetryAfterMs; without it the backoff applies', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 10 }), unit, (p, seconds, failed, r) => {
        expect(retryDelay(failed, String(seconds), p, () => r, now)).toBe(Math.min(seconds * 1_000, p.maxRetryAfterMs));
        expect(retryDelay(failed, null, p, () => r, now)).toBe(backoffDelay(failed, p, () => r));
      }),
    );
  });
});
