import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { principalFromWire, principalToWire, type WirePrincipal } from '../../src/deliver/delivery.js';
import { errorAnswer } from '../../src/engine/forwarder.js';
import {
  FORWARD_WIRE_VERSION,
  WireError,
  decodeForwardedReply,
  decodeForwardedRequest,
  encodeForwardedReply,
  encodeForwardedRequest,
  type ForwardedReply,
  type ForwardedRequest,
} from '../../src/engine/forwarder-wire.js';
import { QueryError } from '../../src/errors.js';

const nodeId = fc.string({ minLength: 1, maxLength: 20 });
const wirePrincipal: fc.Arbitrary<WirePrincipal> = fc.record({
  name: fc.string({ minLength: 1 }),
  method: fc.constantFrom('none' as const, 'token' as const, 'jwt' as const),
  scopes: fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 4 }),
  subjects: fc.array(fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constant('*'), fc.string({ minLength: 1, maxLength: 6 }).map((s) => `${s}*`)), { maxLength: 5 }),
});
const forwarded: fc.Arbitrary<ForwardedRequest> = fc.record({
  id: fc.uuid(),
  from: nodeId,
  to: nodeId,
  deadline: fc.integer({ min: 0, max: 2 ** 45 }),
  request: fc.record({
    method: fc.constantFrom('GET', 'POST', 'DELETE'),
    path: fc.string({ minLength: 1 }),
    query: fc.string(),
    body: fc.string({ unit: 'grapheme' }),
    principal: wirePrincipal.map(principalFromWire),
  }),
});
const reply: fc.Arbitrary<ForwardedReply> = fc.record({
  id: fc.uuid(),
  from: nodeId,
  to: nodeId,
  answer: fc.record({
    status: fc.integer({ min: 100, max: 599 }),
    headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.string()),
    body: fc.jsonValue(),
  }),
});

/** What survives JSON: the principal in its wire form (a Set and a SubjectScope are not comparable as objects). */
function comparable(f: ForwardedRequest): unknown {
  return { ...f, request: { ...f.request, principal: principalToWire(f.request.principal) } };
}

describe('forwarded request wire form', () => {
  it('round-trips every request, the principal as principalToWire', () => {
    fc.assert(
      fc.property(forwarded, (f) => {
        expect(comparable(decodeForwardedRequest(encodeForwardedRequest(f)))).toEqual(comparable(f));
        expect(comparable(decodeForwardedRequest(Buffer.from(encodeForwardedRequest(f))))).toEqual(comparable(f));
      }),
    );
  });

  it('never carries a token: only name, method, scopes and subjects of the principal travel', () => {
    const principal = { ...principalFromWire({ name: 'alice', method: 'token', scopes: ['deliver'], subjects: ['acme'] }), token: 'secret-token-value' };
    const text = encodeForwardedRequest({ id: 'c1', from: 'a', to: 'b', deadline: 1, request: { method: 'GET', path: '/v1/sessions/x/records', query: '', body: '', principal } });
    expect(text).not.toContain('secret-token-value');
    expect(Object.keys((JSON.parse(text) as { request: { principal: object } }).request.principal).sort()).toEqual(['method', 'name', 'scopes', 'subjects']);
  });

  it('refuses anything else with a WireError (never another exception)', () => {
    const valid = JSON.parse(encodeForwardedRequest({ id: 'c1', from: 'a', to: 'b', deadline: 1, request: { method: 'GET', path: '/p', query: '', body: '', principal: principalFromWire({ name: 'n', method: 'jwt', scopes: [], subjects: ['*'] }) } })) as Record<string, unknown>;
    const broken: (string | null)[] = [
      null,
      '',
      'not json',
      '[]',
      '42',
      JSON.stringify({ ...valid, v: FORWARD_WIRE_VERSION + 1 }),
      JSON.stringify({ ...valid, id: '' }),
      JSON.stringify({ ...valid, deadline: '1' }),
      JSON.stringify({ ...valid, deadline: 1.5 }),
      JSON.stringify({ ...valid, request: null }),
      JSON.stringify({ ...valid, request: { ...(valid.request as object), principal: { name: 'n', method: 'root', scopes: [], subjects: [] } } }),
      JSON.stringify({ ...valid, request: { ...(valid.request as object), principal: { name: 'n', method: 'jwt', scopes: [1], subjects: [] } } }),
      JSON.stringify({ ...valid, request: { ...(valid.request as object), principal: { name: 'n', method: 'jwt', scopes: [], subjects: [''] } } }),
      JSON.stringify({ ...valid, request: { ...(valid.request as object), query: undefined } }),
    ];
    for (const value of broken) expect(() => decodeForwardedRequest(value), String(value)).toThrow(WireError);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((j) => JSON.stringify(j))), (text) => {
        try {
          decodeForwardedRequest(text);
        } catch (error) {
          expect(error).toBeInstanceOf(WireError);
        }
      }),
    );
  });
});

describe('forwarded answer wire form', () => {
  it('round-trips every answer', () => {
    fc.assert(
      fc.property(reply, (r) => {
        const back = decodeForwardedReply(encodeForwardedReply(r));
        // JSON has no -0: compare with what JSON itself makes of the body.
        expect(back).toEqual({ ...r, answer: { ...r.answer, body: JSON.parse(JSON.stringify(r.answer.body)) as unknown } });
      }),
    );
  });

  it('sends an answer without a body (204) as null', () => {
    expect(decodeForwardedReply(encodeForwardedReply({ id: 'c', from: 'b', to: 'a', answer: { status: 204, headers: {}, body: undefined } })).answer).toEqual({ status: 204, headers: {}, body: null });
  });

  it('refuses anything else with a WireError', () => {
    const valid = JSON.parse(encodeForwardedReply({ id: 'c', from: 'b', to: 'a', answer: { status: 200, headers: { a: 'b' }, body: {} } })) as Record<string, unknown>;
    const answer = valid.answer as Record<string, unknown>;
    for (const bad of [
      { ...valid, v: undefined },
      { ...valid, to: 7 },
      { ...valid, answer: { ...answer, status: 99 } },
      { ...valid, answer: { ...answer, status: '200' } },
      { ...valid, answer: { ...answer, headers: { a: 1 } } },
      { ...valid, answer: { status: 200, headers: {} } },
    ]) {
      expect(() => decodeForwardedReply(JSON.stringify(bad)), JSON.stringify(bad)).toThrow(WireError);
    }
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((j) => JSON.stringify(j))), (text) => {
        try {
          decodeForwardedReply(Buffer.from(text));
        } catch (error) {
          expect(error).toBeInstanceOf(WireError);
        }
      }),
    );
  });
});

describe('errorAnswer', () => {
  it('renders a QueryError as the HTTP layer does, anything else as a 500 without its message', () => {
    expect(errorAnswer(new QueryError('unknown-session', 'no such session', 404, { details: { id: 'x' }, headers: { 'retry-after': '1' } }))).toEqual({
      status: 404,
      headers: { 'retry-after': '1' },
      body: { error: { kind: 'unknown-session', message: 'no such session', id: 'x' } },
    });
    const internal = errorAnswer(new Error('database password is hunter2'));
    expect(internal.status).toBe(500);
    expect(JSON.stringify(internal.body)).not.toContain('hunter2');
  });
});
