import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthError } from '../auth/auth-error.js';
import { QueryError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/**
 * What the JSON HTTP servers of the roles (the usage API, the ingest) share: one error body,
 * `{"error": {"kind", "message", ...}}`, one mapping of errors to answers, one listen/close.
 */

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };
const QUOTE_LIMIT = 64;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...JSON_HEADERS, ...headers }).end(JSON.stringify(body));
}

/** Values from the client (paths, slugs): quoted (control characters visible) and cut short. */
export function quoteClient(value: string): string {
  return value.length > QUOTE_LIMIT ? `${JSON.stringify(value.slice(0, QUOTE_LIMIT))}... (${value.length} chars)` : JSON.stringify(value);
}

export function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

/**
 * Answers a failed request: 401/403/503 from the auth layer (WWW-Authenticate on 401), the
 * status of a QueryError (with its `details` in the error body and its headers), and 500
 * `internal` without details for anything else (logged). Returns the kind answered.
 */
export function answerError(
  req: IncomingMessage,
  res: ServerResponse,
  error: unknown,
  options: { logger: Logger; what: string; onRefused?: (error: AuthError) => void },
): string {
  if (res.headersSent) {
    options.logger.error(`${options.what} response failed after its headers were sent`, { path: pathOf(req), error });
    res.destroy();
    return 'internal';
  }
  if (error instanceof AuthError) {
    options.onRefused?.(error);
    if (error.challenge !== undefined) res.setHeader('www-authenticate', error.challenge);
    if (error.kind === 'auth-unavailable') res.setHeader('retry-after', '5');
    sendJson(res, error.status, { error: { kind: error.kind, message: error.message } });
    return error.kind;
  }
  if (error instanceof QueryError) {
    sendJson(res, error.status, { error: { kind: error.kind, message: error.message, ...error.details } }, error.headers);
    return error.kind;
  }
  options.logger.error(`${options.what} request failed`, { method: req.method, path: pathOf(req), error });
  sendJson(res, 500, { error: { kind: 'internal', message: 'internal error; the server log has the details' } });
  return 'internal';
}

/**
 * Requests Node's HTTP parser refuses before a handler sees them (malformed, headers too
 * large, not received in full within the request timeout) get the same JSON error body as
 * every other answer, and their connection is closed.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, kind, message] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'request-timeout', 'the request was not received in full in time']
        : error.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'Request Header Fields Too Large', 'headers-too-large', 'the request headers are too large']
          : [400, 'Bad Request', 'bad-request', `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`];
    const body = JSON.stringify({ error: { kind, message } });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
}

export interface ListeningServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens (port 0: a free one), logs `<what> listening` with the real port, and closes without waiting for idle keep-alive clients. */
export function listen(server: Server, options: { port: number; host: string; logger: Logger; what: string; meta?: Record<string, unknown> }): Promise<ListeningServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      server.on('error', (error) => options.logger.error(`${options.what} server error`, { error }));
      const { port } = server.address() as AddressInfo;
      options.logger.info(`${options.what} listening`, { host: options.host, port, ...options.meta });
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
