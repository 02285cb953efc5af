import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toDeadLetterRecord, toLateRecord } from '../../src/processors/dead-letter.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import { REPLAY_OF_HEADER, letterKey, matchesFilter, replayHeaders, viewDeadLetter } from '../../src/replay/dead-letter-view.js';

const input: SourceRecord = {
  topic: 'usage-events',
  partition: 2,
  offset: '41',
  key: Buffer.from('acme'),
  value: Buffer.from([0, 0, 0, 0, 1, 2]),
  headers: { 'service-time': '0000018c2f0a0000', 'service-node': 'svc-a', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-team': ['a', 'b'] },
  timestamp: 1_700_000_000_000,
};

/** The DLQ record the pipeline writes for `source`, as a consumer reads it back at `offset`. */
function asRead(out: OutputRecord, partition: number, offset: string, timestamp: number): SourceRecord {
  return { topic: out.topic, partition, offset, key: out.key as Buffer, value: out.value as Buffer, headers: out.headers, timestamp };
}

describe('a dead letter as replay sees it', () => {
  it('reads what the pipeline wrote: reason, error, node, source position, time', () => {
    const out = toDeadLetterRecord({ source: input, reason: 'invalid-value', message: 'value "x" is not a plain decimal' }, 'usage-events-dlq', 'worker-1');
    const view = viewDeadLetter(asRead(out, 2, '7', 1_700_000_001_000));
    expect(view).toEqual({
      partition: 2,
      offset: '7',
      reason: 'invalid-value',
      error: 'value "x" is not a plain decimal',
      node: 'worker-1',
      source: { topic: 'usage-events', partition: 2, offset: '41' },
      timestamp: 1_700_000_001_000,
    });
  });

  it('is not a dead letter without a known reason (a late record, a stray record)', () => {
    const late = toLateRecord({ source: input, reason: 'too-late', detail: 'window closed', seenAt: 1 }, 'usage-events-late', 'worker-1');
    expect(viewDeadLetter(asRead(late, 2, '0', 1))).toBeUndefined();
    expect(viewDeadLetter({ ...input, headers: { 'ordo-dlq-reason': 'no-such-reason' } })).toBeUndefined();
  });

  it('re-produces the original headers without ordo-dlq-* and ordo-source-*, naming the letter', () => {
    const out = toDeadLetterRecord({ source: input, reason: 'clock-skew', message: 'ahead' }, 'dlq', 'worker-1');
    const headers = replayHeaders(asRead(out, 2, '7', 1).headers, { partition: 2, offset: '7' });
    expect(headers).toEqual({
      'service-time': '0000018c2f0a0000',
      'service-node': 'svc-a',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'x-team': 'b',
      [REPLAY_OF_HEADER]: '2/7',
    });
  });

  it('strips every header of the two prefixes, whatever the header set, and keeps every other one', () => {
    const name = fc.oneof(fc.constantFrom('ordo-dlq-', 'ordo-source-', 'ordo-', ''), fc.constant('')).chain((prefix) => fc.string({ minLength: 1, maxLength: 8 }).map((rest) => prefix + rest));
    fc.assert(
      fc.property(fc.dictionary(name, fc.string()), (headers) => {
        const out = replayHeaders(headers, { partition: 0, offset: '1' });
        for (const key of Object.keys(out)) expect(key.startsWith('ordo-dlq-') || key.startsWith('ordo-source-')).toBe(false);
        for (const [key, value] of Object.entries(headers)) {
          if (!key.startsWith('ordo-dlq-') && !key.startsWith('ordo-source-') && key !== REPLAY_OF_HEADER) expect(out[key]).toBe(value);
        }
        expect(out[REPLAY_OF_HEADER]).toBe('0/1');
      }),
    );
  });

  it('keeps a header named __proto__ as a header', () => {
    const headers: Record<string, string> = {};
    Object.defineProperty(headers, '__proto__', { value: 'x', enumerable: true });
    const out = replayHeaders(headers, { partition: 0, offset: '1' });
    expect(Object.getOwnPropertyNames(out)).toContain('__proto__');
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });

  it('matches a filter by reason and a half-open time range', () => {
    const view = viewDeadLetter(asRead(toDeadLetterRecord({ source: input, reason: 'invalid-value', message: '' }, 'dlq', 'n'), 0, '0', 1_000))!;
    expect(matchesFilter(view, { reason: 'invalid-value', fromMs: 1_000, toMs: 1_001 })).toBe(true);
    expect(matchesFilter(view, { fromMs: 0, toMs: 1_001 })).toBe(true);
    expect(matchesFilter(view, { reason: 'invalid-event', fromMs: 0, toMs: 2_000 })).toBe(false);
    expect(matchesFilter(view, { reason: 'invalid-value', fromMs: 0, toMs: 1_000 })).toBe(false);
    expect(matchesFilter(view, { reason: 'invalid-value', fromMs: 1_001, toMs: 2_000 })).toBe(false);
    expect(letterKey(3, '12')).toBe('3/12');
  });
});
