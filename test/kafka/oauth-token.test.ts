import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import { ConfigError, TransientError } from '../../src/errors.js';
import { ClientCredentialsTokenProvider, type FetchLike } from '../../src/kafka/oauth-token.js';

const SECRET = 'cl13nt-s3cret';
const settings = { tokenEndpointUrl: 'https://idp.example.com/token', clientId: 'ordo app', clientSecret: new Secret(SECRET, 'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET'), scope: 'kafka' };

/** A fake token endpoint: answers with `reply(n)` for the n-th request and records what it got. */
function endpoint(reply: (n: number) => { status: number; body: unknown }) {
  const requests: { headers: Record<string, string>; body: string }[] = [];
  const fetch: FetchLike = async (_url, init) => {
    requests.push({ headers: init.headers, body: init.body });
    const { status, body } = reply(requests.length);
    await Promise.resolve();
    return { status, json: () => Promise.resolve(body) };
  };
  return { fetch, requests };
}

describe('ClientCredentialsTokenProvider', () => {
  it('sends the client credentials grant with Basic client authentication (RFC 6749 2.3.1)', async () => {
    const idp = endpoint(() => ({ status: 200, body: { access_token: 't1', expires_in: 300, token_type: 'Bearer' } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch });
    expect(await provider.provide()).toEqual({ value: 't1' });
    const request = idp.requests[0]!;
    expect(new URLSearchParams(request.body).get('grant_type')).toBe('client_credentials');
    expect(new URLSearchParams(request.body).get('scope')).toBe('kafka');
    expect(Buffer.from(request.headers.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe(`ordo%20app:${SECRET}`);
  });

  it('hands out the cached token until 80 % of its lifetime, then fetches a new one before it expires', async () => {
    let now = 1_000_000;
    const idp = endpoint((n) => ({ status: 200, body: { access_token: `t${n}`, expires_in: 300 } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch, now: () => now });
    expect(await provider.token()).toBe('t1');
    now += 239_000;
    expect(await provider.token()).toBe('t1');
    now += 2_000; // 241 s of 300: refreshed while the old token is still valid
    expect(await provider.token()).toBe('t2');
    expect(idp.requests).toHaveLength(2);
  });

  it('refreshes a short-lived token at half its lifetime', async () => {
    let now = 0;
    const idp = endpoint((n) => ({ status: 200, body: { access_token: `t${n}`, expires_in: 100 } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch, now: () => now });
    await provider.token();
    now = 49_000;
    expect(await provider.token()).toBe('t1');
    now = 51_000;
    expect(await provider.token()).toBe('t2');
  });

  it('refreshes a long-lived token a minute or more before expiry', async () => {
    let now = 0;
    const idp = endpoint((n) => ({ status: 200, body: { access_token: `t${n}`, expires_in: 3600 } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch, now: () => now });
    await provider.token();
    now = 2_879_000; // 80 % of an hour, less a second
    expect(await provider.token()).toBe('t1');
    now = 2_881_000;
    expect(await provider.token()).toBe('t2');
  });

  it('shares one request between concurrent connections', async () => {
    const idp = endpoint((n) => ({ status: 200, body: { access_token: `t${n}`, expires_in: 300 } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch });
    expect(await Promise.all([provider.token(), provider.token(), provider.token()])).toEqual(['t1', 't1', 't1']);
    expect(idp.requests).toHaveLength(1);
  });

  it('a refused client is a ConfigError naming the variable; an unavailable endpoint is transient; neither message has the secret', async () => {
    const refused = new ClientCredentialsTokenProvider(settings, { fetch: endpoint(() => ({ status: 401, body: { error: 'invalid_client' } })).fetch });
    const error = await refused.token().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET');
    expect((error as Error).message).not.toContain(SECRET);

    const down = new ClientCredentialsTokenProvider(settings, { fetch: endpoint(() => ({ status: 503, body: {} })).fetch });
    await expect(down.token()).rejects.toBeInstanceOf(TransientError);
    const unreachable = new ClientCredentialsTokenProvider(settings, {
      fetch: () => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } })),
    });
    const e2 = await unreachable.token().catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(TransientError);
    expect((e2 as Error).message).toContain('ECONNREFUSED');
    const scope = new ClientCredentialsTokenProvider(settings, { fetch: endpoint(() => ({ status: 400, body: { error: 'invalid_scope' } })).fetch });
    await expect(scope.token()).rejects.toMatchObject({ variable: 'KAFKA_SASL_OAUTHBEARER_SCOPE' });
  });

  it('asks again after a failure (no failure is cached)', async () => {
    const idp = endpoint((n) => (n === 1 ? { status: 500, body: {} } : { status: 200, body: { access_token: 'ok', expires_in: 60 } }));
    const provider = new ClientCredentialsTokenProvider(settings, { fetch: idp.fetch });
    await expect(provider.token()).rejects.toBeInstanceOf(TransientError);
    expect(await provider.token()).toBe('ok');
  });
});
