import { QueryError } from '../errors.js';
import type { PartitionProgress } from '../engine/read-progress.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import type { DeletedLookup } from '../deletion/subject-deleted.js';
import type { MeterCatalog } from '../usage/meters.js';
import type { LocalReadSide, LocalShare } from './partitioned-read-side.js';
import { type PartsAnswer, decodePartsAnswer, encodePartsAnswer, mergeParts } from './query-parts.js';
import { parseUsageQuery } from './query-params.js';
import { type QueryPlan, planQuery } from './query-plan.js';
import { type ApiRoute } from './routes.js';
import { neededPartitions, routePartitions } from './router.js';
import { type PartitionedRequest, type PartitionedResult, type PartitionedUsage, type ServedBy, scopedSubjects } from './server.js';

/** The route a replica asks a peer for its share of a query on. */
export const USAGE_PARTS_PATH = '/v1/internal/usage-parts';
/** At most this many routing rounds: a peer that fails hands its partitions to the next holder once or twice, not forever. */
const MAX_ROUNDS = 3;
/** Longest wait for read-your-writes a peer accepts from a caller (the caller's own bound is ORDO_API_CONSISTENCY_WAIT_MS). */
const MAX_PEER_WAIT_MS = 300_000;

/** The body of POST /v1/internal/usage-parts. */
export interface UsagePartsRequest {
  meter: string;
  /** The usage query string as the client sent it (the peer parses and scopes it itself). */
  query: string;
  partitions: number[];
  /** Read-your-writes: partition -> the aggregates offset to reach (decimal). */
  positions?: Record<string, string>;
  waitMs?: number;
}

export interface FanOutOptions {
  side: LocalReadSide;
  meters: MeterCatalog;
  /** A peer not answering within this (plus the read-your-writes wait) is missing. */
  timeoutMs: number;
  logger?: Logger;
  /** Injectable for tests; default the global fetch (undici: keep-alive connections per peer origin). */
  fetch?: typeof fetch;
}

/**
 * A usage query across the replicas: the partitions it needs (router.ts), each from the
 * replica serving it (this one in process, the others over HTTP in parallel, each with a
 * deadline), merged exactly (query-parts.ts). A peer that fails or does not answer in time
 * hands its partitions to the next holder; what nobody serves is missing, and the answer
 * says so (`partial`, `missingPartitions`), never a silently smaller number.
 */
export class FanOut implements PartitionedUsage {
  private readonly log: Logger;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: FanOutOptions) {
    this.log = options.logger ?? noopLogger;
    this.fetch = options.fetch ?? fetch;
  }

  async answer(request: PartitionedRequest): Promise<PartitionedResult> {
    const { side, meters } = this.options;
    const plan = planQuery(meters, request.query);
    const nodes = side.nodes();
    const count = Math.max(side.partitions(), ...[...nodes.values()].map((n) => n.partitions));
    if (count === 0) throw new QueryError('partitions-unavailable', 'the aggregates topic is not read yet (no replica knows its partitions); retry later', 503, { headers: { 'retry-after': '1' } });
    const misplaced = [...nodes.values()].some((n) => n.misplaced > 0);
    let pending = neededPartitions(plan.subjects, count, misplaced);
    const exclude = new Set<string>();
    const parts: PartsAnswer[] = [];
    const servedBy = new Map<string, ServedBy>();
    const progress: PartitionProgress[] = [];
    const unreached: PartitionedResult['unreached'] = [];
    const missingSet = new Set<number>();
    for (let round = 0; round < MAX_ROUNDS && pending.length > 0; round++) {
      const routing = routePartitions(pending, nodes, { self: side.nodeId, exclude });
      for (const p of routing.missing) missingSet.add(p);
      const shares = await Promise.all(
        routing.routes.map(async (route) => ({
          route,
          share: route.node === side.nodeId ? await side.serve(plan, route.partitions, request.targets, request.waitMs) : await this.ask(route.node, route.url, request, route.partitions),
        })),
      );
      pending = [];
      for (const { route, share } of shares) {
        if (share === undefined) {
          exclude.add(route.node);
          pending.push(...route.partitions);
          continue;
        }
        // A peer that no longer holds some of them (the registry lags a move): the next holder.
        if (share.missing.length > 0) {
          exclude.add(route.node);
          pending.push(...share.missing);
        }
        if (share.served.length === 0) continue;
        parts.push(share.parts);
        progress.push(...share.served);
        unreached.push(...share.unreached);
        const lag = share.served.reduce((sum, p) => sum + lagOf(p), 0);
        const entry = servedBy.get(route.node) ?? { node: route.node, partitions: [], lagRecords: 0 };
        entry.partitions.push(...share.served.map((p) => p.partition));
        entry.lagRecords += lag;
        servedBy.set(route.node, entry);
      }
    }
    // Still pending after the last round: the holders left all failed.
    const missing = [...missingSet, ...pending].sort((a, b) => a - b);
    const answer = mergeParts(plan, parts);
    progress.sort((a, b) => a.partition - b.partition);
    const lag = progress.reduce((sum, p) => sum + lagOf(p), 0);
    for (const entry of servedBy.values()) entry.partitions.sort((a, b) => a - b);
    return {
      answer,
      freshness: { caughtUp: missing.length === 0 && progress.every((p) => lagOf(p) === 0), lagRecords: lag, partitions: progress },
      servedBy: [...servedBy.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
      partial: missing.length > 0,
      missingPartitions: missing,
      unreached,
    };
  }

  /** A peer's share, or undefined when it failed (logged): its partitions go to the next holder. */
  private async ask(node: string, url: string, request: PartitionedRequest, partitions: number[]): Promise<LocalShare | undefined> {
    const body: UsagePartsRequest = {
      meter: request.query.meter,
      query: request.rawQuery,
      partitions,
      ...(request.targets !== undefined ? { positions: Object.fromEntries([...request.targets].filter(([p]) => partitions.includes(p)).map(([p, o]) => [String(p), o.toString()])), waitMs: request.waitMs ?? 0 } : {}),
    };
    const deadline = this.options.timeoutMs + (request.waitMs ?? 0);
    let response: Response;
    let json: unknown;
    try {
      response = await this.fetch(`${url}${USAGE_PARTS_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(request.authorization !== undefined ? { authorization: request.authorization } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(deadline),
      });
      json = await response.json();
    } catch (error) {
      this.log.warn('peer did not answer its share of a query: its partitions go to the next holder', { node, url, partitions, error: (error as Error).message });
      return undefined;
    }
    if (response.status !== 200) {
      const error = isRecord(json) && isRecord(json.error) ? json.error : undefined;
      // The caller's own fault, as the peer judged it (it authenticates and checks the query too): answered as is.
      if (response.status >= 400 && response.status < 500 && error !== undefined && typeof error.kind === 'string' && typeof error.message === 'string') {
        throw new QueryError(error.kind, error.message, response.status);
      }
      this.log.warn('peer refused its share of a query: its partitions go to the next holder', { node, url, partitions, status: response.status });
      return undefined;
    }
    try {
      return decodeShare(json);
    } catch (error) {
      this.log.warn('peer answered its share of a query unreadably: its partitions go to the next holder', { node, url, error: (error as Error).message });
      return undefined;
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function lagOf(p: PartitionProgress): number {
  return p.endOffset === null ? 0 : Math.max(0, Number(BigInt(p.endOffset) - BigInt(p.appliedOffset)));
}

/** The JSON of a LocalShare (what the internal route answers). */
export function encodeShare(share: LocalShare): unknown {
  return { parts: encodePartsAnswer(share.parts), served: share.served, missing: share.missing, unreached: share.unreached };
}

/** A peer's answer, checked: an Error names the defect. */
export function decodeShare(json: unknown): LocalShare {
  if (!isRecord(json)) throw new Error('share: not an object');
  const parts = decodePartsAnswer(json.parts);
  const offset = (v: unknown): v is string => typeof v === 'string' && /^\d{1,20}$/.test(v);
  const partition = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(json.served) || !json.served.every((p: unknown) => isRecord(p) && partition(p.partition) && offset(p.appliedOffset) && (p.endOffset === null || offset(p.endOffset)))) {
    throw new Error('share: served is not a list of {partition, appliedOffset, endOffset}');
  }
  if (!Array.isArray(json.missing) || !json.missing.every(partition)) throw new Error('share: missing is not a list of partitions');
  if (!Array.isArray(json.unreached) || !json.unreached.every((u: unknown) => isRecord(u) && partition(u.partition) && offset(u.offset) && offset(u.appliedOffset))) {
    throw new Error('share: unreached is not a list of {partition, offset, appliedOffset}');
  }
  return { parts, served: json.served as PartitionProgress[], missing: json.missing, unreached: json.unreached as LocalShare['unreached'] };
}

/**
 * POST /v1/internal/usage-parts: a peer's share of a query. Authenticated like the usage
 * route (the caller's Authorization header, forwarded as is) with scope `read`; the query is
 * parsed, scoped to the caller and planned here again, never trusted from the peer.
 */
export function usagePartsRoutes(options: { side: LocalReadSide; meters: MeterCatalog; deleted?: DeletedLookup }): ApiRoute[] {
  return [
    {
      method: 'POST',
      path: USAGE_PARTS_PATH,
      scope: 'read',
      async handle(_params, request, res) {
        const body = parseRequest(await request.json(), options.side.partitions());
        const asked = parseUsageQuery(body.meter, new URLSearchParams(body.query), options.meters);
        const plan: QueryPlan = planQuery(options.meters, { ...asked, ...scopedSubjects(request.principal, asked.subjects, options.deleted) });
        const positions = body.positions === undefined ? undefined : new Map(Object.entries(body.positions).map(([p, o]) => [Number(p), BigInt(o)]));
        const share = await options.side.serve(plan, body.partitions, positions, Math.min(body.waitMs ?? 0, MAX_PEER_WAIT_MS));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(encodeShare(share)));
      },
    },
  ];
}

function parseRequest(json: unknown, partitions: number): UsagePartsRequest {
  const bad = (message: string): QueryError => new QueryError('bad-body', `${USAGE_PARTS_PATH}: ${message}`);
  if (!isRecord(json)) throw bad('the body must be a JSON object {meter, query, partitions, positions?, waitMs?}');
  const { meter, query, partitions: asked, positions, waitMs } = json;
  if (typeof meter !== 'string' || meter === '') throw bad('meter: a meter slug');
  if (typeof query !== 'string') throw bad('query: the usage query string');
  if (!Array.isArray(asked) || asked.length === 0 || !asked.every((p) => Number.isSafeInteger(p) && (p as number) >= 0)) throw bad('partitions: a non-empty list of partition numbers');
  // A partition the topic does not have is a caller that routes by another topic's layout.
  const unknown = partitions > 0 ? (asked as number[]).filter((p) => p >= partitions) : [];
  if (unknown.length > 0) throw new QueryError('bad-parameter', `${USAGE_PARTS_PATH}: the aggregates topic has no partition ${unknown.join(', ')} (it has ${partitions})`);
  if (positions !== undefined && (!isRecord(positions) || !Object.entries(positions).every(([p, o]) => /^\d+$/.test(p) && typeof o === 'string' && /^\d{1,20}$/.test(o)))) {
    throw bad('positions: an object of partition -> offset (decimal strings)');
  }
  if (waitMs !== undefined && (typeof waitMs !== 'number' || !Number.isSafeInteger(waitMs) || waitMs < 0)) throw bad('waitMs: whole milliseconds ≥ 0');
  return { meter, query, partitions: asked as number[], ...(positions !== undefined ? { positions: positions as Record<string, string> } : {}), ...(waitMs !== undefined ? { waitMs } : {}) };
}
