import { describe, expect, it } from 'vitest';
import { QueryError } from '../../src/errors.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { DEFAULT_LIST, MAX_LIST, correctedEvent, parseBulkRequest, parseLetterPosition, parseListQuery } from '../../src/replay/replay-request.js';

const original: UsageEvent = { id: 'e-1', source: 'billing', type: 'api.request', subject: 'acme', time: 1_764_000_000_000, value: '1e3', dimensions: { route: '/v1' } };

/** The QueryError `fn` throws (kind, status, message). */
function refusal(fn: () => unknown): QueryError {
  try {
    fn();
  } catch (error) {
    if (error instanceof QueryError) return error;
    throw error;
  }
  throw new Error('did not throw');
}

describe('the letter position of the path', () => {
  it('reads decimal partition and offset', () => {
    expect(parseLetterPosition({ partition: '3', offset: '0042' })).toEqual({ partition: 3, offset: '42' });
    expect(parseLetterPosition({ partition: '0', offset: '9223372036854775807' })).toEqual({ partition: 0, offset: '9223372036854775807' });
  });

  it.each([
    ['x', '1'],
    ['-1', '1'],
    ['1.5', '1'],
    ['2147483648', '1'],
    ['1', 'abc'],
    ['1', '-3'],
    ['1', '9223372036854775808'],
    ['1', '1e3'],
    ['1', ''],
  ])('refuses partition %j offset %j with 400 bad-parameter', (partition, offset) => {
    const e = refusal(() => parseLetterPosition({ partition, offset }));
    expect([e.status, e.kind]).toEqual([400, 'bad-parameter']);
  });
});

describe('a corrected value', () => {
  it('is absent without a body or without value: the letter is replayed unchanged', () => {
    expect(correctedEvent(undefined, original)).toBeUndefined();
    expect(correctedEvent({}, original)).toBeUndefined();
  });

  it('replaces the fields it gives (dimensions as a whole) and keeps the rest of the original', () => {
    expect(correctedEvent({ value: { value: '12.50' } }, original)).toEqual({ ...original, value: '12.50' });
    expect(correctedEvent({ value: { value: '2', dimensions: { user_id: 'u-1' }, time: '2026-11-30T14:00:00Z' } }, original)).toEqual({
      ...original,
      value: '2',
      dimensions: { user_id: 'u-1' },
      time: Date.UTC(2026, 10, 30, 14),
    });
  });

  it('must be complete when the letter does not decode', () => {
    const e = refusal(() => correctedEvent({ value: { value: '1' } }, undefined));
    expect([e.status, e.kind]).toEqual([400, 'bad-body']);
    expect(e.message).toContain('id, source, type, subject, time, dimensions missing');
    const full = { id: 'n-1', source: 's', type: 't', subject: 'acme', time: 5, value: '1', dimensions: {} };
    expect(correctedEvent({ value: full }, undefined)).toEqual(full);
  });

  it('keeps the original source and id (its replay is deduplicated as that event)', () => {
    for (const change of [{ id: 'e-2' }, { source: 'other' }]) {
      const e = refusal(() => correctedEvent({ value: { ...change, value: '1' } }, original));
      expect([e.status, e.kind]).toEqual([400, 'identity-changed']);
    }
  });

  it('is validated as the pipeline validates, naming the reason it would give', () => {
    const bad = refusal(() => correctedEvent({ value: { value: 'NaN' } }, original));
    expect([bad.status, bad.kind, bad.details]).toEqual([400, 'invalid-event', { reason: 'invalid-value' }]);
    expect(bad.message).toContain('not a plain decimal');
    const empty = refusal(() => correctedEvent({ value: { value: '1', subject: '' } }, original));
    expect(empty.details).toEqual({ reason: 'invalid-event' });
    const proto = refusal(() => correctedEvent(JSON.parse('{"value": {"value": "1", "dimensions": {"__proto__": "x"}}}'), original));
    expect(proto.kind).toBe('invalid-event');
  });

  it.each([
    [[1]],
    ['text'],
    [{ value: 1 }],
    [{ value: { value: 12.5 } }],
    [{ value: { time: 1.5, value: '1' } }],
    [{ value: { time: '2026-02-30T00:00:00Z', value: '1' } }],
    [{ value: { dimensions: { a: 1 }, value: '1' } }],
    [{ value: { value: '1', colour: 'red' } }],
    [{ value: { value: '1' }, extra: true }],
  ])('refuses a malformed body %j with 400 bad-body', (body) => {
    const e = refusal(() => correctedEvent(body, original));
    expect([e.status, e.kind]).toEqual([400, 'bad-body']);
  });
});

describe('a bulk request', () => {
  it('reads reason, a bounded range and dryRun (default false)', () => {
    expect(parseBulkRequest({ reason: 'invalid-value', from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00+01:00', dryRun: true })).toEqual({
      filter: { reason: 'invalid-value', fromMs: Date.UTC(2026, 10, 1), toMs: Date.UTC(2026, 10, 1, 23) },
      dryRun: true,
    });
    expect(parseBulkRequest({ reason: 'clock-skew', from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' }).dryRun).toBe(false);
  });

  it('refuses an unbounded range with 400 unbounded-range', () => {
    for (const body of [{ reason: 'invalid-value' }, { reason: 'invalid-value', from: '2026-11-01T00:00:00Z' }, { reason: 'invalid-value', to: '2026-11-01T00:00:00Z', from: '' }]) {
      const e = refusal(() => parseBulkRequest(body));
      expect([e.status, e.kind]).toEqual([400, 'unbounded-range']);
    }
  });

  it.each([
    [{ from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' }, 'bad-parameter'],
    [{ reason: 'nope', from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' }, 'bad-parameter'],
    [{ reason: 'invalid-value', from: '2026-11-02T00:00:00Z', to: '2026-11-01T00:00:00Z' }, 'bad-parameter'],
    [{ reason: 'invalid-value', from: 'yesterday', to: '2026-11-01T00:00:00Z' }, 'bad-parameter'],
    [{ reason: 'invalid-value', from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z', dryRun: 'yes' }, 'bad-body'],
    [{ reason: 'invalid-value', from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z', limit: 3 }, 'bad-body'],
    [[], 'bad-body'],
    [undefined, 'bad-body'],
  ])('refuses %j with 400 %s', (body, kind) => {
    const e = refusal(() => parseBulkRequest(body));
    expect([e.status, e.kind]).toEqual([400, kind]);
  });
});

describe('a list query', () => {
  it('needs a range; reason and limit are optional', () => {
    const q = parseListQuery(new URLSearchParams('from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z'));
    expect(q).toEqual({ filter: { fromMs: Date.UTC(2026, 10, 1), toMs: Date.UTC(2026, 10, 2) }, limit: DEFAULT_LIST });
    expect(parseListQuery(new URLSearchParams('reason=undecodable&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&limit=5'))).toMatchObject({ filter: { reason: 'undecodable' }, limit: 5 });
    expect(refusal(() => parseListQuery(new URLSearchParams('reason=undecodable'))).kind).toBe('unbounded-range');
  });

  it.each(['limit=0', `limit=${MAX_LIST + 1}`, 'limit=x', 'reason=nope', 'page=2'])('refuses %s with 400 bad-parameter', (extra) => {
    const e = refusal(() => parseListQuery(new URLSearchParams(`from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&${extra}`)));
    expect([e.status, e.kind]).toEqual([400, 'bad-parameter']);
  });
});
