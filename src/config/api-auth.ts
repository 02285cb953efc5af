import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import type { EnvReader } from './env.js';

export const API_AUTH_MODES = ['none', 'token', 'jwt'] as const;
export type ApiAuthMode = (typeof API_AUTH_MODES)[number];

/** Asymmetric JWS algorithms only: the keys come from a public JWKS, never a shared secret. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
const DEFAULT_JWT_ALGORITHMS = ['RS256', 'ES256'];

export interface JwtAuthConfig {
  /** Exact `iss` a token must carry. */
  issuer: string;
  /** A token's `aud` must contain one of these. */
  audiences: string[];
  /** The issuer's JSON Web Key Set (https, or http on a loopback address). */
  jwksUrl: string;
  algorithms: string[];
  /** Leeway for exp/nbf/iat, against clock drift between the issuer and Ordo. */
  clockToleranceMs: number;
  /** Claim listing the subjects a token may see; undefined: JWTs are not subject-scoped. */
  subjectsClaim: string | undefined;
  /** Prefix of Ordo's scopes in the scope/scp claim (e.g. `ordo:` for `ordo:read`); '' by default. */
  scopePrefix: string;
}

/** How the `api` role authenticates requests (docs/configuration.md, "API authentication"). */
export type ApiAuthConfig = { mode: 'none' } | { mode: 'token'; tokensFile: string } | { mode: 'jwt'; jwt: JwtAuthConfig };

const JWT_VARIABLES = [
  'ORDO_API_JWT_ISSUER',
  'ORDO_API_JWT_AUDIENCE',
  'ORDO_API_JWT_JWKS_URL',
  'ORDO_API_JWT_ALGORITHMS',
  'ORDO_API_JWT_CLOCK_TOLERANCE_MS',
  'ORDO_API_JWT_SUBJECTS_CLAIM',
  'ORDO_API_JWT_SCOPE_PREFIX',
] as const;
const CLAIM = /^[A-Za-z0-9_.:/-]{1,128}$/;
/** RFC 1123 host names (labels of letters, digits and hyphens). */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * ORDO_API_AUTH and the variables of its mode. A variable of another mode being set is an
 * error: it means the operator believes a protection is on that is not.
 */
export function loadApiAuthConfig(read: EnvReader): ApiAuthConfig {
  const mode = read.oneOf<ApiAuthMode>('ORDO_API_AUTH', 'none', API_AUTH_MODES);
  const tokensFile = read.optionalString('ORDO_API_TOKENS_FILE');
  if (mode !== 'token' && tokensFile !== undefined) {
    throw new ConfigError('ORDO_API_TOKENS_FILE', `is set, but ORDO_API_AUTH is ${mode}: set ORDO_API_AUTH=token to use the tokens file`);
  }
  if (mode !== 'jwt') {
    const stray = JWT_VARIABLES.find((name) => read.optionalString(name) !== undefined);
    if (stray !== undefined) throw new ConfigError(stray, `is set, but ORDO_API_AUTH is ${mode}: set ORDO_API_AUTH=jwt to verify JWTs`);
  }
  if (mode === 'none') return { mode };
  if (mode === 'token') {
    if (tokensFile === undefined) throw new ConfigError('ORDO_API_TOKENS_FILE', 'required when ORDO_API_AUTH=token: the path of the tokens file (YAML or JSON)');
    return { mode, tokensFile };
  }
  const required = (name: (typeof JWT_VARIABLES)[number], what: string): string => {
    const value = read.optionalString(name);
    if (value === undefined) throw new ConfigError(name, `required when ORDO_API_AUTH=jwt: ${what}`);
    return value;
  };
  const issuer = required('ORDO_API_JWT_ISSUER', 'the exact "iss" of accepted tokens, e.g. https://login.example.com/realms/ordo');
  const audiences = required('ORDO_API_JWT_AUDIENCE', 'the "aud" accepted tokens carry (comma-separated for several)')
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (audiences.length === 0) throw new ConfigError('ORDO_API_JWT_AUDIENCE', 'must list at least one audience');
  const jwksUrl = checkJwksUrl(required('ORDO_API_JWT_JWKS_URL', "the issuer's JWKS URL (jwks_uri in its /.well-known/openid-configuration)"));
  const algorithms = read.list('ORDO_API_JWT_ALGORITHMS', DEFAULT_JWT_ALGORITHMS);
  for (const algorithm of algorithms) {
    if (!(JWT_ALGORITHMS as readonly string[]).includes(algorithm)) {
      throw new ConfigError('ORDO_API_JWT_ALGORITHMS', `"${algorithm}" is not one of ${JWT_ALGORITHMS.join(', ')} (asymmetric algorithms only)`);
    }
  }
  const subjectsClaim = read.optionalString('ORDO_API_JWT_SUBJECTS_CLAIM');
  if (subjectsClaim !== undefined && !CLAIM.test(subjectsClaim)) {
    throw new ConfigError('ORDO_API_JWT_SUBJECTS_CLAIM', `"${subjectsClaim}" is not a claim name of [A-Za-z0-9_.:/-]`);
  }
  return {
    mode,
    jwt: {
      issuer,
      audiences,
      jwksUrl,
      algorithms,
      clockToleranceMs: read.int('ORDO_API_JWT_CLOCK_TOLERANCE_MS', 30_000, 0, 600_000),
      subjectsClaim,
      scopePrefix: read.optionalString('ORDO_API_JWT_SCOPE_PREFIX') ?? '',
    },
  };
}

/** A listen address: an IP literal or a host name. */
export function loadBindHost(read: EnvReader, name: string): string {
  const host = read.string(name, '0.0.0.0');
  if (isIP(host) === 0 && !HOST_NAME.test(host)) {
    throw new ConfigError(name, `"${host}" is not an IP address or host name to listen on (e.g. 0.0.0.0, 127.0.0.1, ::)`);
  }
  return host;
}

/** Whether a listen address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || (isIP(h) === 4 && h.startsWith('127.'));
}

function checkJwksUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError('ORDO_API_JWT_JWKS_URL', `"${text}" is not a URL`);
  }
  // Keys fetched over plain HTTP could be swapped by anyone on the path.
  const loopback = isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''));
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new ConfigError('ORDO_API_JWT_JWKS_URL', `"${text}" must be https (http only on a loopback address)`);
  }
  return url.toString();
}
