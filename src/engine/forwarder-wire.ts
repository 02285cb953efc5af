import type { DeliverAnswer, DeliverRequest, WirePrincipal } from '../deliver/delivery.js';
import { principalFromWire, principalToWire } from '../deliver/delivery.js';

/**
 * The records of node-addressed routing (src/engine/forwarder.ts), JSON in the forward and
 * reply topics. A forwarded request carries the principal the origin authenticated
 * (principalToWire: name, scopes, subjects), never the token: the owner trusts its peer's
 * check, as the topic's ACLs allow only deliver replicas to write it. Every decoder refuses
 * what it does not fully understand with a WireError (the caller logs and skips the record).
 */

/** The version of the record layout; a reader skips records of another version. */
export const FORWARD_WIRE_VERSION = 1;

/** A request on its way to the node owning it (forward topic, key = `to`). */
export interface ForwardedRequest {
  /** Correlation id: the reply carries it back. */
  id: string;
  /** The node that received the request and waits for the answer. */
  from: string;
  /** The node asked to serve it. */
  to: string;
  /** ms since the epoch after which the origin no longer waits: not served past it. */
  deadline: number;
  request: DeliverRequest;
}

/** An answer on its way back (reply topic, key = `to`, the origin). */
export interface ForwardedReply {
  id: string;
  /** The node that served it. */
  from: string;
  /** The origin. */
  to: string;
  answer: DeliverAnswer;
}

/** A record of the forward or reply topic that is not one this version understands. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

export function encodeForwardedRequest(f: ForwardedRequest): string {
  const { method, path, query, body, principal } = f.request;
  return JSON.stringify({ v: FORWARD_WIRE_VERSION, id: f.id, from: f.from, to: f.to, deadline: f.deadline, request: { method, path, query, body, principal: principalToWire(principal) } });
}

export function decodeForwardedRequest(value: Buffer | string | null): ForwardedRequest {
  const o = parseObject(value);
  const r = objectField(o, 'request');
  const wire = objectField(r, 'principal');
  const method = wire.method;
  if (method !== 'none' && method !== 'token' && method !== 'jwt') throw new WireError(`principal.method ${JSON.stringify(method)} is not none, token or jwt`);
  const principal: WirePrincipal = { name: stringField(wire, 'name'), method, scopes: stringList(wire, 'scopes'), subjects: stringList(wire, 'subjects') };
  let parsed;
  try {
    parsed = principalFromWire(principal);
  } catch (error) {
    throw new WireError(`principal.subjects: ${(error as Error).message}`);
  }
  const deadline = o.deadline;
  if (typeof deadline !== 'number' || !Number.isSafeInteger(deadline)) throw new WireError('deadline is not an integer');
  return {
    id: stringField(o, 'id'),
    from: stringField(o, 'from'),
    to: stringField(o, 'to'),
    deadline,
    request: { method: stringField(r, 'method'), path: stringField(r, 'path'), query: stringField(r, 'query', true), body: stringField(r, 'body', true), principal: parsed },
  };
}

export function encodeForwardedReply(f: ForwardedReply): string {
  return JSON.stringify({ v: FORWARD_WIRE_VERSION, id: f.id, from: f.from, to: f.to, answer: { status: f.answer.status, headers: f.answer.headers, body: f.answer.body ?? null } });
}

export function decodeForwardedReply(value: Buffer | string | null): ForwardedReply {
  const o = parseObject(value);
  const a = objectField(o, 'answer');
  const status = a.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw new WireError(`answer.status ${JSON.stringify(status)} is not an HTTP status`);
  const rawHeaders = objectField(a, 'headers');
  const headers: Record<string, string> = {};
  for (const [name, text] of Object.entries(rawHeaders)) {
    if (typeof text !== 'string') throw new WireError(`answer header ${JSON.stringify(name)} is not a string`);
    headers[name] = text;
  }
  if (!('body' in a)) throw new WireError('answer.body is missing');
  return { id: stringField(o, 'id'), from: stringField(o, 'from'), to: stringField(o, 'to'), answer: { status, headers, body: a.body } };
}

type Json = Record<string, unknown>;

function parseObject(value: Buffer | string | null): Json {
  if (value === null) throw new WireError('the record has no value');
  let o: unknown;
  try {
    o = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw new WireError('the value is not JSON');
  }
  if (!isObject(o)) throw new WireError('the value is not a JSON object');
  if (o.v !== FORWARD_WIRE_VERSION) throw new WireError(`version ${JSON.stringify(o.v)} is not ${FORWARD_WIRE_VERSION}`);
  return o;
}

function isObject(o: unknown): o is Json {
  return typeof o === 'object' && o !== null && !Array.isArray(o);
}

function objectField(o: Json, name: string): Json {
  const v = o[name];
  if (!isObject(v)) throw new WireError(`${name} is not an object`);
  return v;
}

function stringField(o: Json, name: string, emptyOk = false): string {
  const v = o[name];
  if (typeof v !== 'string' || (!emptyOk && v === '')) throw new WireError(`${name} is not a ${emptyOk ? '' : 'non-empty '}string`);
  return v;
}

function stringList(o: Json, name: string): string[] {
  const v = o[name];
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) throw new WireError(`${name} is not a list of strings`);
  return v;
}
