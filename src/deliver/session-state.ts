import { STREAMS, type StreamName } from '../model/stream-cursor.js';
import type { StreamFilter } from './delivery.js';

/**
 * The state of one receiver session as the compacted sessions topic holds it (key: the
 * session id, value: this JSON; a tombstone removes it), and the reducer every replica
 * applies to that topic in log order. Pure: the store (src/engine/session-store.ts) feeds it.
 *
 * Ownership. Every write carries `seq` = the seq of the state it was made from + 1, and the
 * reducer accepts a record only when its seq is higher than the current state's: the log is
 * a compare-and-set register. A writer makes a record from its replica's reduced state,
 * which equals the log's state at some earlier point, so:
 *   - of several records made from the same state (two replicas taking over a gone owner,
 *     each writing epoch + 1 with itself as owner) the first in the log wins and the others
 *     carry a seq that is no longer higher: one owner per epoch, the first claim wins;
 *   - a record made from an older state (a revived old owner still at a lower epoch, a taker
 *     that had not read the owner's last ack) is ignored, so nothing written since is undone;
 *   - the owner changes only together with an epoch bump (claims), so a record with a lower
 *     epoch than the current one, or the same epoch and another owner, is always made from
 *     an older state and ignored. The property tests in test/deliver/session-state.test.ts
 *     check these rules over any interleaving of writers reading the log at any lag.
 * A writer learns whether its record took effect once its replica applied it (SessionStore
 * .write), so a loser never serves: it forwards to the winner.
 *
 * Compaction. After the cleaner ran, a replica that rebuilds sees, per session, the last
 * record of the cleaned part of the log followed by every later record. If that record took
 * effect it is the state the full log had at that point, and the rest reduces the same. If it
 * did not (a lost claim, a stale owner's write: call it R) the rebuilt state is R until the
 * next record that took effect in the full log: that record's seq is above every seq written
 * before it, R's included, so it is accepted again and both views are the same from there on.
 * Until then the rebuilt view could be wrong, which is safe only because:
 *   - the sessions topic has min.compaction.lag.ms >= the session TTL (the role's topic
 *     spec): R is cleanable only once it is older than the TTL, and R's lastActiveMs is at
 *     most its write time, so the rebuilt state is expired (410) and nobody serves or claims
 *     it; the full log's state at that point was written before R and is expired too, unless
 *     a record that took effect came after R, and then the views agree again;
 *   - every served request writes (reads and acks renew lastActiveMs), and a loser retries at
 *     once from its fresh state, and the owner rewrites its state when it sees a record of its
 *     session that did not take effect (Sessions.heal), so a live session's last record is the
 *     owner's within milliseconds of any lost claim.
 */

/** The batch a session read answered and the client has not acknowledged yet. */
export interface InflightBatch {
  /** The cursor the batch was read from (the acked cursor then). */
  from: string;
  /** The cursor after the batch's last record: re-reading from `from` up to it gives the same records. */
  to: string;
  /** Records in the batch. */
  count: number;
  /** The read stopped at `max` (more may follow): answered again with the batch. */
  more?: boolean;
}

export interface SessionState {
  id: string;
  stream: StreamName;
  /** The records the session delivers (already narrowed to the creator's subjects when it was made). */
  filter: StreamFilter;
  /** The name of the principal that created it: only the same principal may use it. */
  principal: string;
  /** Where the next batch starts: everything before it was acknowledged. */
  acked: string;
  inflight: InflightBatch | null;
  /** The node serving it. */
  owner: string;
  /** Bumped by every change of owner (takeover). */
  epoch: number;
  /** Bumped by every write: the compare-and-set version (see the header). */
  seq: number;
  /** The last client request, ms since the epoch (the owner's clock). */
  lastActiveMs: number;
  /** No request for the TTL: answers 410 until the owner removes it. */
  expired?: boolean;
  /** Deleted by its client: answers 404 until the owner removes it. */
  deleted?: boolean;
}

export interface Reduced {
  state: SessionState | undefined;
  /** Whether the record took effect. */
  accepted: boolean;
}

/** Applies one record of the sessions topic (null: a tombstone) to the session's current state. */
export function reduceSession(current: SessionState | undefined, record: SessionState | null): Reduced {
  if (record === null) return { state: undefined, accepted: true };
  if (current === undefined || record.seq > current.seq) return { state: record, accepted: true };
  return { state: current, accepted: false };
}

/** The next write of `state` by its owner (same epoch), with `changes`. */
export function nextState(state: SessionState, changes: Partial<Omit<SessionState, 'id' | 'seq' | 'epoch' | 'owner'>>): SessionState {
  return { ...state, ...changes, seq: state.seq + 1 };
}

/** `node` takes `state` over: the next epoch, with it as owner. */
export function claimState(state: SessionState, node: string, changes: Partial<Omit<SessionState, 'id' | 'seq' | 'epoch' | 'owner'>> = {}): SessionState {
  return { ...state, ...changes, owner: node, epoch: state.epoch + 1, seq: state.seq + 1 };
}

/** Idle for the TTL (or marked so): no longer served. */
export function isExpired(state: SessionState, nowMs: number, ttlMs: number): boolean {
  return state.expired === true || nowMs - state.lastActiveMs > ttlMs;
}

export function encodeSessionState(state: SessionState): string {
  return JSON.stringify({ v: 1, ...state });
}

/** A record of the sessions topic; Error naming what is wrong for anything this module did not write. */
export function decodeSessionState(text: string): SessionState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('session record is not JSON');
  }
  if (!isObject(value) || value.v !== 1) throw new Error('session record is not version 1 JSON');
  const { id, stream, filter, principal, acked, inflight, owner, epoch, seq, lastActiveMs, expired, deleted } = value;
  const fail = (field: string): never => {
    throw new Error(`session record: field ${field} is missing or invalid`);
  };
  if (typeof id !== 'string' || id === '') fail('id');
  if (typeof stream !== 'string' || !(STREAMS as readonly string[]).includes(stream)) fail('stream');
  if (!isObject(filter) || !optionalStrings(filter.subjects) || !optionalStrings(filter.types)) fail('filter');
  if (typeof principal !== 'string') fail('principal');
  if (typeof acked !== 'string' || acked === '') fail('acked');
  if (inflight !== null && !(isObject(inflight) && typeof inflight.from === 'string' && typeof inflight.to === 'string' && isCount(inflight.count) && (inflight.more === undefined || typeof inflight.more === 'boolean'))) fail('inflight');
  if (typeof owner !== 'string' || owner === '') fail('owner');
  if (!isCount(epoch) || epoch < 1) fail('epoch');
  if (!isCount(seq) || seq < 1) fail('seq');
  if (!isCount(lastActiveMs)) fail('lastActiveMs');
  if (expired !== undefined && typeof expired !== 'boolean') fail('expired');
  if (deleted !== undefined && typeof deleted !== 'boolean') fail('deleted');
  const f = filter as { subjects?: string[]; types?: string[] };
  const i = inflight as InflightBatch | null;
  return {
    id: id as string,
    stream: stream as StreamName,
    filter: { ...(f.subjects !== undefined && { subjects: [...f.subjects] }), ...(f.types !== undefined && { types: [...f.types] }) },
    principal: principal as string,
    acked: acked as string,
    inflight: i === null ? null : { from: i.from, to: i.to, count: i.count, ...(i.more === true && { more: true }) },
    owner: owner as string,
    epoch: epoch as number,
    seq: seq as number,
    lastActiveMs: lastActiveMs as number,
    ...(expired === true && { expired: true }),
    ...(deleted === true && { deleted: true }),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalStrings(value: unknown): boolean {
  return value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
