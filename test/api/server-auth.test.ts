// Every route of the usage API against every way a request can fail authentication or
// authorization, through a real HTTP server on 127.0.0.1, in both modes: tokens file, and
// JWTs verified against a JWKS this test serves on 127.0.0.1 (keys made with jose). Then the
// subject narrowing, compared with what an unscoped token gets when it names the subjects,
// and a fuzz of the Authorization header.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type CryptoKey, type JWK, type JWTPayload, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ReadModel } from '../../src/api/read-model.js';
import { API_ROUTES, type ApiServer, type Freshness, startApiServer } from '../../src/api/server.js';
import { AUTH_ERROR_KINDS } from '../../src/auth/auth-error.js';
import { type Authenticator, createAuthenticator } from '../../src/auth/authenticator.js';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { type AggregateCoordinates, type UsageAggregate, addMeasurement, aggregateKey } from '../../src/usage/aggregation.js';
import { Decimal } from '../../src/usage/decimal.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { windowEnd, windowStart } from '../../src/usage/windows.js';

const NOV_1 = Date.UTC(2026, 10, 1);
const ISSUER = 'https://login.example.test/realms/ordo';
const AUDIENCE = 'ordo-api';
const SUBJECTS_CLAIM = 'ordo_subjects';

const tokensMeter: Meter = {
  slug: 'llm-tokens',
  description: undefined,
  eventTypes: ['llm.completion'],
  aggregation: 'SUM',
  valueProperty: { kind: 'value' },
  groupBy: { model: 'model' },
  windows: ['HOUR', 'DAY'],
};
const usersMeter: Meter = {
  slug: 'active-users',
  description: undefined,
  eventTypes: ['llm.completion'],
  aggregation: 'UNIQUE_COUNT',
  valueProperty: { kind: 'dimension', name: 'user' },
  groupBy: {},
  windows: ['DAY'],
};
const meters = new MeterCatalog([tokensMeter, usersMeter]);
const SUBJECTS = ['acme', 'globex', 'team/1', 'team/2', 'teamster'];

/** Each subject uses two models over two hours, and has one active user per day. */
function readModel(): ReadModel {
  const model = new ReadModel(meters);
  const latest = new Map<string, UsageAggregate>();
  let n = 0;
  for (const [s, subject] of SUBJECTS.entries()) {
    for (const [hour, modelName, value] of [[0, 'gpt', `${s + 1}.5`], [1, 'claude', `${10 * (s + 1)}`], [1, 'gpt', '1']] as const) {
      const time = NOV_1 + hour * 3_600_000 + s * 1000;
      for (const meter of meters.meters) {
        for (const size of meter.windows) {
          const start = windowStart(time, size);
          const at: AggregateCoordinates = {
            meter: meter.slug,
            aggregation: meter.aggregation,
            subject,
            groupBy: meter.slug === 'llm-tokens' ? { model: modelName } : {},
            windowSize: size,
            windowStart: start,
            windowEnd: windowEnd(start, size),
          };
          const key = aggregateKey(at);
          const unique = meter.aggregation === 'UNIQUE_COUNT';
          const previous = latest.get(key);
          const next = addMeasurement(previous, at, {
            value: unique ? undefined : Decimal.parse(value),
            newMember: unique && previous === undefined,
            eventTime: time,
            orderTime: BigInt(n++),
            orderNode: 'n',
          });
          latest.set(key, next);
          model.apply(key, next);
        }
      }
    }
  }
  return model;
}

const FRESH: Freshness = { caughtUp: true, lagRecords: 0, partitions: [] };
const RANGE = 'from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z';
/** One request per route (API_ROUTES), a usage query with no subject filter. */
const ROUTES: Record<(typeof API_ROUTES)[number], string> = {
  '/v1/meters': '/v1/meters',
  '/v1/meters/{slug}': '/v1/meters/llm-tokens',
  '/v1/meters/{slug}/usage': `/v1/meters/llm-tokens/usage?${RANGE}`,
};

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: { error?: { kind: string; message: string } } & Record<string, unknown>;
}

async function call(base: string, path: string, authorization?: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { headers: authorization === undefined ? {} : { authorization } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: JSON.parse(text) as Answer['body'] };
}

async function serve(auth: Authenticator): Promise<{ server: ApiServer; base: string }> {
  const server = await startApiServer({ port: 0, host: '127.0.0.1', meters, readModel: readModel(), freshness: () => FRESH, auth });
  return { server, base: `http://127.0.0.1:${server.port}` };
}

/** What every refusal must look like, whatever the route. */
function expectRefusal(answer: Answer, status: number, kind: string, secret: string | undefined): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers.get('content-type')).toBe('application/json');
  expect(Object.keys(answer.body)).toEqual(['error']);
  expect(answer.body.error?.kind).toBe(kind);
  expect(typeof answer.body.error?.message).toBe('string');
  const challenge = answer.headers.get('www-authenticate');
  if (status === 401) expect(challenge).toMatch(/^Bearer realm="ordo"/);
  if (kind === 'forbidden-scope') expect(challenge).toBe('Bearer realm="ordo", error="insufficient_scope", scope="read"');
  if (kind === 'forbidden-subject') expect(challenge).toBeNull();
  if (secret !== undefined && secret !== '') {
    expect(answer.text).not.toContain(secret);
    expect(challenge ?? '').not.toContain(secret);
  }
}

// ---------------------------------------------------------------- tokens file

const TOKENS = {
  reader: 'ordo_reader_4m7TzVq2cXKp0aE9sLrW1yHbN8uGdF3o',
  admin: 'ordo_admin_Qh2Kx9vB1nZr6TcW3sLp0mYdE8aJfU4g',
  acme: 'ordo_portal_acme_V0bN7sXq3cLk9ZpR2tWm6yHd1eGa5uF',
  team: 'ordo_portal_team_J8dK2mQx5vZb1nLr7tWc0sYp4eHa9uG',
  unknown: 'ordo_unknown_P3nX8bV1cZq6mL0kR9tW2sYd7eHa5uJf',
};

describe('usage API with ORDO_API_AUTH=token', () => {
  let server: ApiServer;
  let base: string;
  let auth: Authenticator;

  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-api-tokens-')), 'tokens.yaml');
    writeFileSync(
      file,
      [
        'tokens:',
        `  - {name: reader, sha256: ${sha256Hex(TOKENS.reader)}, scopes: [read]}`,
        `  - {name: admin, sha256: ${sha256Hex(TOKENS.admin)}, scopes: [admin]}`,
        `  - {name: portal-acme, sha256: ${sha256Hex(TOKENS.acme)}, scopes: [read], subjects: [acme]}`,
        `  - {name: portal-team, sha256: ${sha256Hex(TOKENS.team)}, scopes: [read], subjects: ["team/*"]}`,
        '',
      ].join('\n'),
    );
    auth = createAuthenticator({ mode: 'token', tokensFile: file }, { reloadIntervalMs: 0 });
    ({ server, base } = await serve(auth));
  });

  afterAll(async () => {
    auth.close();
    await server.close();
  });

  const refusals: [string, string | undefined, number, string][] = [
    ['no Authorization header', undefined, 401, 'unauthenticated'],
    ['an empty Authorization header', '', 401, 'unauthenticated'],
    ['Basic credentials', `Basic ${Buffer.from(`u:${TOKENS.reader}`).toString('base64')}`, 401, 'unauthenticated'],
    ['the token without "Bearer"', TOKENS.reader, 401, 'unauthenticated'],
    ['a wrong token', `Bearer ${TOKENS.unknown}`, 401, 'invalid-token'],
    ['a valid token cut short', `Bearer ${TOKENS.reader.slice(0, -1)}`, 401, 'invalid-token'],
    ["a valid token's sha256", `Bearer ${sha256Hex(TOKENS.reader)}`, 401, 'invalid-token'],
    ['a malformed bearer token', `Bearer ${TOKENS.reader} extra`, 401, 'invalid-token'],
  ];
  for (const route of API_ROUTES) {
    it.each(refusals)(`${route}: %s is refused`, async (_case, header, status, kind) => {
      expectRefusal(await call(base, ROUTES[route], header), status, kind, header?.replace(/^\S+ /, ''));
    });

    it.each([
      ['reader', TOKENS.reader],
      ['admin (implies read)', TOKENS.admin],
      ['portal-acme', TOKENS.acme],
    ])(`${route}: %s is answered 200`, async (_case, token) => {
      const answer = await call(base, ROUTES[route], `Bearer ${token}`);
      expect(answer.status, answer.text).toBe(200);
    });
  }

  it('/v1/meters/{slug}/usage: a scoped token asking for another subject, or one of its own and another, answers 403 forbidden-subject', async () => {
    for (const query of ['subject=globex', 'subject=acme&subject=globex', 'subject=team%2F1']) {
      expectRefusal(await call(base, `/v1/meters/llm-tokens/usage?${RANGE}&${query}`, `Bearer ${TOKENS.acme}`), 403, 'forbidden-subject', TOKENS.acme);
    }
    expectRefusal(await call(base, `/v1/meters/llm-tokens/usage?${RANGE}&subject=teamster`, `Bearer ${TOKENS.team}`), 403, 'forbidden-subject', TOKENS.team);
  });

  it('authentication comes before everything else: an unknown path or method without a token is 401, not 404/405', async () => {
    expectRefusal(await call(base, '/nope'), 401, 'unauthenticated', undefined);
    const post = await fetch(`${base}/v1/meters`, { method: 'POST' });
    expect(post.status).toBe(401);
    expect((await call(base, '/nope', `Bearer ${TOKENS.reader}`)).status).toBe(404);
  });

  describe('subject narrowing', () => {
    const usage = (query: string, token: string): Promise<Answer> => call(base, `/v1/meters/llm-tokens/usage?${RANGE}&${query}`, `Bearer ${token}`);

    it('answers a scoped token without a subject filter exactly as an unscoped token naming its subjects', async () => {
      for (const shape of ['', 'groupBy=model', 'windowSize=HOUR', 'windowSize=HOUR&groupBy=subject,model', 'filter%5Bmodel%5D=gpt']) {
        const mine = await usage(shape, TOKENS.acme);
        const named = await usage(`${shape}&subject=acme`, TOKENS.admin);
        expect(mine.status).toBe(200);
        expect(mine.body).toEqual(named.body);
        const team = await usage(shape, TOKENS.team);
        const teamNamed = await usage(`${shape}&subject=team/1&subject=team/2`, TOKENS.admin);
        expect(team.status).toBe(200);
        expect(team.body).toEqual(teamNamed.body);
      }
    });

    it('shows only its own subjects under groupBy=subject, and rows keep subject null without it', async () => {
      const rows = (answer: Answer): { subject: string | null }[] => answer.body.totals as { subject: string | null }[];
      expect(rows(await usage('groupBy=subject', TOKENS.team)).map((r) => r.subject)).toEqual(['team/1', 'team/2']);
      expect(rows(await usage('groupBy=subject', TOKENS.acme)).map((r) => r.subject)).toEqual(['acme']);
      expect(rows(await usage('groupBy=subject', TOKENS.admin)).map((r) => r.subject)).toEqual(SUBJECTS);
      expect(rows(await usage('', TOKENS.team))).toEqual([{ windowStart: null, windowEnd: null, subject: null, groupBy: {}, value: '80', count: 6 }]);
    });

    it('its own subject named explicitly is answered as usual', async () => {
      expect((await usage('subject=team/2', TOKENS.team)).body).toEqual((await usage('subject=team/2', TOKENS.admin)).body);
    });

    it('lets a one-subject token ask a distinct count without naming itself; a prefix token must group by subject', async () => {
      const path = `/v1/meters/active-users/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z`;
      const mine = await call(base, path, `Bearer ${TOKENS.acme}`);
      expect(mine.status, mine.text).toBe(200);
      expect(mine.body).toEqual((await call(base, `${path}&subject=acme`, `Bearer ${TOKENS.admin}`)).body);
      const team = await call(base, path, `Bearer ${TOKENS.team}`);
      expect(team.status).toBe(400);
      expect(team.body.error?.kind).toBe('not-exact');
      const grouped = await call(base, `${path}&groupBy=subject`, `Bearer ${TOKENS.team}`);
      expect((grouped.body.data as { subject: string }[]).map((r) => r.subject)).toEqual(['team/1', 'team/2']);
    });
  });
});

// ---------------------------------------------------------------- JWTs

describe('usage API with ORDO_API_AUTH=jwt', () => {
  let jwks: Server;
  let server: ApiServer;
  let base: string;
  let signingKey: CryptoKey;
  let strangerKey: CryptoKey;
  let jwksFetches = 0;
  let jwksUrl: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    const stranger = await generateKeyPair('RS256');
    signingKey = pair.privateKey;
    strangerKey = stranger.privateKey;
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = createServer((_req, res) => {
      jwksFetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
    const auth = createAuthenticator({
      mode: 'jwt',
      jwt: { issuer: ISSUER, audiences: [AUDIENCE, 'other-api'], jwksUrl, algorithms: ['RS256'], clockToleranceMs: 5_000, subjectsClaim: SUBJECTS_CLAIM, scopePrefix: '' },
    });
    ({ server, base } = await serve(auth));
  });

  afterAll(async () => {
    await server.close();
    await new Promise((resolve) => jwks.close(resolve));
  });

  const now = (): number => Math.floor(Date.now() / 1000);

  async function jwt(claims: JWTPayload = {}, options: { key?: CryptoKey; kid?: string; omit?: string[] } = {}): Promise<string> {
    const payload: JWTPayload = { iss: ISSUER, aud: AUDIENCE, sub: 'svc-billing', scope: 'openid read', exp: now() + 300, iat: now(), [SUBJECTS_CLAIM]: '*', ...claims };
    for (const name of options.omit ?? []) delete payload[name];
    return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: options.kid ?? 'k1' }).sign(options.key ?? signingKey);
  }

  const CASES: [string, () => Promise<string | undefined>, number, string][] = [
    ['no Authorization header', () => Promise.resolve(undefined), 401, 'unauthenticated'],
    ['a token that is not a JWT', () => Promise.resolve('Bearer ordo_not_a_jwt'), 401, 'invalid-token'],
    ['an expired JWT', async () => `Bearer ${await jwt({ exp: now() - 60 })}`, 401, 'token-expired'],
    ['a JWT for another audience', async () => `Bearer ${await jwt({ aud: 'someone-else' })}`, 401, 'invalid-token'],
    ['a JWT from another issuer', async () => `Bearer ${await jwt({ iss: 'https://evil.example.test' })}`, 401, 'invalid-token'],
    ['a JWT signed by a key not in the JWKS', async () => `Bearer ${await jwt({}, { key: strangerKey })}`, 401, 'invalid-token'],
    ['a JWT naming an unknown key id', async () => `Bearer ${await jwt({}, { key: strangerKey, kid: 'k2' })}`, 401, 'invalid-token'],
    ['a JWT without exp', async () => `Bearer ${await jwt({}, { omit: ['exp'] })}`, 401, 'invalid-token'],
    ['a JWT not valid yet', async () => `Bearer ${await jwt({ nbf: now() + 600 })}`, 401, 'invalid-token'],
    ['an HS256 JWT (algorithm not allowed)', async () => `Bearer ${await new SignJWT({ iss: ISSUER, aud: AUDIENCE, exp: now() + 60, scope: 'read' }).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32))}`, 401, 'invalid-token'],
    ['a JWT with its signature removed', async () => `Bearer ${(await jwt()).split('.').slice(0, 1).join('')}.${(await jwt()).split('.')[1]}.`, 401, 'invalid-token'],
    ['a JWT with a tampered payload', async () => {
      const [h, , s] = (await jwt()).split('.');
      const payload = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: now() + 300, scope: 'admin' })).toString('base64url');
      return `Bearer ${h}.${payload}.${s}`;
    }, 401, 'invalid-token'],
    ['a JWT without the read scope', async () => `Bearer ${await jwt({ scope: 'openid profile' })}`, 403, 'forbidden-scope'],
    ['a JWT with read under another name', async () => `Bearer ${await jwt({ scope: 'ordo:read' })}`, 403, 'forbidden-scope'],
  ];

  for (const route of API_ROUTES) {
    it.each(CASES)(`${route}: %s is refused`, async (_case, header, status, kind) => {
      const authorization = await header();
      expectRefusal(await call(base, ROUTES[route], authorization), status, kind, authorization?.replace(/^\S+ /, ''));
    });

    it.each([
      ['scope "read"', () => ({})],
      ['scp ["admin"]', () => ({ scope: undefined, scp: ['admin'] })],
      ['scp "profile read" (a string)', () => ({ scope: undefined, scp: 'profile read' })],
      ['a second accepted audience', () => ({ aud: ['x', 'other-api'] })],
      // Claims made when the test runs: the tolerance is 5 s.
      ['an exp just past, within the clock tolerance', () => ({ exp: now() - 2 })],
      ['subjects claim [acme]', () => ({ [SUBJECTS_CLAIM]: ['acme'] })],
    ] as [string, () => JWTPayload][])(`${route}: a JWT with %s is answered 200`, async (_case, claims) => {
      const answer = await call(base, ROUTES[route], `Bearer ${await jwt(claims())}`);
      expect(answer.status, answer.text).toBe(200);
    });
  }

  it('/v1/meters/{slug}/usage: scopes JWTs by the subjects claim, and a JWT without it sees no subject', async () => {
    const acme = `Bearer ${await jwt({ [SUBJECTS_CLAIM]: ['acme', 'team/*'] })}`;
    expectRefusal(await call(base, `/v1/meters/llm-tokens/usage?${RANGE}&subject=globex`, acme), 403, 'forbidden-subject', undefined);
    const grouped = await call(base, `/v1/meters/llm-tokens/usage?${RANGE}&groupBy=subject`, acme);
    expect((grouped.body.totals as { subject: string }[]).map((r) => r.subject)).toEqual(['acme', 'team/1', 'team/2']);
    const none = `Bearer ${await jwt({}, { omit: [SUBJECTS_CLAIM] })}`;
    expectRefusal(await call(base, `/v1/meters/llm-tokens/usage?${RANGE}`, none), 403, 'forbidden-subject', undefined);
    expect((await call(base, '/v1/meters', none)).status).toBe(200);
    const malformed = `Bearer ${await jwt({ [SUBJECTS_CLAIM]: [42] })}`;
    expectRefusal(await call(base, `/v1/meters/llm-tokens/usage?${RANGE}`, malformed), 401, 'invalid-token', undefined);
  });

  it('reads namespaced scopes with ORDO_API_JWT_SCOPE_PREFIX (ordo:read is read; a bare read is not)', async () => {
    const prefixed = createAuthenticator({
      mode: 'jwt',
      jwt: { issuer: ISSUER, audiences: [AUDIENCE], jwksUrl, algorithms: ['RS256'], clockToleranceMs: 0, subjectsClaim: undefined, scopePrefix: 'ordo:' },
    });
    const { server: other, base: otherBase } = await serve(prefixed);
    try {
      expect((await call(otherBase, '/v1/meters', `Bearer ${await jwt({ scope: 'openid ordo:read' })}`)).status).toBe(200);
      expectRefusal(await call(otherBase, '/v1/meters', `Bearer ${await jwt({ scope: 'read' })}`), 403, 'forbidden-scope', undefined);
    } finally {
      await other.close();
    }
  });

  it('fetched the JWKS once, not once per request', () => {
    expect(jwksFetches).toBeGreaterThanOrEqual(1);
    // A token with an unknown kid may trigger one refetch; never one per request.
    expect(jwksFetches).toBeLessThanOrEqual(3);
  });

  it('answers 503 auth-unavailable (not 401, not 500) while the JWKS cannot be fetched', async () => {
    const down = createAuthenticator({
      mode: 'jwt',
      jwt: { issuer: ISSUER, audiences: [AUDIENCE], jwksUrl: 'http://127.0.0.1:9/jwks', algorithms: ['RS256'], clockToleranceMs: 0, subjectsClaim: undefined, scopePrefix: '' },
    });
    const { server: other, base: otherBase } = await serve(down);
    try {
      const answer = await call(otherBase, '/v1/meters', `Bearer ${await jwt()}`);
      expect(answer.status).toBe(503);
      expect(answer.body.error?.kind).toBe('auth-unavailable');
      expect(answer.headers.get('retry-after')).toBe('5');
    } finally {
      await other.close();
    }
  });

  describe('fuzzed Authorization headers', () => {
    const HEADER_CHARS = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 });
    const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), maxLength: 120 });
    const headers = fc.oneof(
      HEADER_CHARS,
      HEADER_CHARS.map((s) => `Bearer ${s}`),
      fc.tuple(b64url, b64url, b64url).map(([a, b, c]) => `Bearer ${a}.${b}.${c}`),
      fc.tuple(fc.jsonValue(), fc.jsonValue()).map(([h, p]) => `Bearer ${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.c2ln`),
      fc.record({ alg: fc.constantFrom('RS256', 'none', 'HS256', 'ES256', ''), kid: fc.constantFrom('k1', 'k2', ''), typ: fc.constant('JWT') }).map(
        (h) => `Bearer ${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: now() + 60, scope: 'read' })).toString('base64url')}.`,
      ),
    );

    it('never answers 5xx nor anything but a documented 401 (jwt mode)', async () => {
      await fc.assert(
        fc.asyncProperty(headers, fc.constantFrom(...Object.values(ROUTES)), async (header, path) => {
          const answer = await call(base, path, header.trim() === '' ? undefined : header);
          expect(answer.status, `${header} -> ${answer.text}`).toBe(401);
          expect(AUTH_ERROR_KINDS).toContain(answer.body.error?.kind);
          expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="ordo"/);
        }),
        { numRuns: 150 },
      );
    });
  });
});

describe('usage API with ORDO_API_AUTH=token, fuzzed Authorization headers', () => {
  it('never answers 5xx; a mutation of a valid token is refused 401', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-api-fuzz-')), 'tokens.yaml');
    writeFileSync(file, `tokens:\n  - {name: reader, sha256: ${sha256Hex(TOKENS.reader)}, scopes: [read]}\n`);
    const auth = createAuthenticator({ mode: 'token', tokensFile: file }, { reloadIntervalMs: 0 });
    const { server, base } = await serve(auth);
    try {
      const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });
      const mutated = fc.tuple(fc.nat(TOKENS.reader.length - 1), fc.constantFrom(...'aZ0-_.~+/=')).map(([i, c]) => TOKENS.reader.slice(0, i) + c + TOKENS.reader.slice(i + 1)).filter((t) => t !== TOKENS.reader);
      await fc.assert(
        fc.asyncProperty(fc.oneof(printable, printable.map((s) => `Bearer ${s}`), mutated.map((t) => `Bearer ${t}`)), async (header) => {
          const answer = await call(base, ROUTES['/v1/meters/{slug}/usage'], header.trim() === '' ? undefined : header);
          expect(answer.status, `${header} -> ${answer.text}`).toBe(401);
          expect(['unauthenticated', 'invalid-token']).toContain(answer.body.error?.kind);
        }),
        { numRuns: 200 },
      );
    } finally {
      auth.close();
      await server.close();
    }
  });
});

describe('docs/openapi.yaml documents authentication', () => {
  interface Spec {
    security: Record<string, string[]>[];
    paths: Record<string, { get: { responses: Record<string, unknown> } }>;
    components: { securitySchemes: Record<string, { type: string }>; schemas: { Error: { properties: { error: { properties: { kind: { examples: string[] } } } } } } };
  }
  const spec = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8')) as Spec;

  it('names both security schemes, requires scope read, and lists 401/403/503 on every route', () => {
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(['oidc', 'tokens']);
    expect(spec.security).toEqual([{ tokens: ['read'] }, { oidc: ['read'] }]);
    for (const route of API_ROUTES) expect(Object.keys(spec.paths[route]?.get.responses ?? {}), route).toEqual(expect.arrayContaining(['401', '403', '503']));
  });

  it('lists every auth error kind', () => {
    expect(spec.components.schemas.Error.properties.error.properties.kind.examples).toEqual(expect.arrayContaining([...AUTH_ERROR_KINDS]));
  });
});
