/**
 * The service-time protocol on a `node:http` server: an inbound `service-time` is received
 * into the clock before the handler runs (or the request is refused with 400), and every
 * response carries the clock's stamp taken when its headers are written, so it is above
 * everything the handler did, downstream calls included.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HybridClock } from '../clock/hybrid-clock.js';
import { BadRecordError } from '../errors.js';
import type { TimeContext } from '../model/headers.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, receiveTimeContext, sendTimeContext } from './time-headers.js';

/** Express/Connect style continuation: called with no argument to go on. */
export type NextFunction = (error?: unknown) => void;

/** A `(req, res, next)` middleware, usable with Express, Connect or a hand-written chain. */
export type ServiceTimeMiddleware = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

/** A plain `node:http` request handler, as `http.createServer(handler)` takes (its result is passed back). */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/**
 * The body of a refused request, the error format of the ingest API:
 * `{ "error": { "kind": "bad-service-time" | "clock-skew", "message": "..." } }`.
 */
export interface ServiceTimeErrorBody {
  /** What was refused and why. */
  error: { kind: 'bad-service-time' | 'clock-skew'; message: string };
}

const received = new WeakMap<IncomingMessage, TimeContext>();

/**
 * The time context the request carried, as the middleware received it (undefined when the
 * request had none or has not been through the middleware).
 */
export function receivedTimeContext(req: IncomingMessage): TimeContext | undefined {
  return received.get(req);
}

/**
 * `(req, res, next)` middleware: receives the request's `service-time` / `service-node` into
 * `clock`, then calls `next()`. A malformed context answers 400 kind `bad-service-time`, a
 * time more than `clock.maxSkewMs` ahead of the clock's physical time 400 kind `clock-skew`
 * (the clock unchanged, `next` not called). Every response, refusals included, carries
 * `service-time` / `service-node`: a send stamp taken as its headers are written.
 *
 * @example
 * const clock = new HybridClock({ node: 'billing-1' });
 * app.use(serviceTimeMiddleware(clock)); // Express
 */
export function serviceTimeMiddleware(clock: HybridClock): ServiceTimeMiddleware {
  return (req, res, next) => {
    stampResponse(res, clock);
    let context: TimeContext | undefined;
    try {
      context = receiveTimeContext(clock, req.headers);
    } catch (error) {
      if (!(error instanceof BadRecordError)) {
        next(error);
        return;
      }
      refuse(res, error);
      return;
    }
    if (context !== undefined) received.set(req, context);
    next();
  };
}

/**
 * Wraps a plain `node:http` handler with {@link serviceTimeMiddleware}: the handler runs
 * only for a request whose time context (if any) was received, and its result is returned.
 *
 * @example
 * http.createServer(withServiceTimeHandler(clock, (req, res) => { res.end('ok'); }));
 */
export function withServiceTimeHandler(clock: HybridClock, handler: RequestHandler): RequestHandler {
  const middleware = serviceTimeMiddleware(clock);
  return (req, res) => {
    let result: unknown;
    let failure: { error: unknown } | undefined;
    middleware(req, res, (error?: unknown) => {
      if (error !== undefined) failure = { error };
      else result = handler(req, res);
    });
    if (failure !== undefined) throw failure.error;
    return result;
  };
}

/**
 * Sets the stamp when the headers go out: ServerResponse writes implicit headers through
 * writeHead too (res.end() without writeHead), so one hook covers both. Headers a handler
 * passes to writeHead itself win over these.
 */
function stampResponse(res: ServerResponse, clock: HybridClock): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
    if (!this.headersSent) {
      const context = sendTimeContext(clock);
      this.setHeader(SERVICE_TIME_HEADER, context[SERVICE_TIME_HEADER]);
      this.setHeader(SERVICE_NODE_HEADER, context[SERVICE_NODE_HEADER]);
    }
    return writeHead.apply(this, args);
  } as ServerResponse['writeHead'];
}

function refuse(res: ServerResponse, error: BadRecordError): void {
  const kind = error.reason === 'clock-skew' ? 'clock-skew' : 'bad-service-time';
  const body: ServiceTimeErrorBody = { error: { kind, message: error.message } };
  const text = JSON.stringify(body);
  res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
