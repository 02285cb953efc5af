// Receiver sessions (src/deliver/sessions.ts) with in-memory stand-ins for what the role
// wires: stream topics (readers that interleave partitions differently each time they are
// opened), the replicated sessions log (each replica's view of it may lag), and routing
// between replicas (a forward calls the owner's serveForwarded, as D's Forwarder does).
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { SubjectScope } from '../../src/auth/subject-scope.js';
import type { RecordView } from '../../src/commands/record-view.js';
import type { DeliverAnswer, DeliverRequest, DeliveredRecord } from '../../src/deliver/delivery.js';
import { decodeSessionId } from '../../src/deliver/session-id.js';
import { type SessionState, reduceSession } from '../../src/deliver/session-state.js';
import { type SessionReader, type SessionRouter, type SessionSource, type SessionStates, Sessions } from '../../src/deliver/sessions.js';
import { QueryError } from '../../src/errors.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import type { SourceRecord } from '../../src/model/records.js';
import type { Positions } from '../../src/model/stream-cursor.js';

const TTL = 60_000;
const NODE_TTL = 10_000;
const LIMITS = { sessionTtlMs: TTL, nodeTtlMs: NODE_TTL, maxRecords: 50, maxWaitMs: 2_000 };

/** A stream topic in memory. Each reader interleaves the partitions in another order (as catch-up and tail readers may). */
class FakeTopic implements SessionSource {
  readonly parts: SourceRecord[][];
  private readonly waiters = new Set<() => void>();
  private opened = 0;
  private readonly seqs = new Map<string, number>();

  constructor(
    readonly name: string,
    partitions: number,
  ) {
    this.parts = Array.from({ length: partitions }, () => []);
  }

  /** Appends one record of `subject` (partition: its first letter's code modulo the partitions) with `type`; ties in timestamps on purpose. */
  append(subject: string, type = 'api.call'): SourceRecord {
    const partition = subject.charCodeAt(0) % this.parts.length;
    const part = this.parts[partition]!;
    const seq = (this.seqs.get(this.name === 'global' ? '' : subject) ?? 0) + 1;
    this.seqs.set(this.name === 'global' ? '' : subject, seq);
    const record: SourceRecord = {
      topic: this.name,
      partition,
      offset: String(part.length),
      key: Buffer.from(subject),
      value: Buffer.from('{}'),
      headers: { type, [this.name === 'global' ? 'ordo-global-seq' : 'ordo-seq']: String(seq) },
      timestamp: 1_000 + Math.floor(this.count() / 2),
    };
    part.push(record);
    for (const wake of [...this.waiters]) wake();
    return record;
  }

  count(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }

  partitions(): number {
    return this.parts.length;
  }

  bounds(): Promise<Map<number, { earliest: bigint; end: bigint }>> {
    return Promise.resolve(new Map(this.parts.map((p, i) => [i, { earliest: 0n, end: BigInt(p.length) }])));
  }

  open(from: Positions): Promise<SessionReader> {
    for (const [p, offset] of from) {
      if (offset > BigInt(this.parts[p]!.length)) return Promise.reject(new QueryError('cursor-ahead', `partition ${p} ends before ${offset}`, 400));
    }
    const rotation = this.opened++;
    const next = new Map(from);
    const take = (max: number): SourceRecord[] => {
      const out: SourceRecord[] = [];
      const order = [...next.keys()].sort((a, b) => ((a + rotation) % this.parts.length) - ((b + rotation) % this.parts.length));
      for (let progress = true; progress && out.length < max; ) {
        progress = false;
        for (const p of order) {
          const record = this.parts[p]![Number(next.get(p))];
          if (record === undefined || out.length >= max) continue;
          out.push(record);
          next.set(p, next.get(p)! + 1n);
          progress = true;
        }
      }
      return out;
    };
    return Promise.resolve({
      next: async (max: number, waitMs: number, signal?: AbortSignal) => {
        const out = take(max);
        if (out.length > 0 || waitMs === 0) return out;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            this.waiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          this.waiters.add(done);
          signal?.addEventListener('abort', done);
        });
        return take(max);
      },
      close: () => Promise.resolve(),
    });
  }
}

const views = (records: SourceRecord[]): Promise<RecordView[]> =>
  Promise.resolve(
    records.map((r) => ({
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      timestamp: new Date(r.timestamp).toISOString(),
      key: r.key?.toString() ?? null,
      headers: {},
      kind: 'event' as const,
      value: { type: String(r.headers.type), subject: r.key?.toString() },
    })),
  );

/** The sessions topic: one log every replica reads, each at its own pace. */
class FakeLog {
  readonly records: { key: string; value: SessionState | null }[] = [];
}

/** One replica's SessionStore: applies the log when asked; `paused` keeps its view where it is (until its own write is read back). */
class ReplicaStore implements SessionStates {
  paused = false;
  private applied = 0;
  private readonly sessions = new Map<string, SessionState>();
  private readonly outcomes: boolean[] = [];

  constructor(
    private readonly log: FakeLog,
    private readonly onIgnored?: (s: SessionState) => void,
  ) {}

  private catchUp(): void {
    while (this.applied < this.log.records.length) {
      const { key, value } = this.log.records[this.applied]!;
      const r = reduceSession(this.sessions.get(key), value);
      if (r.state === undefined) this.sessions.delete(key);
      else this.sessions.set(key, r.state);
      this.outcomes[this.applied++] = r.accepted;
      if (!r.accepted && r.state !== undefined) this.onIgnored?.(r.state);
    }
  }

  get(id: string): SessionState | undefined {
    if (!this.paused) this.catchUp();
    return this.sessions.get(id);
  }

  states(): Iterable<SessionState> {
    if (!this.paused) this.catchUp();
    return [...this.sessions.values()];
  }

  write(state: SessionState): Promise<boolean> {
    this.log.records.push({ key: state.id, value: state });
    const index = this.log.records.length - 1;
    this.catchUp();
    return Promise.resolve(this.outcomes[index]!);
  }

  remove(id: string): Promise<void> {
    this.log.records.push({ key: id, value: null });
    this.catchUp();
    return Promise.resolve();
  }
}

class Cluster {
  readonly log = new FakeLog();
  readonly ordered = new FakeTopic('ordered', 3);
  readonly global = new FakeTopic('global', 1);
  readonly nodes = new Map<string, { sessions: Sessions; store: ReplicaStore; metrics: OrdoMetrics }>();
  readonly live = new Set<string>();
  readonly lastSeen = new Map<string, number>();
  /** Nodes whose forwards time out. */
  readonly unreachable = new Set<string>();
  clock = 10_000_000;

  add(node: string): { sessions: Sessions; store: ReplicaStore; metrics: OrdoMetrics } {
    const metrics = new OrdoMetrics();
    const store = new ReplicaStore(this.log, (s) => sessions.heal(s));
    const router: SessionRouter = {
      isLive: (n) => this.live.has(n),
      goneFor: (n) => (this.live.has(n) ? 0 : this.lastSeen.has(n) ? this.clock - this.lastSeen.get(n)! : undefined),
      forward: async (n: string, request: DeliverRequest): Promise<DeliverAnswer> => {
        const target = this.nodes.get(n);
        if (target === undefined || this.unreachable.has(n)) throw new QueryError('forward-timeout', `node ${n} did not answer in time`, 504);
        const answer = await target.sessions.serveForwarded(request);
        return { ...answer, headers: { ...answer.headers, 'ordo-served-by': n, 'ordo-forwarded-by': node } };
      },
    };
    const sessions = new Sessions({ nodeId: node, sources: { ordered: this.ordered, global: this.global }, views, store, router, limits: LIMITS, metrics, now: () => this.clock });
    const entry = { sessions, store, metrics };
    this.nodes.set(node, entry);
    this.live.add(node);
    return entry;
  }

  /** The node stops heartbeating (SIGKILL): `forMs` later it is gone. */
  kill(node: string, forMs: number): void {
    this.live.delete(node);
    this.lastSeen.set(node, this.clock - forMs);
    this.nodes.delete(node);
  }
}

const alice: Principal = { name: 'alice', method: 'token', scopes: new Set(['deliver']), subjects: SubjectScope.ALL };
const bob: Principal = { ...alice, name: 'bob' };

function request(method: string, path: string, options: { query?: string; body?: unknown; principal?: Principal } = {}): DeliverRequest {
  return { method, path, query: options.query ?? '', body: options.body === undefined ? '' : JSON.stringify(options.body), principal: options.principal ?? alice };
}

interface ReadBody {
  records: DeliveredRecord[];
  cursor: string;
  more?: boolean;
}

async function create(node: Sessions, body: unknown = {}, stream = 'ordered', principal = alice): Promise<string> {
  const answer = await node.handle(request('POST', `/v1/streams/${stream}/sessions`, { body, principal }));
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return (answer.body as { sessionId: string }).sessionId;
}

async function read(node: Sessions, id: string, query = 'max=10', principal = alice): Promise<DeliverAnswer & { body: ReadBody }> {
  return (await node.handle(request('GET', `/v1/sessions/${id}/records`, { query, principal }))) as DeliverAnswer & { body: ReadBody };
}

function ack(node: Sessions, id: string, cursor: string, principal = alice): Promise<DeliverAnswer> {
  return node.handle(request('POST', `/v1/sessions/${id}/ack`, { body: { cursor }, principal }));
}

const ids = (body: ReadBody): string[] => body.records.map((r) => `${r.partition}:${r.offset}`);
const kind = (answer: DeliverAnswer): string => (answer.body as { error: { kind: string } }).error.kind;

async function counter(metrics: OrdoMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return metric.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((n, v) => n + v.value, 0);
}

describe('receiver sessions', () => {
  it('create: starts at the end (latest) or the beginning (earliest) as a vector cursor; the id names this node', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    for (const s of ['a', 'b', 'c', 'a']) c.ordered.append(s);
    const answer = await sessions.handle(request('POST', '/v1/streams/ordered/sessions', { body: { filter: { subjects: ['a', 'b'] } } }));
    expect(answer.status).toBe(201);
    expect(answer.headers['ordo-served-by']).toBe('node-a');
    const body = answer.body as { sessionId: string; cursor: string; filter: unknown; stream: string; expiresAt: string };
    expect(decodeSessionId(body.sessionId).node).toBe('node-a');
    expect(body).toMatchObject({ cursor: 'v.1.2.1', stream: 'ordered', filter: { subjects: ['a', 'b'] }, expiresAt: new Date(c.clock + TTL).toISOString() });
    const earliest = (await sessions.handle(request('POST', '/v1/streams/global/sessions', { body: { from: 'earliest' } }))).body as { cursor: string };
    expect(earliest.cursor).toBe('v.0');
    expect((await read(sessions, body.sessionId)).body.records).toEqual([]);
    c.ordered.append('b');
    expect(ids((await read(sessions, body.sessionId)).body)).toEqual(['2:1']);
  });

  it('create refuses bad input: stream, body, filter, from, a subject outside the token', async () => {
    const { sessions } = new Cluster().add('node-a');
    const scoped: Principal = { ...alice, subjects: SubjectScope.parse(['a']) };
    const cases: [string, string, number, string, Principal?][] = [
      ['/v1/streams/nope/sessions', '{}', 404, 'not-found'],
      ['/v1/streams/ordered/sessions', '{', 400, 'bad-parameter'],
      ['/v1/streams/ordered/sessions', '{"other": 1}', 400, 'bad-parameter'],
      ['/v1/streams/ordered/sessions', '{"filter": {"subjects": "a"}}', 400, 'bad-parameter'],
      ['/v1/streams/ordered/sessions', '{"from": "g.1.2"}', 400, 'bad-cursor'],
      ['/v1/streams/ordered/sessions', '{"from": "x"}', 400, 'bad-cursor'],
      ['/v1/streams/ordered/sessions', '{"filter": {"subjects": ["b"]}}', 403, 'forbidden-subject', scoped],
    ];
    for (const [path, body, status, k, principal] of cases) {
      const answer = await sessions.handle({ method: 'POST', path, query: '', body, principal: principal ?? alice });
      expect([answer.status, kind(answer)], body).toEqual([status, k]);
    }
    // A one-subject token asking for no subject gets its subject (and that subject's s. cursors).
    const id = await create(sessions, {}, 'ordered', scoped);
    expect((await sessions.handle(request('GET', `/v1/sessions/${id}/records`, { principal: scoped }))).status).toBe(200);
  });

  it('a read without an ack answers the same batch again (same records, same cursors), whatever order the reader gives; an ack moves on', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    const id = await create(sessions, { from: 'earliest' });
    for (let i = 0; i < 12; i++) c.ordered.append('abc'[i % 3]!);
    const first = await read(sessions, id, 'max=5');
    expect(first.status).toBe(200);
    expect(first.body.records).toHaveLength(5);
    expect(first.body.more).toBe(true);
    expect(first.body.cursor).toBe(first.body.records.at(-1)!.cursor);
    // The response was lost: the same batch, again and again, read by new readers.
    for (let again = 0; again < 3; again++) expect((await read(sessions, id, 'max=20')).body).toEqual(first.body);
    expect(await ack(sessions, id, first.body.cursor)).toMatchObject({ status: 200, body: { acked: first.body.cursor } });
    const second = await read(sessions, id, 'max=20');
    expect(second.body.records).toHaveLength(7);
    const all = [...first.body.records, ...second.body.records];
    expect(new Set(ids({ records: all } as ReadBody)).size).toBe(12);
    for (const p of [0, 1, 2]) {
      const offsets = all.filter((r) => r.partition === p).map((r) => Number(r.offset));
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
  });

  it('acks: a cursor within the batch moves the acked cursor (the rest comes again); outside it 409; the same ack twice 200', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    const id = await create(sessions, { from: 'earliest' }, 'global');
    for (let i = 0; i < 6; i++) c.global.append('s');
    expect(kind(await ack(sessions, id, 'g.1.0'))).toBe('ack-out-of-range'); // nothing in flight
    const batch = (await read(sessions, id, 'max=4')).body;
    expect(batch.records.map((r) => r.cursor)).toEqual(['g.1.0', 'g.2.1', 'g.3.2', 'g.4.3']);
    const beyond = await ack(sessions, id, 'g.6.5');
    expect([beyond.status, kind(beyond)]).toEqual([409, 'ack-out-of-range']);
    expect([(await ack(sessions, id, 'v.1.2')).status, (await ack(sessions, id, 'nope')).status]).toEqual([400, 400]);
    expect((await ack(sessions, id, 'g.2.1')).status).toBe(200);
    expect((await ack(sessions, id, 'g.2.1')).status).toBe(200); // its answer was lost: again
    expect((await read(sessions, id)).body.records.map((r) => r.cursor)).toEqual(['g.3.2', 'g.4.3', 'g.5.4', 'g.6.5']);
    const missing = await sessions.handle(request('POST', `/v1/sessions/${id}/ack`, { body: {} }));
    expect([missing.status, kind(missing)]).toEqual([400, 'bad-parameter']);
  });

  it('max and waitMs out of range, unknown parameters: 400 bad-parameter; bad ids 400; unknown ids and another principal 404; wrong method 405', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    const id = await create(sessions);
    for (const query of ['max=0', 'max=51', 'max=abc', 'max=-1', 'waitMs=2001', 'waitMs=-5', 'waitMs=1.5', 'other=1', 'max=1&max=2']) {
      const answer = await read(sessions, id, query);
      expect([answer.status, kind(answer)], query).toEqual([400, 'bad-parameter']);
    }
    expect((await read(sessions, id, 'max=50&waitMs=0')).status).toBe(200);
    const bad = await read(sessions, 'not-an-id');
    expect([bad.status, kind(bad)]).toEqual([400, 'bad-session-id']);
    const unknown = await read(sessions, `${id.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAA`);
    expect([unknown.status, kind(unknown)]).toEqual([404, 'unknown-session']);
    const other = await read(sessions, id, 'max=1', bob);
    expect([other.status, kind(other)]).toEqual([404, 'unknown-session']);
    expect((await ack(sessions, id, 'v.0.0.0', bob)).status).toBe(404);
    expect((await sessions.handle(request('PUT', `/v1/sessions/${id}/records`))).status).toBe(405);
  });

  it('delete: 204, then 404; idle past the TTL: 410, marked expired by its owner, removed after another TTL (404)', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const gone = await create(a.sessions);
    expect((await a.sessions.handle(request('DELETE', `/v1/sessions/${gone}`))).status).toBe(204);
    expect(kind(await read(a.sessions, gone))).toBe('unknown-session');
    const idle = await create(a.sessions);
    c.clock += TTL - 1;
    expect((await read(a.sessions, idle)).status).toBe(200); // a read renews it
    c.clock += TTL + 1;
    const expired = await read(a.sessions, idle);
    expect([expired.status, kind(expired)]).toEqual([410, 'session-expired']);
    await a.sessions.sweep();
    expect(a.store.get(idle)?.expired).toBe(true);
    expect(await counter(a.metrics, 'ordo_deliver_sessions_expired_total')).toBe(1);
    c.clock += 2 * TTL;
    await a.sessions.sweep();
    expect(a.store.get(idle)).toBeUndefined();
    expect(a.store.get(gone)).toBeUndefined();
    expect(kind(await read(a.sessions, idle))).toBe('unknown-session');
  });

  it('long poll: waits up to waitMs for the first matching record; filters by subject and type', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    const id = await create(sessions, { filter: { subjects: ['a', 'b'], types: ['api.call'] } });
    c.ordered.append('c');
    c.ordered.append('a', 'other.type');
    setTimeout(() => c.ordered.append('b'), 50);
    const started = Date.now();
    const answer = await read(sessions, id, 'max=10&waitMs=1500');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(answer.body.records.map((r) => [r.key, r.cursor])).toEqual([['b', answer.body.cursor]]);
    const empty = await read(sessions, id, 'waitMs=100');
    expect(empty.body.records).toHaveLength(1); // not acked: the same batch
    await ack(sessions, id, answer.body.cursor);
    const none = await read(sessions, id, 'waitMs=100');
    expect(none.body).toMatchObject({ records: [], cursor: answer.body.cursor });
  });

  it('a subject-scoped token with a prefix scope only gets its subjects', async () => {
    const c = new Cluster();
    const { sessions } = c.add('node-a');
    const scoped: Principal = { ...alice, subjects: SubjectScope.parse(['a*']) };
    const id = await create(sessions, { from: 'earliest' }, 'ordered', scoped);
    for (const s of ['a1', 'b1', 'a2', 'c1']) c.ordered.append(s);
    expect((await read(sessions, id, 'max=10', scoped)).body.records.map((r) => r.key).sort()).toEqual(['a1', 'a2']);
  });

  it('a request to another replica is forwarded to the live owner and says who served and who forwarded; an owner that does not answer: 504', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const b = c.add('node-b');
    const id = await create(a.sessions, { from: 'earliest' });
    c.ordered.append('a');
    // b has not read the session yet: the node in the id knows it.
    b.store.paused = true;
    const viaB = await read(b.sessions, id);
    expect(viaB.status).toBe(200);
    expect(viaB.headers).toMatchObject({ 'ordo-served-by': 'node-a', 'ordo-forwarded-by': 'node-b' });
    b.store.paused = false;
    expect((await read(b.sessions, id)).body).toEqual(viaB.body);
    expect((await ack(b.sessions, id, viaB.body.cursor)).headers['ordo-served-by']).toBe('node-a');
    expect(a.store.get(id)?.acked).toBe(viaB.body.cursor);
    c.unreachable.add('node-a');
    const timeout = await read(b.sessions, id);
    expect([timeout.status, kind(timeout)]).toEqual([504, 'forward-timeout']);
  });

  it('takeover: a gone owner is replaced (epoch + 1) and the batch it had in flight is answered again; only one of two takers wins', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const b = c.add('node-b');
    const d = c.add('node-d');
    const id = await create(a.sessions, { from: 'earliest' });
    for (let i = 0; i < 4; i++) c.ordered.append('abc'[i % 3]!);
    const inflight = (await read(a.sessions, id, 'max=3')).body;
    // Killed: until its heartbeat is older than the node TTL it is still live, and forwards to it time out.
    c.unreachable.add('node-a');
    const early = await read(b.sessions, id);
    expect([early.status, kind(early)]).toEqual([504, 'forward-timeout']);
    c.kill('node-a', NODE_TTL + 1);
    // b and d race: both decide from the same state; the log takes b's claim first.
    expect(d.store.get(id)?.inflight).not.toBeNull();
    d.store.paused = true;
    const [viaB, viaD] = await Promise.all([read(b.sessions, id, 'max=10'), read(d.sessions, id, 'max=10')]);
    expect(viaB.body).toEqual(inflight);
    expect(viaB.headers['ordo-served-by']).toBe('node-b');
    expect(viaD.body).toEqual(inflight);
    expect(viaD.headers).toMatchObject({ 'ordo-served-by': 'node-b', 'ordo-forwarded-by': 'node-d' });
    expect(b.store.get(id)).toMatchObject({ owner: 'node-b', epoch: 2 });
    expect(await counter(b.metrics, 'ordo_deliver_takeovers_total', { outcome: 'won' })).toBe(1);
    expect(await counter(d.metrics, 'ordo_deliver_takeovers_total', { outcome: 'lost' })).toBe(1);
    expect((await ack(d.sessions, id, inflight.cursor)).status).toBe(200);
    expect((await read(b.sessions, id)).body.records).toHaveLength(1);
  });

  it('an owner this replica has not seen since it started is not taken over before the node TTL (503 owner-unknown); after it, it is', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const id = await create(a.sessions, { from: 'earliest' });
    c.ordered.append('a');
    c.nodes.delete('node-a');
    c.live.delete('node-a'); // and no heartbeat of it read since b started
    const b = c.add('node-b');
    const early = await read(b.sessions, id);
    expect([early.status, kind(early), early.headers['retry-after']]).toEqual([503, 'owner-unknown', '1']);
    c.clock += NODE_TTL;
    const later = await read(b.sessions, id);
    expect([later.status, ids(later.body), later.headers['ordo-served-by']]).toEqual([200, ['1:0'], 'node-b']);
  });

  it('a revived old owner that had not seen the takeover does not serve: its write is ignored and it forwards to the new owner', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const b = c.add('node-b');
    const id = await create(a.sessions, { from: 'earliest' });
    for (let i = 0; i < 3; i++) c.ordered.append('a');
    const batch = (await read(a.sessions, id, 'max=2')).body;
    // a pauses (a long GC): b takes over and the client acks there.
    a.store.paused = true;
    c.live.delete('node-a');
    c.lastSeen.set('node-a', c.clock - NODE_TTL - 1);
    expect((await ack(b.sessions, id, batch.cursor)).headers['ordo-served-by']).toBe('node-b');
    c.live.add('node-a');
    // a wakes up believing it owns epoch 1 with the old batch: its write loses, it forwards.
    const again = await read(a.sessions, id, 'max=10');
    expect(again.headers).toMatchObject({ 'ordo-served-by': 'node-b', 'ordo-forwarded-by': 'node-a' });
    expect(ids(again.body)).toEqual(['1:2']);
    expect(a.store.get(id)).toMatchObject({ owner: 'node-b', epoch: 2 });
    // Restarted with the same node id (a fresh view): b's still.
    const restarted = new ReplicaStore(c.log);
    expect(restarted.get(id)?.owner).toBe('node-b');
  });

  it('a forwarded request reaching a node that no longer owns the session: 503 session-moved (no forwarding loops); stop() ends a long poll', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const b = c.add('node-b');
    const id = await create(a.sessions, { from: 'earliest' });
    const moved = await b.sessions.serveForwarded(request('GET', `/v1/sessions/${id}/records`));
    expect([moved.status, kind(moved), moved.headers['retry-after']]).toEqual([503, 'session-moved', '1']);
    const started = Date.now();
    const polling = read(a.sessions, id, 'waitMs=2000');
    setTimeout(() => a.sessions.stop(), 50);
    expect((await polling).body.records).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('an owner rewrites its session when it sees a lost claim, so its own record is the last (compaction)', async () => {
    const c = new Cluster();
    const a = c.add('node-a');
    const id = await create(a.sessions);
    const base = a.store.get(id)!;
    c.log.records.push({ key: id, value: { ...base, owner: 'node-x', epoch: 1, seq: 1 } }); // a late claim, same seq: ignored
    a.store.get(id);
    await new Promise((r) => setTimeout(r, 10));
    const last = c.log.records.at(-1)!;
    expect(last.value).toMatchObject({ owner: 'node-a', seq: 2, lastActiveMs: base.lastActiveMs });
  });

  it('a pull client that drops every third response receives every record exactly once, in order, across replicas and a takeover', async () => {
    const c = new Cluster();
    const nodes = ['node-a', 'node-b', 'node-c'].map((n) => c.add(n));
    const id = await create(nodes[0]!.sessions, { from: 'earliest', filter: { subjects: ['a', 'b', 'c', 'd', 'e'] } });
    const subjects = 'abcdefg';
    let written = 0;
    const received: DeliveredRecord[] = [];
    let calls = 0;
    const call = async <T extends DeliverAnswer>(send: (s: Sessions) => Promise<T>): Promise<T | undefined> => {
      const node = [...c.nodes.values()][calls % c.nodes.size]!.sessions;
      const answer = await send(node);
      return ++calls % 3 === 0 ? undefined : answer; // the response is lost
    };
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 3; i++) c.ordered.append(subjects[written++ % subjects.length]!);
      if (round === 30) c.kill('node-a', NODE_TTL + 1);
      const answer = await call((s) => read(s, id, 'max=4'));
      if (answer === undefined) continue;
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      if (answer.body.records.length === 0) continue;
      const acked = await call((s) => ack(s, id, answer.body.cursor));
      if (acked === undefined) {
        // Lost ack answer: the client acks again (same cursor: 200) before reading on.
        expect((await ack([...c.nodes.values()][0]!.sessions, id, answer.body.cursor)).status).toBe(200);
      } else expect(acked.status).toBe(200);
      received.push(...answer.body.records);
    }
    for (let drain = 0; drain < 20; drain++) {
      const answer = await read([...c.nodes.values()][0]!.sessions, id, 'max=50');
      if (answer.body.records.length === 0) break;
      received.push(...answer.body.records);
      expect((await ack([...c.nodes.values()][0]!.sessions, id, answer.body.cursor)).status).toBe(200);
    }
    const expected = c.ordered.parts.flat().filter((r) => 'abcde'.includes(r.key!.toString()));
    expect(received.map((r) => `${r.partition}:${r.offset}`).sort()).toEqual(expected.map((r) => `${r.partition}:${r.offset}`).sort());
    for (const subject of 'abcde') {
      const seqs = received.filter((r) => r.key === subject).map((r) => Number(c.ordered.parts[r.partition]![Number(r.offset)]!.headers['ordo-seq']));
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    }
  });
});
