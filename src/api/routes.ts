import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../auth/principal.js';
import type { Scope } from '../auth/scopes.js';
import { QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import { readBoundedBody } from '../http/body.js';

/** Longest path parameter (an event id, a source, a subject, a trail id), in UTF-8 bytes. */
export const MAX_PARAM_BYTES = 1_024;
/** Largest JSON body of an api request (a corrected value, a bulk replay filter). */
export const MAX_API_BODY_BYTES = 1_048_576;

export type ApiMethod = 'GET' | 'POST' | 'DELETE';

/** What a route's handler gets besides its path parameters. */
export interface ApiRequest {
  principal: Principal;
  /** The query string. */
  params: URLSearchParams;
  /** The JSON body (undefined when empty); 400 bad-body if it is not JSON, 413 beyond MAX_API_BODY_BYTES. */
  json(): Promise<unknown>;
  req: IncomingMessage;
}

/**
 * One route of the api role beyond the usage queries (receipts, trails, dead-letter replay,
 * deletions): an OpenAPI path template (`/v1/events/{source}/{id}`), its method and the scope
 * it needs. Parameters arrive percent-decoded, each at most MAX_PARAM_BYTES.
 */
export interface ApiRoute {
  method: ApiMethod;
  path: string;
  scope: Scope;
  handle(params: Record<string, string>, request: ApiRequest, res: ServerResponse): Promise<void>;
}

/** The route whose template matches the path and its decoded parameters, or undefined. */
export function matchRoute(routes: readonly ApiRoute[], pathname: string): { routes: ApiRoute[]; params: Record<string, string> } | undefined {
  const parts = pathname.split('/');
  let found: { routes: ApiRoute[]; params: Record<string, string> } | undefined;
  for (const route of routes) {
    const template = route.path.split('/');
    if (template.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < template.length && ok; i++) {
      const t = template[i]!;
      const raw = parts[i]!;
      if (t.startsWith('{') && t.endsWith('}')) {
        if (raw === '') ok = false;
        else params[t.slice(1, -1)] = decodeParam(t.slice(1, -1), raw);
      } else ok = t === raw;
    }
    if (!ok) continue;
    if (found === undefined) found = { routes: [route], params };
    else if (route.path === found.routes[0]!.path) found.routes.push(route);
  }
  return found;
}

function decodeParam(name: string, raw: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new QueryError('bad-parameter', `${name}: ${quote(raw)} is not valid percent-encoding`);
  }
  if (Buffer.byteLength(value) > MAX_PARAM_BYTES) throw new QueryError('bad-parameter', `${name}: longer than ${MAX_PARAM_BYTES} bytes`);
  if ([...value].some((c) => c.charCodeAt(0) < 0x20)) throw new QueryError('bad-parameter', `${name}: control characters are not allowed`);
  return value;
}

/** The JSON body of a request, at most MAX_API_BODY_BYTES. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const body = await readBoundedBody(req, MAX_API_BODY_BYTES);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    throw new QueryError('bad-body', `the body is not JSON: ${(error as Error).message}`);
  }
}
