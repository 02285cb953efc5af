import type { ApiAuthConfig, ApiAuthMode } from '../config/api-auth.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import { bearerToken } from './authorization-header.js';
import { JwtVerifier } from './jwt-verifier.js';
import type { Principal } from './principal.js';
import { SCOPES } from './scopes.js';
import { SubjectScope } from './subject-scope.js';
import { TokenStore } from './token-store.js';

/** Every role with an HTTP edge asks this who is calling (then checks scopes and subjects). */
export interface Authenticator {
  readonly mode: ApiAuthMode;
  /** The caller of a request with this Authorization header; throws AuthError (401/503). */
  authenticate(authorization: string | undefined): Promise<Principal>;
  /** Stops the tokens file reload timer. */
  close(): void;
}

/** ORDO_API_AUTH=none: everyone may do everything, as before authentication existed. */
export const ANONYMOUS: Principal = { name: 'anonymous', method: 'none', scopes: new Set(SCOPES), subjects: SubjectScope.ALL };

export const noAuthentication: Authenticator = {
  mode: 'none',
  authenticate: () => Promise.resolve(ANONYMOUS),
  close: () => undefined,
};

export interface AuthenticatorOptions {
  logger?: Logger;
  /** Tokens file reload interval (default 1,000 ms). */
  reloadIntervalMs?: number;
}

/** Builds the configured authenticator; a missing or invalid tokens file is a ConfigError. */
export function createAuthenticator(config: ApiAuthConfig, options: AuthenticatorOptions = {}): Authenticator {
  const logger = options.logger ?? noopLogger;
  if (config.mode === 'none') return noAuthentication;
  if (config.mode === 'token') {
    const store = new TokenStore(config.tokensFile, { logger, reloadIntervalMs: options.reloadIntervalMs });
    return {
      mode: 'token',
      authenticate: (authorization) => Promise.resolve().then(() => store.authenticate(bearerToken(authorization))),
      close: () => store.close(),
    };
  }
  const verifier = new JwtVerifier(config.jwt, { logger });
  return {
    mode: 'jwt',
    authenticate: async (authorization) => verifier.authenticate(bearerToken(authorization)),
    close: () => undefined,
  };
}
