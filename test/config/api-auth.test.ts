import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/config/api-auth.js';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { catchError } from '../support/unit/fixtures.js';

const JWT = {
  ORDO_API_AUTH: 'jwt',
  ORDO_API_JWT_ISSUER: 'https://login.example.com/realms/ordo',
  ORDO_API_JWT_AUDIENCE: 'ordo-api',
  ORDO_API_JWT_JWKS_URL: 'https://login.example.com/realms/ordo/protocol/openid-connect/certs',
};

function refused(env: Record<string, string>, variable: string, message: RegExp): void {
  const error = catchError(() => loadConfig(env));
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).variable).toBe(variable);
  expect((error as ConfigError).message).toMatch(message);
}

describe('API authentication configuration', () => {
  it('defaults to none, listening on 0.0.0.0 as before', () => {
    const config = loadConfig({});
    expect(config.apiAuth).toEqual({ mode: 'none' });
    expect(config.apiHost).toBe('0.0.0.0');
    expect(config.metricsHost).toBe('0.0.0.0');
  });

  it('reads token mode with its tokens file', () => {
    expect(loadConfig({ ORDO_API_AUTH: 'token', ORDO_API_TOKENS_FILE: '/etc/ordo/tokens/tokens.yaml' }).apiAuth).toEqual({ mode: 'token', tokensFile: '/etc/ordo/tokens/tokens.yaml' });
  });

  it('reads jwt mode with its defaults', () => {
    expect(loadConfig(JWT).apiAuth).toEqual({
      mode: 'jwt',
      jwt: {
        issuer: JWT.ORDO_API_JWT_ISSUER,
        audiences: ['ordo-api'],
        jwksUrl: JWT.ORDO_API_JWT_JWKS_URL,
        algorithms: ['RS256', 'ES256'],
        clockToleranceMs: 30_000,
        subjectsClaim: undefined,
        scopePrefix: '',
      },
    });
  });

  it('reads every jwt setting', () => {
    const config = loadConfig({
      ...JWT,
      ORDO_API_JWT_AUDIENCE: 'ordo-api, billing',
      ORDO_API_JWT_JWKS_URL: 'http://127.0.0.1:8089/jwks',
      ORDO_API_JWT_ALGORITHMS: 'PS256,EdDSA',
      ORDO_API_JWT_CLOCK_TOLERANCE_MS: '0',
      ORDO_API_JWT_SUBJECTS_CLAIM: 'ordo_subjects',
      ORDO_API_JWT_SCOPE_PREFIX: 'ordo:',
    });
    expect(config.apiAuth).toMatchObject({
      jwt: { audiences: ['ordo-api', 'billing'], jwksUrl: 'http://127.0.0.1:8089/jwks', algorithms: ['PS256', 'EdDSA'], clockToleranceMs: 0, subjectsClaim: 'ordo_subjects', scopePrefix: 'ordo:' },
    });
  });

  it.each([
    [{ ORDO_API_AUTH: 'tokens' }, 'ORDO_API_AUTH', /"tokens" is not one of none, token, jwt/],
    [{ ORDO_API_AUTH: 'token' }, 'ORDO_API_TOKENS_FILE', /required when ORDO_API_AUTH=token/],
    [{ ORDO_API_TOKENS_FILE: '/t.yaml' }, 'ORDO_API_TOKENS_FILE', /is set, but ORDO_API_AUTH is none/],
    [{ ORDO_API_AUTH: 'jwt', ORDO_API_TOKENS_FILE: '/t.yaml' }, 'ORDO_API_TOKENS_FILE', /is set, but ORDO_API_AUTH is jwt/],
    [{ ORDO_API_AUTH: 'token', ORDO_API_TOKENS_FILE: '/t.yaml', ORDO_API_JWT_ISSUER: 'x' }, 'ORDO_API_JWT_ISSUER', /is set, but ORDO_API_AUTH is token/],
    [{ ...JWT, ORDO_API_JWT_ISSUER: '' }, 'ORDO_API_JWT_ISSUER', /required when ORDO_API_AUTH=jwt/],
    [{ ...JWT, ORDO_API_JWT_AUDIENCE: '' }, 'ORDO_API_JWT_AUDIENCE', /required when ORDO_API_AUTH=jwt/],
    [{ ...JWT, ORDO_API_JWT_AUDIENCE: ' , ' }, 'ORDO_API_JWT_AUDIENCE', /at least one audience/],
    [{ ...JWT, ORDO_API_JWT_JWKS_URL: '' }, 'ORDO_API_JWT_JWKS_URL', /required when ORDO_API_AUTH=jwt/],
    [{ ...JWT, ORDO_API_JWT_JWKS_URL: 'not a url' }, 'ORDO_API_JWT_JWKS_URL', /is not a URL/],
    [{ ...JWT, ORDO_API_JWT_JWKS_URL: 'http://login.example.com/jwks' }, 'ORDO_API_JWT_JWKS_URL', /must be https \(http only on a loopback address\)/],
    [{ ...JWT, ORDO_API_JWT_JWKS_URL: 'file:///etc/jwks.json' }, 'ORDO_API_JWT_JWKS_URL', /must be https/],
    [{ ...JWT, ORDO_API_JWT_ALGORITHMS: 'RS256,HS256' }, 'ORDO_API_JWT_ALGORITHMS', /"HS256" is not one of .* \(asymmetric algorithms only\)/],
    [{ ...JWT, ORDO_API_JWT_ALGORITHMS: 'none' }, 'ORDO_API_JWT_ALGORITHMS', /"none" is not one of/],
    [{ ...JWT, ORDO_API_JWT_CLOCK_TOLERANCE_MS: '-1' }, 'ORDO_API_JWT_CLOCK_TOLERANCE_MS', /out of range/],
    [{ ...JWT, ORDO_API_JWT_SUBJECTS_CLAIM: 'a claim' }, 'ORDO_API_JWT_SUBJECTS_CLAIM', /is not a claim name/],
    [{ ORDO_API_HOST: 'not a host' }, 'ORDO_API_HOST', /is not an IP address or host name/],
    [{ ORDO_METRICS_HOST: 'http://0.0.0.0' }, 'ORDO_METRICS_HOST', /is not an IP address or host name/],
  ])('refuses %j naming %s', (env, variable, message) => {
    refused(env, variable, message);
  });

  it('accepts IPv4, IPv6 and host names to listen on', () => {
    for (const host of ['127.0.0.1', '::', '::1', 'fe80::1', 'localhost', 'ordo-api-0.ordo.svc.cluster.local']) {
      expect(loadConfig({ ORDO_API_HOST: host, ORDO_METRICS_HOST: host })).toMatchObject({ apiHost: host, metricsHost: host });
    }
  });

  it('knows which listen addresses are loopback-only', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'ordo.local', '128.0.0.1']) expect(isLoopbackHost(host)).toBe(false);
  });
});
