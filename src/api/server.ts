import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthError } from '../auth/auth-error.js';
import type { Authenticator } from '../auth/authenticator.js';
import { requireScope } from '../auth/scopes.js';
import { narrowSubjects } from '../auth/subject-scope.js';
import type { ReaderProgress } from '../engine/topic-reader.js';
import { QueryError } from '../errors.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import type { Aggregation, Meter, MeterCatalog } from '../usage/meters.js';
import type { WindowSize } from '../usage/windows.js';
import type { AwaitedPosition, ConsistencyOutcome } from './consistency.js';
import { parseConsistentWith, parseUsageQuery } from './query-params.js';
import type { InputPosition } from '../model/consistency-token.js';
import { type ReadModel, type UsageAnswer, unknownMeter } from './read-model.js';

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

/** `consistentWith`: the tokens the answer is consistent with, when the query gave any. */
export type UsageResponse = UsageAnswer & { freshness: Freshness; consistentWith?: string[] };

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
  readModel: ReadModel;
  freshness: () => Freshness;
  /** Without it, a query with consistentWith answers 400. */
  consistency?: ConsistencyOptions;
  /** Who may ask (ORDO_API_AUTH): every route needs scope `read`, usage answers are subject-scoped. */
  auth: Authenticator;
  /** Called for every request the auth layer refuses (metrics). */
  onRefused?: (error: AuthError) => void;
  logger?: Logger;
}

export interface ApiServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The routes served, as OpenAPI path templates (docs/openapi.yaml describes each). */
export const API_ROUTES = ['/v1/meters', '/v1/meters/{slug}', '/v1/meters/{slug}/usage'] as const;

const QUOTE_LIMIT = 64;
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

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
      if (res.headersSent) {
        logger.error('usage API response failed after its headers were sent', { path: pathOf(req), error });
        res.destroy();
        return;
      }
      if (error instanceof AuthError) {
        options.onRefused?.(error);
        if (error.challenge !== undefined) res.setHeader('www-authenticate', error.challenge);
        if (error.kind === 'auth-unavailable') res.setHeader('retry-after', '5');
        send(res, error.status, { error: { kind: error.kind, message: error.message } });
        return;
      }
      if (error instanceof NotYetConsistent) {
        res.setHeader('retry-after', '1');
        send(res, error.status, { error: { kind: error.kind, message: error.message, freshness: options.freshness(), awaiting: error.awaiting } });
        return;
      }
      if (error instanceof QueryError) {
        if (error.status === 503) res.setHeader('retry-after', '5');
        send(res, error.status, { error: { kind: error.kind, message: error.message } });
        return;
      }
      logger.error('usage API request failed', { method: req.method, path: pathOf(req), error });
      send(res, 500, { error: { kind: 'internal', message: 'internal error; the server log has the details' } });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      server.on('error', (error) => logger.error('usage API server error', { error }));
      const { port } = server.address() as AddressInfo;
      logger.info('usage API listening', { host: options.host ?? '0.0.0.0', port, auth: options.auth.mode });
      resolve({
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((error) => (error ? fail(error) : done()));
            // Keep-alive clients would otherwise hold close() open until they time out.
            server.closeIdleConnections();
          }),
      });
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ApiServerOptions): Promise<void> {
  // Who is asking comes first: without a valid token, nothing else is answered.
  const principal = await options.auth.authenticate(req.headers.authorization);
  // Split by hand: new URL() would read a target such as "//host/x" as a host.
  const target = req.url ?? '/';
  const mark = target.indexOf('?');
  const pathname = mark === -1 ? target : target.slice(0, mark);
  const route = match(pathname);
  if (route === undefined) {
    throw new QueryError('not-found', `no route ${quote(pathname)}; routes: ${API_ROUTES.map((r) => `GET ${r}`).join(', ')}`, 404);
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
  const params = new URLSearchParams(mark === -1 ? '' : target.slice(mark + 1));
  const asked = parseUsageQuery(route.slug, params, options.meters);
  const consistency = options.consistency;
  if (params.has('consistentWith') && consistency === undefined) throw new QueryError('bad-parameter', 'consistentWith: this server does not follow a pipeline');
  const wanted = consistency === undefined ? undefined : parseConsistentWith(params, consistency.inputTopic);
  // A subject-scoped token: other subjects answer 403, no subject means its own (never all).
  const { subjects, allows } = narrowSubjects(principal, asked.subjects);
  if (wanted !== undefined && wanted.positions.length > 0) {
    // Asked once before the wait too, so that a query the read model refuses answers at once.
    options.readModel.query({ ...asked, subjects, allowsSubject: allows });
    await awaitConsistency(consistency!, wanted.positions);
  }
  const answer = options.readModel.query({ ...asked, subjects, allowsSubject: allows });
  const body: UsageResponse = { ...answer, freshness: options.freshness(), ...(wanted !== undefined && wanted.tokens.length > 0 ? { consistentWith: wanted.tokens } : {}) };
  send(res, 200, body);
}

/** 503 not-yet-consistent: the positions still awaited when the bound ran out. */
class NotYetConsistent extends QueryError {
  constructor(
    message: string,
    readonly awaiting: AwaitedPosition[],
  ) {
    super('not-yet-consistent', message, 503);
  }
}

async function awaitConsistency(consistency: ConsistencyOptions, positions: readonly InputPosition[]): Promise<void> {
  const outcome = await consistency.wait(positions, consistency.waitMs);
  if (outcome.consistent) return;
  if ('unavailable' in outcome) {
    throw new QueryError('consistency-unavailable', "consistentWith: this server cannot read the pipeline's committed positions (the server log says why); ask without consistentWith, or later", 503);
  }
  if ('unknownPartitions' in outcome) {
    throw new QueryError('bad-parameter', `consistentWith: the input topic ${quote(consistency.inputTopic)} has no partition ${outcome.unknownPartitions.join(', ')}`);
  }
  const pipeline = outcome.awaiting.filter((a) => a.waitingFor === 'pipeline').length;
  const why =
    pipeline > 0
      ? `the pipeline has not committed ${pipeline} of the positions yet`
      : 'the pipeline committed the positions, but this replica has not read the aggregates they wrote yet';
  throw new NotYetConsistent(`not consistent with the given tokens within ${consistency.waitMs} ms: ${why}; retry later`, outcome.awaiting);
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

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, JSON_HEADERS).end(JSON.stringify(body));
}

/** Paths and slugs come from the client: quoted (control characters visible) and cut short. */
function quote(value: string): string {
  return value.length > QUOTE_LIMIT ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}... (${value.length} chars)` : JSON.stringify(value);
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}
