import { readBoundedBody } from '../http/body.js';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { AuthError } from '../auth/auth-error.js';
import type { MappedPayloads } from '../connectors/mapper.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/principal.js';
import { requireScope } from '../auth/scopes.js';
import { BadRecordError, QueryError } from '../errors.js';
import { type ListeningServer, answerClientErrors, answerError, listen, pathOf, quoteClient, sendJson } from '../http/json.js';
import type { AcceptedEvent } from '../model/ingest-answer.js';
import type { TimeContext } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { readTimeContext } from '../processors/decode.js';
import { CORRECTION_ROUTES, correctionEvent } from './corrections.js';
import type { CorrectionKind } from '../corrections/correction.js';
import { BATCH, type CheckedEvent, type IngestEvent, type ItemError, SINGLE, itemsOf, mediaType, parseCloudEvents } from './cloudevents.js';

export type { AcceptedEvent } from '../model/ingest-answer.js';

export interface Accepted {
  events: AcceptedEvent[];
  /** For the caller's next hop: the `service-time` / `service-node` response headers. */
  serviceTime: string;
  serviceNode: string;
}

/**
 * Maps a connector's native payloads to CloudEvents (or says which path does not fit).
 * undefined: no connector of that name.
 */
export type ConnectorMapper = (name: string, payloads: readonly unknown[]) => MappedPayloads | undefined;

export interface IngestServerOptions {
  port: number;
  host: string;
  auth: Authenticator;
  maxEvents: number;
  maxBytes: number;
  requestTimeoutMs: number;
  /** Stamps and writes the events in one transaction; rejects with a QueryError (e.g. 503 unavailable, 400 clock-skew). */
  accept(events: CheckedEvent[], context: TimeContext | undefined, principal: Principal): Promise<Accepted>;
  connectors?: ConnectorMapper;
  now?: () => number;
  logger: Logger;
  /** Every answered request: its outcome (`accepted` or the error kind), events in it (0 when unknown), seconds. */
  onRequest?: (outcome: string, events: number, seconds: number) => void;
  onRefused?: (error: AuthError) => void;
}

/** The routes served, as OpenAPI path templates (docs/openapi.yaml describes each). */
export const INGEST_ROUTES = ['/v1/events', '/v1/connectors/{name}'] as const;
/** Also served: corrections of accepted events (docs/corrections-openapi.yaml, to be folded into docs/openapi.yaml). */
export { CORRECTION_ROUTES } from './corrections.js';

const CONTENT_TYPES = [SINGLE, BATCH];

/**
 * The ingest API: `POST /v1/events` (CloudEvents, one or a batch) and
 * `POST /v1/connectors/{name}` (a connector's native payloads, one or an array). A request is
 * all or nothing: every item is validated before anything is written, and the events are
 * written in one transaction. Errors are `{"error": {"kind", "message", "items"?}}`.
 */
export function startIngestServer(options: IngestServerOptions): Promise<ListeningServer> {
  const server = createServer(
    {
      // A body that has not arrived in full by then is answered 408 and its connection closed:
      // slow senders cannot hold connections open. Checked every second (the default is 30 s).
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      const started = performance.now();
      let events = 0;
      handle(req, res, options, (n) => (events = n)).then(
        () => options.onRequest?.('accepted', events, (performance.now() - started) / 1000),
        (error: unknown) => {
          const kind = answerError(req, res, error, { logger: options.logger, what: 'ingest', onRefused: options.onRefused });
          options.onRequest?.(kind, events, (performance.now() - started) / 1000);
        },
      );
    },
  );
  answerClientErrors(server);
  return listen(server, { port: options.port, host: options.host, logger: options.logger, what: 'ingest API', meta: { auth: options.auth.mode } });
}

async function handle(req: IncomingMessage, res: ServerResponse, options: IngestServerOptions, counted: (events: number) => void): Promise<void> {
  // Who is asking comes first: without a valid token, not a byte of the body is read.
  const principal = await options.auth.authenticate(req.headers.authorization);
  const pathname = pathOf(req);
  const route = match(pathname);
  if (route === undefined) {
    throw new QueryError('not-found', `no route ${quoteClient(pathname)}; routes: ${[...INGEST_ROUTES, ...CORRECTION_ROUTES].map((r) => `POST ${r}`).join(', ')}`, 404);
  }
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    throw new QueryError('method-not-allowed', `${req.method} is not allowed on ${quoteClient(pathname)}; only POST`, 405);
  }
  requireScope(principal, 'ingest');
  const type = mediaType(req.headers['content-type']);
  const accepted = route.name === 'events' ? CONTENT_TYPES : ['application/json'];
  if (type === undefined || !accepted.includes(type)) {
    throw new QueryError('unsupported-media-type', `content type ${type === undefined ? '(none)' : quoteClient(type)} is not accepted here; send ${accepted.join(' or ')}`, 415, {
      headers: { accept: accepted.join(', '), connection: 'close' },
    });
  }
  const body = await readBody(req, options.maxBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new QueryError('malformed-json', `the body is not JSON: ${(error as Error).message}`);
  }
  if (route.name === 'correction') {
    // A void or amend of an accepted event: one correction event, written like any other (docs/corrections.md).
    counted(1);
    const correction = correctionEvent(route.kind, route.original, parsed, (options.now ?? Date.now)());
    checkSubjects(principal, [correction]);
    const answer = await options.accept([correction], timeContext(req), principal);
    sendJson(res, 202, { events: answer.events }, { 'service-time': answer.serviceTime, 'service-node': answer.serviceNode });
    return;
  }
  let items: unknown[] | undefined;
  if (route.name === 'events') {
    items = itemsOf(parsed, type === SINGLE);
    if (items === undefined) throw new QueryError('invalid-body', type === SINGLE ? `${SINGLE} is one CloudEvent (a JSON object)` : `${BATCH} is a JSON array of CloudEvents`);
  } else {
    items = Array.isArray(parsed) ? parsed : [parsed];
  }
  counted(items.length);
  if (items.length === 0) throw new QueryError('empty-batch', 'the batch has no events');
  if (items.length > options.maxEvents) throw new QueryError('too-many-events', `${items.length} events in one request; at most ${options.maxEvents} (ORDO_INGEST_MAX_EVENTS)`, 413);

  if (route.name === 'connector') {
    const mapped = options.connectors?.(route.connector, items);
    if (mapped === undefined) throw new QueryError('unknown-connector', `no connector ${quoteClient(route.connector)}`, 404);
    if (!mapped.ok) {
      throw new QueryError('invalid-payloads', `${mapped.errors.length} of ${items.length} payloads do not fit connector ${quoteClient(route.connector)}; nothing was written`, 400, {
        details: { items: mapped.errors.map((e) => ({ index: e.index, kind: 'invalid-event', path: e.path, message: e.message })) },
      });
    }
    items = mapped.events;
  }

  const context = timeContext(req);
  const traceparent = req.headers.traceparent;
  const result = parseCloudEvents(items, { now: (options.now ?? Date.now)(), requestTraceparent: typeof traceparent === 'string' ? traceparent : undefined });
  if (!result.ok) throw invalidItems(result.errors, items.length);
  checkSubjects(principal, result.events);
  const answer = await options.accept(result.events, context, principal);
  sendJson(res, 202, { events: answer.events }, { 'service-time': answer.serviceTime, 'service-node': answer.serviceNode });
}

type Route = { name: 'events' } | { name: 'connector'; connector: string } | { name: 'correction'; kind: CorrectionKind; original: { source: string; id: string } };

function match(pathname: string): Route | undefined {
  if (pathname === '/v1/events') return { name: 'events' };
  const parts = pathname.split('/');
  if (parts.length === 6 && parts[0] === '' && parts[1] === 'v1' && parts[2] === 'events' && (parts[5] === 'void' || parts[5] === 'amend') && parts[3] !== '' && parts[4] !== '') {
    try {
      return { name: 'correction', kind: parts[5], original: { source: decodeURIComponent(parts[3]!), id: decodeURIComponent(parts[4]!) } };
    } catch {
      throw new QueryError('bad-parameter', `the original's source or id in ${quoteClient(pathname)} is not valid percent-encoding`);
    }
  }
  if (parts.length === 4 && parts[0] === '' && parts[1] === 'v1' && parts[2] === 'connectors' && parts[3] !== '') {
    try {
      return { name: 'connector', connector: decodeURIComponent(parts[3]!) };
    } catch {
      throw new QueryError('bad-parameter', `connector name ${quoteClient(parts[3]!)} is not valid percent-encoding`);
    }
  }
  return undefined;
}

/** The body, at most `maxBytes` (413 beyond). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return readBoundedBody(req, maxBytes, ' (ORDO_INGEST_MAX_BYTES); split the batch');
}

/** The caller's `service-time` / `service-node`, parsed as strictly as the pipeline parses them on records. */
function timeContext(req: IncomingMessage): TimeContext | undefined {
  try {
    return readTimeContext({ 'service-time': req.headers['service-time'], 'service-node': req.headers['service-node'] });
  } catch (error) {
    if (error instanceof BadRecordError) throw new QueryError(error.reason, `${error.message}; nothing was written`);
    throw error;
  }
}

function invalidItems(errors: ItemError[], of: number): QueryError {
  return new QueryError('invalid-events', `${errors.length} of ${of} events are invalid; nothing was written`, 400, { details: { items: errors } });
}

/** A subject-scoped token ingests only for its subjects (403 forbidden-subject, nothing written). */
function checkSubjects(principal: Principal, events: readonly IngestEvent[]): void {
  if (principal.subjects.all) return;
  const refused = events.find((e) => !principal.subjects.allows(e.event.subject));
  if (refused !== undefined) {
    throw new AuthError('forbidden-subject', `subject ${quoteClient(refused.event.subject)} is not one the token of ${principal.name} may write (it may write ${principal.subjects.describe()}); nothing was written`);
  }
}
