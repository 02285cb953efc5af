import { AuthError } from '../auth/auth-error.js';
import type { Principal } from '../auth/principal.js';
import { narrowSubjects } from '../auth/subject-scope.js';
import { type DeletedLookup, refuseDeleted, withoutDeleted } from '../deletion/subject-deleted.js';
import type { RecordView } from '../commands/record-view.js';
import type { DeliverConfig } from '../config/config.js';
import { QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { SourceRecord } from '../model/records.js';
import { CursorError, CursorTracker, type Positions, type StreamName, cursorMode, decodeCursor, encodeCursor, startPositions } from '../model/stream-cursor.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import { type DeliverAnswer, type DeliverRequest, type DeliveredRecord, FORWARDED_BY_HEADER, type RecordViews, SERVED_BY_HEADER, matchesFilter, viewsOfPassing } from './delivery.js';
import { decodeSessionId, newSessionId } from './session-id.js';
import { type InflightBatch, type SessionState, claimState, isExpired, nextState } from './session-state.js';
import { parseFilter, parseFrom, parseStreamName, resolveStart } from './stream-request.js';

/**
 * Receiver sessions (docs/delivery.md#sessions): a client that keeps no state asks for "the
 * next records", and acknowledges them; a read without an ack since answers the same batch
 * again (same records, same cursors), so a lost response loses nothing.
 *
 * Where the state lives: the compacted sessions topic (SessionStore), every replica holding
 * all of it. The in-flight batch is stored as {from, to, count}: re-reading from `from` with
 * the same filter, every record before `to`, gives the same records; they are answered in one
 * canonical order (each partition in offset order, partitions merged by timestamp), so the
 * cursors are the same too.
 *
 * Who serves: the session's owner (its state's `owner`; at first the node in its id). Any
 * other replica forwards the request to it (Router.forward: through the broker) while it is
 * live, or, once it has had no heartbeat for nodeTtlMs, takes the session over: a claim with
 * the next epoch that only the first taker in the log wins (session-state.ts). Every answer
 * an owner gives is written first; a write that did not take effect (someone took the session
 * over meanwhile) is never answered: the request goes to the new owner instead.
 */

/** A reader of a stream topic (StreamSource's, src/engine/stream-source.ts). */
export interface SessionReader {
  next(max: number, waitMs: number, signal?: AbortSignal): Promise<SourceRecord[]>;
  /** Reading older records than the source keeps in memory (its first records need a Kafka fetch). */
  readonly catchingUp?: boolean;
  close(): Promise<void>;
}

/** What sessions need of a StreamSource. */
export interface SessionSource {
  partitions(): number;
  bounds(): Promise<Map<number, { earliest: bigint; end: bigint }>>;
  open(from: Positions): Promise<SessionReader>;
}

/** What sessions need of the routing (NodeRegistry and Forwarder, src/engine/). */
export interface SessionRouter {
  isLive(node: string): boolean;
  /** ms since the node's last heartbeat; undefined: not seen since this replica started. */
  goneFor(node: string): number | undefined;
  forward(node: string, request: DeliverRequest, extraMs?: number): Promise<DeliverAnswer>;
}

/** What sessions need of the SessionStore (src/engine/session-store.ts). */
export interface SessionStates {
  get(id: string): SessionState | undefined;
  states(): Iterable<SessionState>;
  write(state: SessionState): Promise<boolean>;
  remove(id: string): Promise<void>;
}

export interface SessionsOptions {
  /** This replica's node id (ORDO_NODE_ID). */
  nodeId: string;
  sources: Record<StreamName, SessionSource>;
  views: RecordViews;
  store: SessionStates;
  router: SessionRouter;
  limits: Pick<DeliverConfig, 'sessionTtlMs' | 'nodeTtlMs' | 'maxRecords' | 'maxWaitMs'>;
  metrics?: OrdoMetrics;
  logger?: Logger;
  now?: () => number;
  /** How often expired sessions are looked for (default: a quarter of the TTL, at most 10 s). */
  sweepMs?: number;
  /** Deleted subjects (src/deletion/): a session filtered to one answers 410, others leave them out. */
  deleted?: DeletedLookup;
}

type Route = 'create' | 'records' | 'ack' | 'delete';

/** A session read's `max` when none is given. */
const DEFAULT_MAX = 100;
/** Re-reading an in-flight batch finds records that exist: if it takes longer than this, something is wrong (503). */
const REREAD_MS = 10_000;
/** Attempts to reach a session whose owner changes meanwhile (a takeover race) before 503. */
const ATTEMPTS = 3;

/** The owner's write did not take effect: another node owns the session now. */
const MOVED = Symbol('moved');
type Served = DeliverAnswer | typeof MOVED;

interface Candidate {
  record: SourceRecord;
  view: RecordView;
}

/** How long a read behind the in-memory tail waits at least for its first records (a consumer join and a fetch). */
const CATCH_UP_WAIT_MS = 5_000;

export class Sessions {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly startedAt: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SessionsOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.logger = options.logger ?? noopLogger;
  }

  /** Starts looking for expired sessions (this node's, and those of gone nodes). */
  start(): void {
    const ttl = this.options.limits.sessionTtlMs;
    this.timer = setInterval(() => {
      this.sweep().catch((error: unknown) => this.logger.warn('session sweep failed; next time again', { error }));
    }, this.options.sweepMs ?? Math.min(10_000, Math.max(250, Math.floor(ttl / 4))));
    this.timer.unref();
  }

  /** Stops the sweeps and ends waiting reads (they answer what they have). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
  }

  /** A session request received from a client (authenticated, scope checked). */
  async handle(request: DeliverRequest): Promise<DeliverAnswer> {
    return this.answer(request, false);
  }

  /** A session request another replica forwarded to this one as the owner (the Forwarder's `serve`). */
  async serveForwarded(request: DeliverRequest): Promise<DeliverAnswer> {
    return this.answer(request, true);
  }

  private async answer(request: DeliverRequest, forwarded: boolean): Promise<DeliverAnswer> {
    let route: Route | undefined;
    try {
      const parsed = parseRoute(request);
      route = parsed.route;
      const answer = parsed.route === 'create' ? await this.create(parsed.segment, request) : await this.dispatch(parsed.route, parsed.segment, request, forwarded);
      return answer;
    } catch (error) {
      const answer = errorAnswer(error);
      if (answer === undefined) throw error;
      answer.headers[SERVED_BY_HEADER] = this.options.nodeId;
      if (route !== undefined) this.count(route, (answer.body as { error: { kind: string } }).error.kind);
      return answer;
    }
  }

  private async create(streamText: string, request: DeliverRequest): Promise<DeliverAnswer> {
    const stream = parseStreamName(streamText);
    const body = parseBody(request.body, ['filter', 'from']);
    const filter = parseFilter(body.filter);
    // A subject-scoped token: asked subjects outside its scope are refused (403); none asked: its subjects.
    const narrowed = narrowSubjects(request.principal, filter.subjects);
    if (narrowed.subjects === undefined) delete filter.subjects;
    else filter.subjects = narrowed.subjects;
    refuseDeleted(filter.subjects, this.options.deleted);
    const start = parseFrom(body.from);
    const source = this.options.sources[stream];
    let cursor: string;
    if (start.kind === 'cursor') {
      await resolveStart(start, stream, source, 'from', filter.subjects); // 400 bad-cursor when it is not one of this stream's
      cursor = encodeCursor(start.cursor);
    } else {
      const positions = await resolveStart(start, stream, source);
      cursor = encodeCursor({ kind: 'vector', next: Array.from({ length: source.partitions() }, (_, p) => positions.get(p) ?? 0n) });
    }
    const now = this.now();
    const state: SessionState = { id: newSessionId(this.options.nodeId), stream, filter, principal: request.principal.name, acked: cursor, inflight: null, owner: this.options.nodeId, epoch: 1, seq: 1, lastActiveMs: now };
    if (!(await this.options.store.write(state))) throw new Error(`session ${state.id}: its first record did not take effect`);
    this.count('create', 'ok');
    return this.local(201, { sessionId: state.id, stream, filter, cursor, expiresAt: this.expiresAt(state) });
  }

  /** Serves the session here if this node owns it (or takes it over from a gone owner), else forwards it to its owner. */
  private async dispatch(route: Exclude<Route, 'create'>, id: string, request: DeliverRequest, forwarded: boolean): Promise<DeliverAnswer> {
    const { node: creator } = decodeSessionId(id);
    // Bad parameters are refused wherever the request lands.
    const read = route === 'records' ? parseReadQuery(request.query, this.options.limits) : undefined;
    const me = this.options.nodeId;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const state = this.options.store.get(id);
      if (state === undefined) {
        // Created a moment ago on its node, not read here yet: that node knows.
        if (!forwarded && creator !== me && this.options.router.isLive(creator)) return this.forward(creator, request, read?.waitMs);
        throw unknownSession(id);
      }
      if (state.principal !== request.principal.name || state.deleted === true) throw unknownSession(id);
      refuseDeleted(state.filter.subjects, this.options.deleted);
      if (state.owner === me) {
        const served = await this.locked(id, () => this.serve(route, id, request, read));
        if (served !== MOVED) return served;
        continue;
      }
      if (this.options.router.isLive(state.owner)) {
        // An owner's view and ours disagree for a moment: the client asks again (no forwarding loops).
        if (forwarded) throw new QueryError('session-moved', `session ${id} is served by node ${state.owner} now; ask again`, 503, { headers: { 'retry-after': '1' } });
        return this.forward(state.owner, request, read?.waitMs);
      }
      if (isExpired(state, this.now(), this.options.limits.sessionTtlMs)) throw expiredSession(id);
      if (!this.gone(state.owner)) {
        throw new QueryError('owner-unknown', `session ${id} is owned by node ${state.owner}, not seen yet since this replica started; ask again`, 503, { headers: { 'retry-after': '1' } });
      }
      await this.locked(id, () => this.takeOver(id, state.owner));
    }
    throw new QueryError('session-busy', `session ${id} changed owner ${ATTEMPTS} times during this request; ask again`, 503, { headers: { 'retry-after': '1' } });
  }

  private async takeOver(id: string, from: string): Promise<void> {
    const state = this.options.store.get(id);
    if (state === undefined || state.owner !== from) return; // someone was faster: the caller looks again
    const won = await this.options.store.write(claimState(state, this.options.nodeId));
    this.options.metrics?.deliverTakeovers.inc({ outcome: won ? 'won' : 'lost' });
    this.logger.info(won ? 'took a session over from a gone node' : 'another node took the session over first', { session: id, from, epoch: state.epoch + 1 });
  }

  /** The owner's side, one request of a session at a time. */
  private async serve(route: Exclude<Route, 'create'>, id: string, request: DeliverRequest, read: ReadQuery | undefined): Promise<Served> {
    const state = this.options.store.get(id);
    if (state === undefined || state.owner !== this.options.nodeId) return MOVED;
    if (state.principal !== request.principal.name || state.deleted === true) throw unknownSession(id);
    if (isExpired(state, this.now(), this.options.limits.sessionTtlMs)) throw expiredSession(id);
    let served: Served;
    if (route === 'records') served = await this.read(state, request.principal, read!);
    else if (route === 'ack') served = await this.ack(state, request.body);
    else served = (await this.options.store.write(nextState(state, { deleted: true, inflight: null, lastActiveMs: this.now() }))) ? this.local(204, null) : MOVED;
    if (served !== MOVED) this.count(route, 'ok');
    return served;
  }

  private async read(state: SessionState, principal: Principal, query: ReadQuery): Promise<Served> {
    const source = this.options.sources[state.stream];
    const batch = state.inflight !== null ? await this.reread(state, state.inflight, source, principal) : await this.readNext(state, source, principal, query);
    const next = nextState(state, { acked: batch.acked, inflight: batch.inflight, lastActiveMs: this.now() });
    if (!(await this.options.store.write(next))) return MOVED;
    this.options.metrics?.deliverRecords.inc({ stream: state.stream, via: 'session' }, batch.records.length);
    return this.local(200, {
      records: batch.records,
      cursor: batch.inflight?.to ?? batch.acked,
      ...(batch.more && { more: true }),
      expiresAt: this.expiresAt(next),
    });
  }

  /** A new batch: up to `max` matching records after the acked cursor, waiting up to `waitMs` for the first. */
  private async readNext(state: SessionState, source: SessionSource, principal: Principal, query: ReadQuery): Promise<Batch> {
    const partitions = source.partitions();
    const from = this.positionsOf(state, state.acked, partitions);
    const mode = cursorMode(state.stream, state.filter.subjects);
    const scanned = new CursorTracker(mode, from, partitions);
    const found: Candidate[] = [];
    let lastPassed: SourceRecord | undefined;
    const reader = await source.open(from);
    // A reader behind the in-memory tail has nothing until its consumer has joined and
    // fetched: waitMs=0 would answer [] although records exist. Wait for them a little.
    const deadline = this.now() + (reader.catchingUp === true ? Math.max(query.waitMs, CATCH_UP_WAIT_MS) : query.waitMs);
    try {
      for (;;) {
        // [] once waitMs passed with nothing (or the role stops): answer what there is.
        const records = await reader.next(query.max, Math.max(0, deadline - this.now()), this.stopping.signal);
        if (records.length === 0) break;
        const views = await this.viewsOf(state, principal, records);
        for (const [i, record] of records.entries()) {
          const view = views[i];
          const matches = view !== undefined && this.matches(state, principal, view);
          if (matches && found.length === query.max) break;
          scanned.pass(record);
          lastPassed = record;
          if (matches) found.push({ record, view });
        }
        if (found.length > 0 || this.now() >= deadline || this.stopping.signal.aborted) break;
      }
    } finally {
      await reader.close().catch((error: unknown) => this.logger.warn('closing a session reader failed', { error }));
    }
    if (found.length === 0) {
      // Nothing matched: move past what was read (never in a one-subject session, whose cursor names that subject's records).
      const acked = lastPassed !== undefined && mode !== 'subject' ? encodeCursor(scanned.cursorAfter(lastPassed)) : state.acked;
      return { records: [], acked, inflight: null, more: false };
    }
    const ordered = this.canonical(state, found, from, partitions);
    const to = mode === 'vector' ? encodeCursor({ kind: 'vector', next: scanned.positions() }) : ordered.at(-1)!.cursor;
    if (mode === 'vector') ordered.at(-1)!.cursor = to;
    const more = found.length === query.max;
    return { records: ordered, acked: state.acked, inflight: { from: state.acked, to, count: ordered.length, ...(more && { more }) }, more };
  }

  /** The in-flight batch again: every matching record from its `from` up to its `to`. */
  private async reread(state: SessionState, inflight: InflightBatch, source: SessionSource, principal: Principal): Promise<Batch> {
    const partitions = source.partitions();
    const from = this.positionsOf(state, inflight.from, partitions);
    const until = this.positionsOf(state, inflight.to, partitions);
    const open = new Map([...from].filter(([p, f]) => (until.get(p) ?? f) > f));
    const found: Candidate[] = [];
    if (open.size > 0) {
      const reached = new Map(open);
      const done = (): boolean => [...open.keys()].every((p) => reached.get(p)! >= until.get(p)!);
      const deadline = this.now() + REREAD_MS;
      const reader = await source.open(open);
      try {
        while (!done()) {
          if (this.now() > deadline || this.stopping.signal.aborted) {
            throw new QueryError('batch-unavailable', `session ${state.id}: its in-flight batch could not be read again in time; ask again`, 503, { headers: { 'retry-after': '1' } });
          }
          const records = (await reader.next(this.options.limits.maxRecords, 1_000, this.stopping.signal)).filter((r) => BigInt(r.offset) < (until.get(r.partition) ?? 0n));
          for (const r of records) reached.set(r.partition, BigInt(r.offset) + 1n);
          const views = await this.viewsOf(state, principal, records);
          for (const [i, record] of records.entries()) {
            const view = views[i];
            if (view !== undefined && this.matches(state, principal, view)) found.push({ record, view });
          }
        }
      } finally {
        await reader.close().catch((error: unknown) => this.logger.warn('closing a session reader failed', { error }));
      }
    }
    if (found.length !== inflight.count) this.logger.warn('an in-flight batch read again has another count', { session: state.id, stored: inflight.count, read: found.length });
    const ordered = this.canonical(state, found, from, partitions);
    const last = ordered.at(-1);
    if (last !== undefined && cursorMode(state.stream, state.filter.subjects) === 'vector') last.cursor = inflight.to;
    return { records: ordered, acked: state.acked, inflight, more: inflight.more === true };
  }

  /**
   * The batch in its one order: each partition in offset order, partitions merged by record
   * timestamp (then partition), and the cursor after each record counting only the records
   * before it in that order, so the same records always get the same cursors.
   */
  private canonical(state: SessionState, found: Candidate[], from: Positions, partitions: number): DeliveredRecord[] {
    const queues = new Map<number, { items: Candidate[]; at: number }>();
    for (const c of found) {
      const q = queues.get(c.record.partition);
      if (q === undefined) queues.set(c.record.partition, { items: [c], at: 0 });
      else q.items.push(c);
    }
    for (const q of queues.values()) q.items.sort((a, b) => (BigInt(a.record.offset) < BigInt(b.record.offset) ? -1 : 1));
    const tracker = new CursorTracker(cursorMode(state.stream, state.filter.subjects), from, partitions);
    const out: DeliveredRecord[] = [];
    for (;;) {
      let pick: { items: Candidate[]; at: number } | undefined;
      for (const q of queues.values()) {
        const head = q.items[q.at];
        if (head === undefined) continue;
        const best = pick?.items[pick.at];
        if (best === undefined || head.record.timestamp < best.record.timestamp || (head.record.timestamp === best.record.timestamp && head.record.partition < best.record.partition)) pick = q;
      }
      const next = pick?.items[pick.at++];
      if (next === undefined) return out;
      tracker.pass(next.record);
      out.push({ ...next.view, stream: state.stream, cursor: encodeCursor(tracker.cursorAfter(next.record)) });
    }
  }

  private async ack(state: SessionState, body: string): Promise<Served> {
    const { cursor } = parseBody(body, ['cursor']);
    if (typeof cursor !== 'string' || cursor === '') throw new QueryError('bad-parameter', 'cursor: missing; give the cursor of the batch read (or of one of its records)');
    let decoded;
    try {
      decoded = decodeCursor(cursor);
    } catch (error) {
      if (error instanceof CursorError) throw new QueryError('bad-cursor', `cursor: ${error.message}`);
      throw error;
    }
    const now = this.now();
    if (cursor === state.acked) {
      // The same ack again (its answer was lost): nothing moves.
      return (await this.options.store.write(nextState(state, { lastActiveMs: now }))) ? this.local(200, { acked: cursor }) : MOVED;
    }
    const inflight = state.inflight;
    if (inflight === null) throw new QueryError('ack-out-of-range', `session ${state.id}: no batch is in flight; acked is ${state.acked}`, 409);
    const partitions = this.options.sources[state.stream].partitions();
    const from = this.positionsOf(state, inflight.from, partitions);
    const to = this.positionsOf(state, inflight.to, partitions);
    let at: Map<number, bigint>;
    try {
      at = startPositions(decoded, state.stream, partitions);
    } catch (error) {
      if (error instanceof CursorError) throw new QueryError('bad-cursor', `cursor: ${error.message}`);
      throw error;
    }
    // A one-partition cursor would drop the other partitions of a many-subject session.
    const within =
      !(cursorMode(state.stream, state.filter.subjects) === 'vector' && decoded.kind !== 'vector') &&
      [...at].every(([p, offset]) => from.has(p) && offset >= from.get(p)! && offset <= (to.get(p) ?? from.get(p)!));
    if (!within) {
      throw new QueryError('ack-out-of-range', `session ${state.id}: cursor ${quote(cursor)} is not within the batch in flight (from ${inflight.from} to ${inflight.to}); acked is ${state.acked}`, 409);
    }
    return (await this.options.store.write(nextState(state, { acked: cursor, inflight: null, lastActiveMs: now }))) ? this.local(200, { acked: cursor }) : MOVED;
  }

  /**
   * The owner saw a record of its session that did not take effect (a lost claim): it writes
   * its state again so the session's last record is its own (the compaction argument in
   * session-state.ts). The lead wires SessionStore's onIgnored here.
   */
  heal(current: SessionState): void {
    if (current.owner !== this.options.nodeId || current.deleted === true || current.expired === true) return;
    void this.locked(current.id, async () => {
      const state = this.options.store.get(current.id);
      if (state?.seq !== current.seq || state.owner !== this.options.nodeId) return; // written since: healed already
      await this.options.store.write(nextState(state, {}));
    }).catch((error: unknown) => this.logger.warn('rewriting a session after a lost claim failed', { session: current.id, error }));
  }

  /**
   * Expires this node's idle sessions (and those of gone nodes: a claim with `expired`, which
   * only one replica wins), removes (tombstones) ended ones after another TTL, and updates the
   * owned sessions gauge.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    const ttl = this.options.limits.sessionTtlMs;
    const me = this.options.nodeId;
    let owned = 0;
    for (const state of [...this.options.store.states()]) {
      const ended = state.deleted === true || state.expired === true;
      const mine = state.owner === me;
      if (mine && !ended) owned++;
      if (!mine && !this.gone(state.owner)) continue;
      if (ended) {
        if (now - state.lastActiveMs > 2 * ttl) await this.options.store.remove(state.id);
      } else if (isExpired(state, now, ttl)) {
        const won = await this.locked(state.id, async () => {
          const fresh = this.options.store.get(state.id);
          if (fresh?.seq !== state.seq) return false;
          return this.options.store.write(mine ? nextState(fresh, { expired: true, inflight: null }) : claimState(fresh, me, { expired: true, inflight: null }));
        });
        if (won) {
          if (mine) owned--;
          this.options.metrics?.deliverSessionsExpired.inc();
        }
      }
    }
    this.options.metrics?.deliverSessions.set(owned);
  }

  /**
   * The registry says whether a node is live (a heartbeat within the node TTL, and no clean
   * leave); a node not seen at all since this replica started counts as gone only once this
   * replica has been up for the node TTL (it may just not have read the heartbeats yet).
   */
  private gone(node: string): boolean {
    if (this.options.router.isLive(node)) return false;
    return this.options.router.goneFor(node) !== undefined || this.now() - this.startedAt >= this.options.limits.nodeTtlMs;
  }

  private async forward(node: string, request: DeliverRequest, waitMs = 0): Promise<DeliverAnswer> {
    const answer = await this.options.router.forward(node, request, waitMs);
    return { ...answer, headers: { ...answer.headers, [SERVED_BY_HEADER]: answer.headers[SERVED_BY_HEADER] ?? node, [FORWARDED_BY_HEADER]: this.options.nodeId } };
  }

  /** The records' views, undecoded (undefined) where the key already rules a record out. */
  private viewsOf(state: SessionState, principal: Principal, records: SourceRecord[]): Promise<(RecordView | undefined)[]> {
    const allows = principal.subjects.all ? undefined : (subject: string): boolean => principal.subjects.allows(subject);
    return viewsOfPassing(records, state.filter, withoutDeleted(allows, this.options.deleted), this.options.views);
  }

  private matches(state: SessionState, principal: Principal, view: RecordView): boolean {
    // The principal's scope again: a prefix scope (`team-a/*`) is not a list the filter could hold.
    const deleted = this.options.deleted;
    if (deleted !== undefined && view.key !== null && deleted(view.key) !== undefined) return false;
    return matchesFilter(state.filter, view) && (principal.subjects.all || (view.key !== null && principal.subjects.allows(view.key)));
  }

  private positionsOf(state: SessionState, cursor: string, partitions: number): Map<number, bigint> {
    return startPositions(decodeCursor(cursor), state.stream, partitions);
  }

  private expiresAt(state: SessionState): string {
    return new Date(state.lastActiveMs + this.options.limits.sessionTtlMs).toISOString();
  }

  private local(status: number, body: unknown): DeliverAnswer {
    return { status, headers: { [SERVED_BY_HEADER]: this.options.nodeId }, body };
  }

  private count(route: Route, outcome: string): void {
    this.options.metrics?.deliverSessionRequests.inc({ route, outcome });
  }

  /** One request of a session at a time on its owner: a read and an ack never interleave. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}

interface Batch {
  records: DeliveredRecord[];
  acked: string;
  inflight: InflightBatch | null;
  more: boolean;
}

interface ReadQuery {
  max: number;
  waitMs: number;
}

function parseRoute(request: DeliverRequest): { route: Route; segment: string } {
  const path = request.path;
  const routes: [RegExp, string, Route][] = [
    [/^\/v1\/streams\/([^/]+)\/sessions$/, 'POST', 'create'],
    [/^\/v1\/sessions\/([^/]+)\/records$/, 'GET', 'records'],
    [/^\/v1\/sessions\/([^/]+)\/ack$/, 'POST', 'ack'],
    [/^\/v1\/sessions\/([^/]+)$/, 'DELETE', 'delete'],
  ];
  for (const [pattern, method, route] of routes) {
    const m = pattern.exec(path);
    if (m === null) continue;
    if (request.method !== method) throw new QueryError('method-not-allowed', `${request.method} ${quote(path)}: use ${method}`, 405, { headers: { allow: method } });
    return { route, segment: m[1]! };
  }
  throw new QueryError('not-found', `no session route ${quote(path)}`, 404);
}

function parseReadQuery(query: string, limits: Pick<DeliverConfig, 'maxRecords' | 'maxWaitMs'>): ReadQuery {
  const read: ReadQuery = { max: Math.min(DEFAULT_MAX, limits.maxRecords), waitMs: 0 };
  const seen = new Set<string>();
  for (const [name, value] of new URLSearchParams(query)) {
    if (name !== 'max' && name !== 'waitMs') throw new QueryError('bad-parameter', `unknown parameter ${quote(name)}; known parameters: max, waitMs`);
    if (seen.has(name)) throw new QueryError('bad-parameter', `${name}: given more than once`);
    seen.add(name);
    const [low, high] = name === 'max' ? [1, limits.maxRecords] : [0, limits.maxWaitMs];
    const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    if (!(n >= low && n <= high)) throw new QueryError('bad-parameter', `${name}: ${quote(value)} is not an integer in ${low}-${high}`);
    if (name === 'max') read.max = n;
    else read.waitMs = n;
  }
  return read;
}

function parseBody(body: string, fields: string[]): Record<string, unknown> {
  if (body.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new QueryError('bad-parameter', 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new QueryError('bad-parameter', 'the body is not a JSON object');
  const unknown = Object.keys(value).find((k) => !fields.includes(k));
  if (unknown !== undefined) throw new QueryError('bad-parameter', `unknown field ${quote(unknown)}; fields: ${fields.join(', ')}`);
  return value as Record<string, unknown>;
}

function unknownSession(id: string): QueryError {
  return new QueryError('unknown-session', `no session ${quote(id)} (never created, deleted, expired long ago, or another principal's)`, 404);
}

function expiredSession(id: string): QueryError {
  return new QueryError('session-expired', `session ${quote(id)} expired: no request for longer than its TTL; create a new one`, 410);
}

/** The answer of an error a client caused (the JSON error body of src/http/json.ts); undefined for anything else. */
function errorAnswer(error: unknown): DeliverAnswer | undefined {
  if (error instanceof QueryError) return { status: error.status, headers: { ...error.headers }, body: { error: { kind: error.kind, message: error.message, ...error.details } } };
  if (error instanceof AuthError) return { status: error.status, headers: {}, body: { error: { kind: error.kind, message: error.message } } };
  return undefined;
}
