import type { RetentionPolicy } from '../usage/retention.js';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AuthError } from '../auth/auth-error.js';
import type { Authenticator } from '../auth/authenticator.js';
import { requireScope } from '../auth/scopes.js';
import { narrowSubjects } from '../auth/subject-scope.js';
import type { ReaderProgress } from '../engine/topic-reader.js';
import { QueryError } from '../errors.js';
import { type ListeningServer, answerClientErrors, answerError, listen, quoteClient as quote, sendJson as send } from '../http/json.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import type { Aggregation, Meter, MeterCatalog } from '../usage/meters.js';
import type { WindowSize } from '../usage/windows.js';
import type { ConsistencyOutcome } from './consistency.js';
import { parseConsistentWith, parseRequireComplete, parseUsageQuery } from './query-params.js';
import { type UsageQuery, planQuery } from './query-plan.js';
import type { Principal } from '../auth/principal.js';
import type { InputPosition } from '../model/consistency-token.js';
import { type ReadModel, type UsageAnswer, unknownMeter } from './read-model.js';
import { type ApiRoute, matchRoute, readJsonBody } from './routes.js';
import { type DeletedLookup, refuseDeleted, withoutDeleted } from '../deletion/subject-deleted.js';

/** How far the read model is behind the aggregates topic (the reader's progress), returned with every usage answer. */
export type Freshness = ReaderProgress;

/** A meter as GET /v1/meters shows it (docs/openapi.yaml, MeterView). */
export interface MeterView {
  slug: string;
  description: string | null;
  eventTypes: string[];
  aggregation: Aggregation;
  /** "value", "dimensions.<name>", or null (COUNT reads no value). */
  valueProperty: string | null;
  /** Group name -> the event dimension it reads. */
  groupBy: Record<string, string>;
  windows: WindowSize[];
}

/** A replica that served some partitions of an answer (the partitioned read side). */
export interface ServedBy {
  node: string;
  partitions: number[];
  /** Records of those partitions it had not applied when it answered. */
  lagRecords: number;
}

/** What a partitioned read side adds to an answer: who served, and which partitions nobody could. */
export interface PartitionedFields {
  servedBy: ServedBy[];
  /** Some partition the query needs had no live holder: the answer leaves its aggregates out. */
  partial: boolean;
  missingPartitions: number[];
}

/** `consistentWith`: the tokens the answer is consistent with, when the query gave any. */
export type UsageResponse = UsageAnswer & { freshness: Freshness; consistentWith?: string[] } & Partial<PartitionedFields>;

/** One usage query as a partitioned read side gets it (src/api/fan-out.ts): already parsed and scoped to the caller. */
export interface PartitionedRequest {
  query: UsageQuery;
  /** The query string as received: peers parse and scope it themselves. */
  rawQuery: string;
  /** Forwarded as is: each peer authenticates the caller itself. */
  authorization: string | undefined;
  /** Read-your-writes: per aggregates partition, the offset its holder must have applied. */
  targets?: ReadonlyMap<number, bigint>;
  /** How long holders may wait for `targets`. */
  waitMs?: number;
}

export interface PartitionedResult extends PartitionedFields {
  answer: UsageAnswer;
  freshness: Freshness;
  /** Partitions served below the read-your-writes target when the wait ended. */
  unreached: { partition: number; offset: string; appliedOffset: string }[];
}

/** Answers usage queries across the replicas holding the partitions (src/api/fan-out.ts). */
export interface PartitionedUsage {
  answer(request: PartitionedRequest): Promise<PartitionedResult>;
}

/** Read-your-writes (api/consistency.ts): waits for the tokens of `consistentWith`. */
export interface ConsistencyOptions {
  /** The pipeline's input topic: tokens naming another topic are refused. */
  inputTopic: string;
  /** How long a query waits at most (ORDO_API_CONSISTENCY_WAIT_MS); past it 503 not-yet-consistent. */
  waitMs: number;
  wait(positions: readonly InputPosition[], timeoutMs: number): Promise<ConsistencyOutcome>;
}

export interface ApiServerOptions {
  /** 0 picks a free port; the started server reports the real one. */
  port: number;
  /** Default 0.0.0.0. */
  host?: string;
  meters: MeterCatalog;
  /** One replica holding every aggregate in memory; or `partitioned`. */
  readModel?: ReadModel;
  /** The partitioned read side: each replica holds some partitions, queries fan out (src/api/fan-out.ts). */
  partitioned?: PartitionedUsage;
  /** Retention as queries apply it (usage/retention.ts queryRetention): refusals (resolution-expired) answer before any wait. */
  retention?: RetentionPolicy;
  freshness: () => Freshness;
  /** Without it, a query with consistentWith answers 400. */
  consistency?: ConsistencyOptions;
  /** Who may ask (ORDO_API_AUTH): every route needs scope `read`, usage answers are subject-scoped. */
  auth: Authenticator;
  /** Routes beyond the usage queries (receipts, trails, dead letters, deletions: src/api/routes.ts). */
  routes?: readonly ApiRoute[];
  /** Deleted subjects (src/deletion/): asked by name they answer 410 `subject-deleted`; across subjects they are left out. */
  deleted?: DeletedLookup;
  /** Called for every request the auth layer refuses (metrics). */
  onRefused?: (error: AuthError) => void;
  logger?: Logger;
}

export type ApiServer = ListeningServer;

/** The routes served, as OpenAPI path templates (docs/openapi.yaml describes each). */
export const API_ROUTES = ['/v1/meters', '/v1/meters/{slug}', '/v1/meters/{slug}/usage'] as const;

export function meterView(meter: Meter): MeterView {
  const property = meter.valueProperty;
  return {
    slug: meter.slug,
    description: meter.description ?? null,
    eventTypes: [...meter.eventTypes],
    aggregation: meter.aggregation,
    valueProperty: property === undefined ? null : property.kind === 'value' ? 'value' : `dimensions.${property.name}`,
    groupBy: { ...meter.groupBy },
    windows: [...meter.windows],
  };
}

/**
 * The usage query API (GET only, JSON only):
 *   /v1/meters                 the configured meters
 *   /v1/meters/{slug}          one meter
 *   /v1/meters/{slug}/usage    usage from the read model, with its freshness
 * Errors are `{"error": {"kind", "message"}}`: 401/403 from the auth layer (with
 * WWW-Authenticate on 401), 4xx for queries; unexpected failures are logged and answered
 * 500 `internal` without details.
 */
export function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const logger = options.logger ?? noopLogger;
  const server = createServer((req, res) => {
    handle(req, res, options).catch((error: unknown) => {
      answerError(req, res, error, { logger, what: 'usage API', onRefused: options.onRefused });
    });
  });
  answerClientErrors(server);
  return listen(server, { port: options.port, host: options.host ?? '0.0.0.0', logger, what: 'usage API', meta: { auth: options.auth.mode } });
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ApiServerOptions): Promise<void> {
  // Who is asking comes first: without a valid token, nothing else is answered.
  const principal = await options.auth.authenticate(req.headers.authorization);
  // Split by hand: new URL() would read a target such as "//host/x" as a host.
  const target = req.url ?? '/';
  const mark = target.indexOf('?');
  const pathname = mark === -1 ? target : target.slice(0, mark);
  const extra = matchRoute(options.routes ?? [], pathname);
  if (extra !== undefined) {
    const route = extra.routes.find((r) => r.method === req.method);
    if (route === undefined) {
      const allowed = extra.routes.map((r) => r.method).join(', ');
      res.setHeader('allow', allowed);
      throw new QueryError('method-not-allowed', `${req.method} is not allowed on ${quote(pathname)}; only ${allowed}`, 405);
    }
    requireScope(principal, route.scope);
    const params = new URLSearchParams(mark === -1 ? '' : target.slice(mark + 1));
    await route.handle(extra.params, { principal, params, json: () => readJsonBody(req), req }, res);
    return;
  }
  const route = match(pathname);
  if (route === undefined) {
    const all = [...API_ROUTES.map((r) => `GET ${r}`), ...(options.routes ?? []).map((r) => `${r.method} ${r.path}`)];
    throw new QueryError('not-found', `no route ${quote(pathname)}; routes: ${all.join(', ')}`, 404);
  }
  if (req.method !== 'GET') {
    res.setHeader('allow', 'GET');
    throw new QueryError('method-not-allowed', `${req.method} is not allowed on ${quote(pathname)}; only GET`, 405);
  }
  requireScope(principal, 'read');
  if (route.name === 'meters') {
    send(res, 200, { meters: options.meters.meters.map(meterView) });
    return;
  }
  const meter = options.meters.get(route.slug);
  if (meter === undefined) throw unknownMeter(route.slug, options.meters);
  if (route.name === 'meter') {
    send(res, 200, meterView(meter));
    return;
  }
  const rawQuery = mark === -1 ? '' : target.slice(mark + 1);
  const params = new URLSearchParams(rawQuery);
  const asked = parseUsageQuery(route.slug, params, options.meters);
  const requireComplete = parseRequireComplete(params);
  const consistency = options.consistency;
  if (params.has('consistentWith') && consistency === undefined) throw new QueryError('bad-parameter', 'consistentWith: this server does not follow a pipeline');
  const wanted = consistency === undefined ? undefined : parseConsistentWith(params, consistency.inputTopic);
  const query = { ...asked, ...scopedSubjects(principal, asked.subjects, options.deleted) };
  const tokens = wanted !== undefined && wanted.tokens.length > 0 ? { consistentWith: wanted.tokens } : {};
  if (options.partitioned !== undefined) {
    await answerPartitioned(res, options.partitioned, { query, rawQuery, authorization: req.headers.authorization }, { consistency, positions: wanted?.positions ?? [], requireComplete, tokens, meters: options.meters, retention: options.retention });
    return;
  }
  if (options.readModel === undefined) throw new Error('the usage API has neither a read model nor a partitioned read side');
  if (wanted !== undefined && wanted.positions.length > 0) {
    // Asked once before the wait too, so that a query the read model refuses answers at once.
    options.readModel.query(query);
    await awaitConsistency(consistency!, wanted.positions, options.freshness);
  }
  const answer = options.readModel.query(query);
  const body: UsageResponse = { ...answer, freshness: options.freshness(), ...tokens };
  send(res, 200, body);
}

/**
 * A usage query on the partitioned read side: read-your-writes first waits for the pipeline
 * only (the holders of the partitions wait for the aggregates themselves); missing
 * partitions make the answer partial, or 503 partitions-unavailable with requireComplete.
 */
async function answerPartitioned(
  res: ServerResponse,
  partitioned: PartitionedUsage,
  request: Omit<PartitionedRequest, 'targets' | 'waitMs'>,
  how: { consistency: ConsistencyOptions | undefined; positions: readonly InputPosition[]; requireComplete: boolean; tokens: { consistentWith?: string[] }; meters: MeterCatalog; retention?: RetentionPolicy },
): Promise<void> {
  let targets: ReadonlyMap<number, bigint> | undefined;
  let waitMs: number | undefined;
  if (how.positions.length > 0 && how.consistency !== undefined) {
    // Planned once before the wait too, so that a refused query answers at once (the fan-out plans before any hop).
    planQuery(how.meters, request.query, { retention: how.retention });
    const started = Date.now();
    targets = await awaitConsistency(how.consistency, how.positions, () => ({ caughtUp: false, lagRecords: null, partitions: [] }));
    waitMs = Math.max(0, how.consistency.waitMs - (Date.now() - started));
  }
  const result = await partitioned.answer({ ...request, ...(targets !== undefined ? { targets, waitMs } : {}) });
  if (result.unreached.length > 0) {
    throw new QueryError('not-yet-consistent', `not consistent with the given tokens within ${how.consistency?.waitMs ?? 0} ms: the pipeline committed the positions, but the replicas holding partitions ${result.unreached.map((u) => u.partition).join(', ')} have not read the aggregates they wrote yet; retry later`, 503, {
      details: {
        freshness: result.freshness,
        awaiting: result.unreached.map((u) => ({
          partition: u.partition,
          offset: highestOffsetOf(how.positions, u.partition),
          waitingFor: 'read-model',
          committedOffset: null,
          aggregatesOffset: u.offset,
          appliedOffset: u.appliedOffset,
        })),
      },
      headers: { 'retry-after': '1' },
    });
  }
  // A partition the tokens' aggregates went to, that nobody live holds: the answer cannot include them.
  const unheld = targets === undefined ? [] : result.missingPartitions.filter((p) => targets.has(p));
  if (unheld.length > 0) {
    throw new QueryError('not-yet-consistent', `not consistent with the given tokens: partitions ${unheld.join(', ')} of the aggregates topic, where their aggregates are, have no live replica holding them; retry later`, 503, {
      details: { missingPartitions: result.missingPartitions, servedBy: result.servedBy },
      headers: { 'retry-after': '1' },
    });
  }
  if (result.servedBy.length > 0) res.setHeader('ordo-served-by', result.servedBy.map((s) => s.node).join(','));
  if (how.requireComplete && result.missingPartitions.length > 0) {
    throw new QueryError('partitions-unavailable', `partitions ${result.missingPartitions.join(', ')} of the aggregates topic have no live replica holding them (requireComplete=true); retry later, or ask without requireComplete for a partial answer`, 503, {
      details: { missingPartitions: result.missingPartitions, servedBy: result.servedBy },
      headers: { 'retry-after': '1' },
    });
  }
  const body: UsageResponse = { ...result.answer, freshness: result.freshness, ...how.tokens, servedBy: result.servedBy, partial: result.partial, missingPartitions: result.missingPartitions };
  send(res, 200, body);
}

function highestOffsetOf(positions: readonly InputPosition[], partition: number): string {
  let highest: bigint | undefined;
  for (const p of positions) if (p.partition === partition && (highest === undefined || BigInt(p.offset) > highest)) highest = BigInt(p.offset);
  return highest === undefined ? '' : highest.toString();
}

/** The subjects a caller may read of those asked (a subject-scoped token narrows; deleted subjects answer 410 or are left out). */
export function scopedSubjects(principal: Principal, asked: readonly string[] | undefined, deleted: DeletedLookup | undefined): { subjects: string[] | undefined; allowsSubject: ((subject: string) => boolean) | undefined } {
  const { subjects, allows } = withoutDeletedSubjects(narrowSubjects(principal, asked), asked, deleted);
  return { subjects, allowsSubject: allows };
}

/** A subject asked by name that is deleted answers 410; the others (a token's list, all subjects) leave deleted ones out. */
function withoutDeletedSubjects(
  narrowed: ReturnType<typeof narrowSubjects>,
  asked: readonly string[] | undefined,
  deleted: DeletedLookup | undefined,
): ReturnType<typeof narrowSubjects> {
  if (deleted === undefined) return narrowed;
  refuseDeleted(asked, deleted);
  return { subjects: narrowed.subjects?.filter((s) => deleted(s) === undefined), allows: withoutDeleted(narrowed.allows, deleted) };
}

/**
 * Waits for the positions; past the bound 503 not-yet-consistent (Retry-After 1) with the
 * read model's freshness and the positions still awaited. Returns the aggregates targets
 * when the wait was for the pipeline only.
 */
async function awaitConsistency(consistency: ConsistencyOptions, positions: readonly InputPosition[], freshness: () => Freshness): Promise<ReadonlyMap<number, bigint> | undefined> {
  const outcome = await consistency.wait(positions, consistency.waitMs);
  if (outcome.consistent) return outcome.targets;
  if ('unavailable' in outcome) {
    throw new QueryError('consistency-unavailable', "consistentWith: this server cannot read the pipeline's committed positions (the server log says why); ask without consistentWith, or later", 503, {
      headers: { 'retry-after': '5' },
    });
  }
  if ('unknownPartitions' in outcome) {
    throw new QueryError('bad-parameter', `consistentWith: the input topic ${quote(consistency.inputTopic)} has no partition ${outcome.unknownPartitions.join(', ')}`);
  }
  const pipeline = outcome.awaiting.filter((a) => a.waitingFor === 'pipeline').length;
  const why =
    pipeline > 0
      ? `the pipeline has not committed ${pipeline} of the positions yet`
      : 'the pipeline committed the positions, but this replica has not read the aggregates they wrote yet';
  throw new QueryError('not-yet-consistent', `not consistent with the given tokens within ${consistency.waitMs} ms: ${why}; retry later`, 503, {
    details: { freshness: freshness(), awaiting: outcome.awaiting },
    headers: { 'retry-after': '1' },
  });
}

type Route = { name: 'meters' } | { name: 'meter'; slug: string } | { name: 'usage'; slug: string };

function match(pathname: string): Route | undefined {
  const parts = pathname.split('/');
  // ['', 'v1', 'meters', slug?, 'usage'?]
  if (parts.length < 3 || parts.length > 5 || parts[0] !== '' || parts[1] !== 'v1' || parts[2] !== 'meters') return undefined;
  if (parts.length === 3) return { name: 'meters' };
  const raw = parts[3] ?? '';
  if (raw === '') return undefined;
  if (parts.length === 5 && parts[4] !== 'usage') return undefined;
  let slug: string;
  try {
    slug = decodeURIComponent(raw);
  } catch {
    throw new QueryError('bad-parameter', `slug: ${quote(raw)} is not valid percent-encoding`);
  }
  return parts.length === 4 ? { name: 'meter', slug } : { name: 'usage', slug };
}
