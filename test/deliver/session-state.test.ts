import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type SessionState,
  claimState,
  decodeSessionState,
  encodeSessionState,
  isExpired,
  nextState,
  reduceSession,
} from '../../src/deliver/session-state.js';

const NODES = ['n0', 'n1', 'n2'] as const;

function created(owner = 'n0'): SessionState {
  return { id: 's1', stream: 'ordered', filter: { subjects: ['a'] }, principal: 'p', acked: 'v.0', inflight: null, owner, epoch: 1, seq: 1, lastActiveMs: 0 };
}

/** What a writer did: which state (by seq, as its replica saw it) it made the record from. */
interface Entry {
  record: SessionState;
  base: SessionState;
  kind: 'claim' | 'write';
}

type Step = { op: 'read'; node: number; count: number } | { op: 'claim'; node: number } | { op: 'write'; node: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('read' as const), node: fc.integer({ min: 0, max: 2 }), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant('claim' as const), node: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ op: fc.constant('write' as const), node: fc.integer({ min: 0, max: 2 }) }),
);

function reduceAll(records: readonly SessionState[]): { state: SessionState | undefined; accepted: boolean[] } {
  let state: SessionState | undefined;
  const accepted = records.map((record) => {
    const r = reduceSession(state, record);
    state = r.state;
    return r.accepted;
  });
  return { state, accepted };
}

/**
 * Several replicas writing to one session's log, each from its own view: the reduction of
 * the log up to where it has read (any lag). A claim is a takeover (epoch + 1, itself as
 * owner); a write is an owner's read or ack (it writes only while its view says it owns the
 * session: a paused old owner keeps writing at its old epoch). Time is the log position.
 */
function run(steps: Step[]): Entry[] {
  const first = created();
  const log: Entry[] = [{ record: first, base: first, kind: 'claim' }];
  const readUpTo = [1, 0, 0];
  for (const s of steps) {
    const view = reduceAll(log.slice(0, readUpTo[s.node]).map((e) => e.record)).state;
    const node = NODES[s.node]!;
    if (s.op === 'read') {
      readUpTo[s.node] = Math.min(log.length, readUpTo[s.node]! + s.count);
    } else if (view === undefined) {
      continue;
    } else if (s.op === 'claim' && view.owner !== node) {
      log.push({ record: claimState(view, node), base: view, kind: 'claim' });
    } else if (s.op === 'write' && view.owner === node) {
      log.push({ record: nextState(view, { acked: `v.${log.length}`, inflight: null, lastActiveMs: log.length }), base: view, kind: 'write' });
    }
  }
  return log;
}

describe('session state reducer', () => {
  it('any interleaving of claims and writes from replicas at any lag: one owner per epoch, the first claim wins, lower epochs and stale writes are ignored', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const log = run(steps);
        let state: SessionState | undefined;
        const ownerOfEpoch = new Map<number, string>();
        const claimsByBase = new Map<string, boolean[]>();
        for (const entry of log) {
          const before = state;
          const r = reduceSession(state, entry.record);
          state = r.state;
          // Compare-and-set: a record takes effect exactly when it was made from the current state.
          expect(r.accepted).toBe(before === undefined || entry.base === before || JSON.stringify(entry.base) === JSON.stringify(before));
          if (before !== undefined && entry.record.epoch < before.epoch) expect(r.accepted).toBe(false);
          if (before !== undefined && entry.record.epoch === before.epoch && entry.record.owner !== before.owner) expect(r.accepted).toBe(false);
          if (r.accepted) {
            const owner = ownerOfEpoch.get(entry.record.epoch);
            if (owner === undefined) ownerOfEpoch.set(entry.record.epoch, entry.record.owner);
            else expect(entry.record.owner).toBe(owner);
            if (before !== undefined) expect(entry.record.epoch).toBeGreaterThanOrEqual(before.epoch);
          }
          if (entry.kind === 'claim' && before !== undefined) {
            const key = `${entry.record.epoch}/${entry.base.seq}`;
            claimsByBase.set(key, [...(claimsByBase.get(key) ?? []), r.accepted]);
          }
        }
        // Of the claims of one epoch made from the same state, only the first in the log can win.
        for (const outcomes of claimsByBase.values()) expect(outcomes.slice(1).every((a) => !a)).toBe(true);
        // Every write that took effect is in the final state's history: acks are never undone.
        const acceptedAcks = log.filter((e, i) => e.kind === 'write' && reduceAll(log.slice(0, i + 1).map((x) => x.record)).accepted[i]);
        const last = acceptedAcks.at(-1);
        if (last !== undefined) expect(Number(state!.acked.slice(2))).toBeGreaterThanOrEqual(Number(last.record.acked.slice(2)));
      }),
      { numRuns: 500 },
    );
  });

  it('two takers of a gone owner: whichever claim the log has first wins, the other is ignored', () => {
    const s = created('gone');
    const a = claimState(s, 'a');
    const b = claimState(s, 'b');
    expect(reduceAll([s, a, b]).state?.owner).toBe('a');
    expect(reduceAll([s, b, a]).state?.owner).toBe('b');
    expect(reduceAll([s, b, a]).accepted).toEqual([true, true, false]);
  });

  it('a revived old owner writing at its old epoch is ignored; so is a taker that had not read the last ack', () => {
    const s = created('a');
    const taken = claimState(s, 'b');
    const stale = nextState(s, { acked: 'v.9', lastActiveMs: 5 });
    expect(reduceAll([s, taken, stale])).toEqual({ state: taken, accepted: [true, true, false] });
    const acked = nextState(s, { acked: 'v.3' });
    const blind = claimState(s, 'c');
    expect(reduceAll([s, acked, blind])).toEqual({ state: acked, accepted: [true, true, false] });
  });

  it('a tombstone removes the session', () => {
    expect(reduceAll([created(), nextState(created(), { deleted: true })]).state?.deleted).toBe(true);
    expect(reduceSession(created(), null)).toEqual({ state: undefined, accepted: true });
  });

  it('after compaction at any point a rebuilt replica agrees with the full log, or both states are older than the cut (expired once the cut is older than the TTL)', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), fc.nat(), (steps, cutSeed) => {
        const log = run(steps).map((e) => e.record);
        const cut = 1 + (cutSeed % log.length); // records [0, cut) are cleanable
        const compacted = [log[cut - 1]!, ...log.slice(cut)];
        const full = reduceAll(log);
        const rebuilt = reduceAll(compacted).state!;
        const acceptedAfterCut = full.accepted.slice(cut).some(Boolean);
        if (full.accepted[cut - 1] || acceptedAfterCut) {
          expect(rebuilt).toEqual(full.state);
        } else {
          // Time is the log position: both states were last active before the cut's last record was written.
          expect(full.state!.lastActiveMs).toBeLessThanOrEqual(cut - 1);
          expect(rebuilt.lastActiveMs).toBeLessThanOrEqual(cut - 1);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('session state codec', () => {
  const state: fc.Arbitrary<SessionState> = fc.record(
    {
      id: fc.string({ minLength: 1 }),
      stream: fc.constantFrom('ordered' as const, 'global' as const),
      filter: fc.record({ subjects: fc.array(fc.string()), types: fc.array(fc.string()) }, { requiredKeys: [] }),
      principal: fc.string(),
      acked: fc.string({ minLength: 1 }),
      inflight: fc.option(fc.record({ from: fc.string(), to: fc.string(), count: fc.nat(), more: fc.constant(true) }, { requiredKeys: ['from', 'to', 'count'] }), { nil: null }),
      owner: fc.string({ minLength: 1 }),
      epoch: fc.integer({ min: 1 }),
      seq: fc.integer({ min: 1 }),
      lastActiveMs: fc.nat(),
      expired: fc.constant(true),
      deleted: fc.constant(true),
    },
    { requiredKeys: ['id', 'stream', 'filter', 'principal', 'acked', 'inflight', 'owner', 'epoch', 'seq', 'lastActiveMs'] },
  );

  it('round-trips any state', () => {
    fc.assert(
      fc.property(state, (s) => {
        expect(decodeSessionState(encodeSessionState(s))).toEqual(s);
      }),
    );
  });

  it('refuses what it did not write, naming the field', () => {
    expect(() => decodeSessionState('nope')).toThrow(/not JSON/);
    expect(() => decodeSessionState('{"v":2}')).toThrow(/version 1/);
    const good = JSON.parse(encodeSessionState(created())) as Record<string, unknown>;
    expect(() => decodeSessionState(JSON.stringify({ ...good, stream: 'other' }))).toThrow(/field stream/);
    expect(() => decodeSessionState(JSON.stringify({ ...good, epoch: 0 }))).toThrow(/field epoch/);
    expect(() => decodeSessionState(JSON.stringify({ ...good, inflight: { from: 'a' } }))).toThrow(/field inflight/);
    expect(() => decodeSessionState(JSON.stringify({ ...good, filter: { subjects: [1] } }))).toThrow(/field filter/);
  });

  it('expiry: idle past the TTL or marked', () => {
    expect(isExpired(created(), 1_000, 1_000)).toBe(false);
    expect(isExpired(created(), 1_001, 1_000)).toBe(true);
    expect(isExpired({ ...created(), expired: true }, 0, 1_000)).toBe(true);
  });
});
