import { readBoundedBody } from '../http/body.js';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { getDefaultHighWaterMark } from 'node:stream';
import type { AuthError } from '../auth/auth-error.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/principal.js';
import { requireScope } from '../auth/scopes.js';
import { narrowSubjects } from '../auth/subject-scope.js';
import { type DeletedLookup, refuseDeleted, withoutDeleted } from '../deletion/subject-deleted.js';
import type { DeliverConfig } from '../config/config.js';
import { QueryError } from '../errors.js';
import { type ListeningServer, answerClientErrors, answerError, listen, quoteClient as quote, sendJson } from '../http/json.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import { CursorTracker, type Positions, type StreamName, cursorMode, encodeCursor } from '../model/stream-cursor.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import type { DeliverAnswer, DeliverRequest, RecordViews } from './delivery.js';
import { SseStream, type StreamReader } from './sse.js';
import { parseFrom, parseStreamName, parseStreamQuery, resolveStart } from './stream-request.js';

/**
 * The HTTP edge of the `deliver` role (docs/delivery.md, docs/openapi.yaml):
 *   GET    /v1/streams/{stream}/events      Server-Sent Events (sse.ts)
 *   POST   /v1/streams/{stream}/sessions    receiver sessions: passed whole, once authenticated,
 *   GET    /v1/sessions/{id}/records          to `sessions.handle` (sessions.ts), which answers
 *   POST   /v1/sessions/{id}/ack              here or forwards to the session's owner
 *   DELETE /v1/sessions/{id}
 * Every route needs scope `deliver`. Errors before an event stream starts are JSON,
 * `{"error": {"kind", "message", ...}}`, as on the other roles' HTTP edges.
 */

/** One stream topic as the server reads it (src/engine/stream-source.ts's StreamSource, by shape). */
export interface DeliverSource {
  partitions(): number;
  /** Per partition the earliest offset still stored and the end. */
  bounds(): Promise<Map<number, { earliest: bigint; end: bigint }>>;
  /** A reader from `from`; QueryError 410 cursor-expired, 400 cursor-ahead, 503 too-many-readers. */
  open(from: Positions): Promise<StreamReader>;
}

export interface DeliverServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** Default 0.0.0.0. */
  host?: string;
  auth: Authenticator;
  /** Called for every request the auth layer refuses (metrics). */
  onRefused?: (error: AuthError) => void;
  logger?: Logger;
  /** This replica's node id (logged). */
  nodeId: string;
  sources: Record<StreamName, DeliverSource>;
  views: RecordViews;
  /** Deleted subjects (src/deletion/): a stream filtered to one answers 410, others leave them out. */
  deleted?: DeletedLookup;
  /** The receiver sessions; undefined: their routes answer 404. */
  sessions: { handle(request: DeliverRequest): Promise<DeliverAnswer> } | undefined;
  limits: Pick<DeliverConfig, 'maxStreams' | 'heartbeatMs' | 'bufferBytes'>;
  metrics?: OrdoMetrics;
}

export interface DeliverServer extends ListeningServer {
  /** SSE streams open now (both streams). */
  openStreams(): number;
}

/** The routes served, as OpenAPI path templates with their methods (docs/openapi.yaml describes each). */
export const DELIVER_ROUTES = {
  '/v1/streams/{stream}/events': 'GET',
  '/v1/streams/{stream}/sessions': 'POST',
  '/v1/sessions/{sessionId}/records': 'GET',
  '/v1/sessions/{sessionId}/ack': 'POST',
  '/v1/sessions/{sessionId}': 'DELETE',
} as const;
type RouteTemplate = keyof typeof DELIVER_ROUTES;

/** Largest session request body (a filter of 100 subjects and types fits many times over). */
export const MAX_BODY_BYTES = 64 * 1024;
/** How long close() lets ended streams flush before it cuts their connections. */
const CLOSE_GRACE_MS = 1_000;

export async function startDeliverServer(options: DeliverServerOptions): Promise<DeliverServer> {
  const logger = options.logger ?? noopLogger;
  const streams = new Set<SseStream>();
  /** Streams counted against maxStreams: open ones and ones being opened. */
  let slots = 0;
  const context: Context = {
    options,
    logger,
    openStream: async (req, res, stream, principal, query) => {
      if (slots >= options.limits.maxStreams) {
        throw new QueryError('too-many-streams', `this replica serves ${options.limits.maxStreams} streams already (ORDO_DELIVER_MAX_STREAMS); retry, or connect to another replica`, 503, {
          headers: { 'retry-after': '1' },
        });
      }
      slots += 1;
      let sse: SseStream | undefined;
      try {
        sse = await prepareStream(req, res, stream, principal, query, options, logger);
      } finally {
        if (sse === undefined) slots -= 1;
      }
      streams.add(sse);
      options.metrics?.deliverStreams.inc({ stream });
      options.metrics?.deliverStreamRequests.inc({ stream, outcome: 'opened' });
      try {
        const end = await sse.run();
        logger.debug('SSE stream ended', { stream, end });
      } finally {
        streams.delete(sse);
        slots -= 1;
        options.metrics?.deliverStreams.dec({ stream });
      }
    },
  };
  // A response waits for its client (write() false, 'drain') from half its buffer on, so that
  // a client that reads is never cut off for a burst; beyond the whole buffer it has overflowed.
  const highWaterMark = Math.min(getDefaultHighWaterMark(false), Math.floor(options.limits.bufferBytes / 2));
  const server = createServer({ highWaterMark }, (req, res) => {
    handle(req, res, context).catch((error: unknown) => {
      const kind = answerError(req, res, error, { logger, what: 'deliver', onRefused: options.onRefused });
      const stream = streamOfFailed(req);
      if (stream !== undefined) options.metrics?.deliverStreamRequests.inc({ stream, outcome: kind });
    });
  });
  answerClientErrors(server);
  const listening = await listen(server, { port: options.port, host: options.host ?? '0.0.0.0', logger, what: 'deliver API', meta: { auth: options.auth.mode, node: options.nodeId } });
  return {
    port: listening.port,
    openStreams: () => streams.size,
    close: async () => {
      // Every client is told to reconnect (elsewhere); one that does not read loses its connection after the grace.
      for (const sse of streams) sse.close();
      const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      try {
        await listening.close();
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

interface Context {
  options: DeliverServerOptions;
  logger: Logger;
  openStream(req: IncomingMessage, res: ServerResponse, stream: StreamName, principal: Principal, query: string): Promise<void>;
}

async function handle(req: IncomingMessage, res: ServerResponse, context: Context): Promise<void> {
  // Who is asking comes first: without a valid token, nothing else is answered.
  const principal = await context.options.auth.authenticate(req.headers.authorization);
  // Split by hand: new URL() would read a target such as "//host/x" as a host.
  const target = req.url ?? '/';
  const mark = target.indexOf('?');
  const path = mark === -1 ? target : target.slice(0, mark);
  const query = mark === -1 ? '' : target.slice(mark + 1);
  const route = match(path);
  if (route === undefined || (route.template !== '/v1/streams/{stream}/events' && context.options.sessions === undefined)) {
    const served = Object.entries(DELIVER_ROUTES).filter(([template]) => template === '/v1/streams/{stream}/events' || context.options.sessions !== undefined);
    throw new QueryError('not-found', `no route ${quote(path)}; routes: ${served.map(([template, method]) => `${method} ${template}`).join(', ')}`, 404);
  }
  const method = DELIVER_ROUTES[route.template];
  if (req.method !== method) {
    res.setHeader('allow', method);
    throw new QueryError('method-not-allowed', `${req.method} is not allowed on ${quote(path)}; only ${method}`, 405);
  }
  requireScope(principal, 'deliver');
  if (route.template === '/v1/streams/{stream}/events') {
    await context.openStream(req, res, parseStreamName(route.stream ?? ''), principal, query);
    return;
  }
  if (route.stream !== undefined) parseStreamName(route.stream);
  const body = await readBody(req);
  const answer = await context.options.sessions!.handle({ method, path, query, body, principal });
  if (answer.status === 204) res.writeHead(204, answer.headers).end();
  else sendJson(res, answer.status, answer.body, answer.headers);
}

interface Route {
  template: RouteTemplate;
  /** The raw {stream} segment. */
  stream?: string;
}

function match(path: string): Route | undefined {
  const parts = path.split('/');
  if (parts[0] !== '' || parts[1] !== 'v1') return undefined;
  // ['', 'v1', 'streams', s, 'events' | 'sessions']
  if (parts[2] === 'streams' && parts.length === 5 && parts[3] !== '') {
    if (parts[4] === 'events') return { template: '/v1/streams/{stream}/events', stream: parts[3] };
    if (parts[4] === 'sessions') return { template: '/v1/streams/{stream}/sessions', stream: parts[3] };
    return undefined;
  }
  // ['', 'v1', 'sessions', id, 'records' | 'ack'?]: the session id is checked by the sessions.
  if (parts[2] === 'sessions' && parts[3] !== undefined && parts[3] !== '') {
    if (parts.length === 4) return { template: '/v1/sessions/{sessionId}' };
    if (parts.length === 5 && parts[4] === 'records') return { template: '/v1/sessions/{sessionId}/records' };
    if (parts.length === 5 && parts[4] === 'ack') return { template: '/v1/sessions/{sessionId}/ack' };
  }
  return undefined;
}

/** The stream of a refused SSE request, for its metric (undefined for other routes and unknown streams). */
function streamOfFailed(req: IncomingMessage): StreamName | undefined {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const route = match(path);
  if (route?.template !== '/v1/streams/{stream}/events') return undefined;
  return route.stream === 'ordered' || route.stream === 'global' ? route.stream : undefined;
}

/**
 * Everything that can refuse a stream, before its first byte: the query, the token's
 * subjects, the start (Last-Event-ID wins over `from`) and the reader. A refusal here is a
 * JSON error; after it, the stream's own errors are events.
 */
async function prepareStream(
  req: IncomingMessage,
  res: ServerResponse,
  stream: StreamName,
  principal: Principal,
  query: string,
  options: DeliverServerOptions,
  logger: Logger,
): Promise<SseStream> {
  const asked = parseStreamQuery(new URLSearchParams(query));
  const header = req.headers['last-event-id'];
  // An EventSource that reconnects sends its last id; an empty one is no id at all.
  const lastEventId = typeof header === 'string' && header !== '' ? header : undefined;
  const what = lastEventId !== undefined ? 'Last-Event-ID' : 'from';
  const start = parseFrom(lastEventId ?? asked.from, what);
  // A subject-scoped token: other subjects answer 403, none asked means its own.
  const narrowed = narrowSubjects(principal, asked.filter.subjects);
  // A deleted subject asked by name: 410; unfiltered streams leave deleted subjects out.
  refuseDeleted(narrowed.subjects, options.deleted);
  const { subjects } = narrowed;
  const allows = withoutDeleted(narrowed.allows, options.deleted);
  const filter = { ...asked.filter, ...(subjects === undefined ? {} : { subjects }) };
  const source = options.sources[stream];
  const positions = await resolveStart(start, stream, source, what, subjects);
  const reader = await source.open(positions);
  const partitions = source.partitions();
  const tracker = new CursorTracker(cursorMode(stream, subjects), positions, partitions);
  const startCursor = start.kind === 'cursor' ? encodeCursor(start.cursor) : encodeCursor({ kind: 'vector', next: tracker.positions() });
  return new SseStream({
    res,
    stream,
    reader,
    tracker,
    filter,
    allows,
    startCursor,
    views: options.views,
    heartbeatMs: options.limits.heartbeatMs,
    bufferBytes: options.limits.bufferBytes,
    logger: logger.child({ stream }),
    metrics: options.metrics,
  });
}

/** The body as text, at most MAX_BODY_BYTES (413 beyond). */
async function readBody(req: IncomingMessage): Promise<string> {
  return (await readBoundedBody(req, MAX_BODY_BYTES)).toString('utf8');
}
