import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { receiptAnswer, trailAnswer } from '../../src/receipts/answers.js';
import type { Receipt, TrailEvent } from '../../src/receipts/entries.js';

const T = Date.UTC(2026, 10, 30, 12);
const hex = (ms: number): string => (BigInt(ms) << 16n).toString(16).padStart(16, '0');

const accepted = (at: number, over: Partial<Extract<Receipt, { kind: 'accepted' }>> = {}): Receipt => ({
  kind: 'accepted',
  source: 's',
  id: 'i',
  subject: 'acme',
  type: 't',
  seq: '3',
  serviceTime: hex(at),
  serviceNode: 'n1',
  orderKey: { time: hex(at), node: 'n1' },
  position: { partition: 1, offset: String(at - T) },
  at,
  aggregates: ['k'],
  ...over,
});
const dead = (at: number): Receipt => ({ kind: 'dead-lettered', source: 's', id: 'i', subject: 'acme', type: 't', reason: 'invalid-value', error: 'bad', position: { partition: 0, offset: '4' }, input: { partition: 1, offset: '2' }, at });
const late = (at: number): Receipt => ({ kind: 'late', source: 's', id: 'i', subject: 'acme', type: 't', reason: 'too-late', detail: 'd', position: { partition: 1, offset: '8' }, input: undefined, at });
const dup = (at: number, offset: string): Receipt => ({ kind: 'duplicate', source: 's', id: 'i', input: { partition: 1, offset }, seenAt: at, position: { partition: 1, offset: '0' }, at });
const corrected = (at: number, correction: 'void' | 'amend'): Receipt => ({ kind: 'corrected', source: 's', id: 'i', correction, by: { source: 's', id: 'fix' }, position: { partition: 1, offset: '99' }, at });

describe('receipt answers', () => {
  it('no receipt of this exact (source, id): no answer (a hash neighbour is not this event)', () => {
    expect(receiptAnswer('s', 'i', [])).toBeUndefined();
    expect(receiptAnswer('s', 'i', [accepted(T, { id: 'other' })])).toBeUndefined();
  });

  it('dead-lettered, then replayed and accepted: both answered, accepted is the status', () => {
    const answer = receiptAnswer('s', 'i', [accepted(T + 10), dead(T)])!;
    expect(answer.status).toBe('accepted');
    expect(answer.deadLetters).toHaveLength(1);
    expect(answer.accepted).toMatchObject({ seq: '3', partition: 1, aggregates: ['k'] });
  });

  it('re-sends are counted and point at the accepted copy', () => {
    const answer = receiptAnswer('s', 'i', [accepted(T), dup(T + 5, '20'), dup(T + 9, '31')])!;
    expect(answer.status).toBe('accepted');
    expect(answer.duplicates).toEqual({
      count: 2,
      drops: [
        { partition: 1, offset: '20', seenAt: new Date(T + 5).toISOString() },
        { partition: 1, offset: '31', seenAt: new Date(T + 9).toISOString() },
      ],
      acceptedCopy: { partition: 1, offset: '0' },
    });
    expect(receiptAnswer('s', 'i', [dup(T, '1')])!.status).toBe('duplicate');
  });

  it('a void or amend after the accepted copy is the status, with the correction named', () => {
    expect(receiptAnswer('s', 'i', [accepted(T), corrected(T + 1, 'void')])).toMatchObject({ status: 'voided', corrections: [{ correction: 'void', by: { source: 's', id: 'fix' } }] });
    expect(receiptAnswer('s', 'i', [accepted(T), corrected(T + 1, 'amend')])!.status).toBe('amended');
    expect(receiptAnswer('s', 'i', [late(T)])!.status).toBe('late');
  });

  it('the status is the outcome of the latest record, whatever order the index returns them in', () => {
    const kinds = fc.constantFrom('accepted', 'dead', 'late', 'dup');
    fc.assert(
      fc.property(fc.uniqueArray(fc.record({ kind: kinds, at: fc.integer({ min: 0, max: 1_000_000 }) }), { minLength: 1, maxLength: 12, selector: (r) => r.at }), fc.nat(), (items, seed) => {
        const receipts = items.map(({ kind, at }) => (kind === 'accepted' ? accepted(T + at) : kind === 'dead' ? dead(T + at) : kind === 'late' ? late(T + at) : dup(T + at, String(at))));
        const shuffled = [...receipts].sort((a, b) => ((a.at * 7919 + seed) % 104729) - ((b.at * 7919 + seed) % 104729));
        const answer = receiptAnswer('s', 'i', shuffled)!;
        const outcomes = [...items].sort((a, b) => a.at - b.at).filter((r) => r.kind !== 'dup');
        const expected = outcomes.length === 0 ? 'duplicate' : ({ accepted: 'accepted', dead: 'dead-lettered', late: 'late' } as const)[outcomes[outcomes.length - 1]!.kind as 'accepted' | 'dead' | 'late'];
        expect(answer.status).toBe(expected);
        expect(answer.duplicates?.count ?? 0).toBe(items.filter((r) => r.kind === 'dup').length);
        expect(answer).toEqual(receiptAnswer('s', 'i', receipts));
      }),
    );
  });
});

const ev = (source: string, type: string, ms: number, node = 'n', outcome: TrailEvent['outcome'] = 'accepted'): TrailEvent => ({
  source,
  id: `${source}-${ms}`,
  subject: 'acme',
  type,
  outcome,
  orderKey: { time: hex(ms), node },
  at: ms,
  topic: 'ordered',
  position: { partition: 0, offset: String(ms - T) },
});

describe('trail answers', () => {
  const rules = { terminalTypes: ['job.done'], stallMs: 60_000, now: T + 10_000, limit: 100 };

  it('events in causal order with counts, first/last service time and duration; completed by a terminal event', () => {
    const answer = trailAnswer('tr', [ev('b', 'job.done', T + 4_000), ev('a', 'job.start', T), ev('a', 'job.step', T + 1_000, 'n', 'dead-lettered')], rules)!;
    expect(answer.events.map((e) => e.type)).toEqual(['job.start', 'job.step', 'job.done']);
    expect(answer.counts).toEqual({ total: 3, bySource: { a: 2, b: 1 }, byType: { 'job.start': 1, 'job.step': 1, 'job.done': 1 }, byOutcome: { accepted: 2, 'dead-lettered': 1 } });
    expect(answer).toMatchObject({ status: 'completed', firstServiceTime: new Date(T).toISOString(), lastServiceTime: new Date(T + 4_000).toISOString(), durationMs: 4_000 });
  });

  it('stalled when its last event is stallMs old, open before; a dead-lettered terminal event does not complete it', () => {
    const events = [ev('a', 'job.start', T), ev('a', 'job.done', T + 1, 'n', 'late')];
    expect(trailAnswer('tr', events, { ...rules, now: T + 59_999 })!.status).toBe('open');
    expect(trailAnswer('tr', events, { ...rules, now: T + 60_001 })!.status).toBe('stalled');
  });

  it('limit truncates the list, not the counts; no events: no answer', () => {
    const answer = trailAnswer('tr', [ev('a', 'x', T), ev('a', 'x', T + 1), ev('a', 'x', T + 2)], { ...rules, limit: 2 })!;
    expect(answer.events).toHaveLength(2);
    expect(answer).toMatchObject({ truncated: true, counts: { total: 3 } });
    expect(trailAnswer('tr', [], rules)).toBeUndefined();
  });

  it('the order is causal (time, then node) whatever order the events come in', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ ms: fc.integer({ min: 0, max: 50 }), node: fc.constantFrom('a', 'b', 'c') }), { minLength: 1, maxLength: 30 }), (items) => {
        const events = items.map((x, i) => ({ ...ev('s', 't', T + x.ms, x.node), position: { partition: 0, offset: String(i) } }));
        const answer = trailAnswer('tr', events, rules)!;
        const keys = answer.events.map((e) => [e.orderKey.time, e.orderKey.node]);
        const sorted = [...keys].sort((x, y) => (x[0]! < y[0]! ? -1 : x[0]! > y[0]! ? 1 : x[1]! < y[1]! ? -1 : x[1]! > y[1]! ? 1 : 0));
        expect(keys).toEqual(sorted);
        expect(trailAnswer('tr', [...events].reverse(), rules)).toEqual(answer);
      }),
    );
  });
});
