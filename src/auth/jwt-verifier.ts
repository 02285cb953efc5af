import { type JWTPayload, createRemoteJWKSet, errors, jwtVerify } from 'jose';
import type { JwtAuthConfig } from '../config/api-auth.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import { AuthError } from './auth-error.js';
import type { Principal } from './principal.js';
import { type Scope, isScope } from './scopes.js';
import { SubjectScope } from './subject-scope.js';

export interface JwtVerifierOptions {
  logger?: Logger;
  /** Give up fetching the JWKS after this long (default 5,000 ms). */
  jwksTimeoutMs?: number;
}

/** Answers that mean "this token is not good", not "the key set could not be fetched". */
const TOKEN_FAULTS = new Set([
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code,
  errors.JWSInvalid.code,
  errors.JWTInvalid.code,
  errors.JWSSignatureVerificationFailed.code,
]);

/**
 * OIDC bearer tokens (JWTs) verified by `jose` against the issuer's JWKS: signature with an
 * allowed algorithm, exact issuer, one of the audiences, exp (required) and nbf within the
 * clock tolerance. Scopes come from `scope` or `scp` (a space-separated string or a list),
 * subjects from the configured claim. The key set is cached and refetched when a token names
 * an unknown key id (at most every 30 s), so key rotation needs no restart.
 */
export class JwtVerifier {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;
  private readonly logger: Logger;
  /** The key set could not be fetched at the last try (its error is logged once per outage). */
  private keysDown = false;

  constructor(
    private readonly config: JwtAuthConfig,
    options: JwtVerifierOptions = {},
  ) {
    this.logger = options.logger ?? noopLogger;
    this.keys = createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: options.jwksTimeoutMs ?? 5_000 });
  }

  async authenticate(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.issuer,
        audience: this.config.audiences,
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceMs / 1000,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      throw this.refusal(error);
    }
    if (this.keysDown) this.logger.info('the JWT issuer key set (JWKS) can be fetched again', { url: this.config.jwksUrl });
    this.keysDown = false;
    return {
      name: nameOf(payload),
      method: 'jwt',
      scopes: this.scopesOf(payload),
      subjects: this.subjectsOf(payload),
    };
  }

  private refusal(error: unknown): AuthError {
    if (error instanceof errors.JWTExpired) return new AuthError('token-expired', 'the token has expired');
    if (error instanceof errors.JWTClaimValidationFailed) {
      // The claim name only: its value came from the client.
      return new AuthError('invalid-token', `the token's "${error.claim}" claim is not accepted (${claimProblem(error.claim)})`);
    }
    if (error instanceof errors.JOSEError && TOKEN_FAULTS.has(error.code)) {
      return new AuthError('invalid-token', error instanceof errors.JOSEAlgNotAllowed ? `the token's algorithm is not one of ${this.config.algorithms.join(', ')}` : 'the token is not valid');
    }
    // The key set could not be fetched or read: not the client's fault. Said once per outage,
    // not per request.
    if (!this.keysDown) this.logger.error('cannot fetch the JWT issuer key set (JWKS)', { url: this.config.jwksUrl, error });
    this.keysDown = true;
    return new AuthError('auth-unavailable', "the token issuer's keys cannot be fetched right now; try again", { cause: error });
  }

  private scopesOf(payload: JWTPayload): Set<Scope> {
    const listed: unknown[] = [];
    for (const claim of [payload.scope, payload.scp]) {
      if (typeof claim === 'string') listed.push(...claim.split(/\s+/));
      else if (Array.isArray(claim)) listed.push(...(claim as unknown[]));
    }
    const prefix = this.config.scopePrefix;
    const scopes = new Set<Scope>();
    for (const value of listed) {
      // Other scopes (openid, profile, other APIs') are not Ordo's business.
      if (typeof value !== 'string' || !value.startsWith(prefix)) continue;
      const name = value.slice(prefix.length);
      if (isScope(name)) scopes.add(name);
    }
    return scopes;
  }

  private subjectsOf(payload: JWTPayload): SubjectScope {
    const claim = this.config.subjectsClaim;
    if (claim === undefined) return SubjectScope.ALL;
    // Fail closed: a token without the claim sees no subject ("*" in the claim grants all).
    const value = payload[claim];
    if (value === undefined) return SubjectScope.NONE;
    const entries = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(entries) || entries.length === 0) {
      throw new AuthError('invalid-token', `the token's "${claim}" claim is not a subject or a non-empty list of subjects`);
    }
    try {
      return SubjectScope.parse(entries as unknown[]);
    } catch {
      throw new AuthError('invalid-token', `the token's "${claim}" claim lists something that is not a non-empty string`);
    }
  }
}

function nameOf(payload: JWTPayload): string {
  for (const claim of [payload.sub, payload.azp, payload.client_id]) {
    if (typeof claim === 'string' && claim !== '') return claim.length > 128 ? `${claim.slice(0, 128)}...` : claim;
  }
  return 'jwt';
}

function claimProblem(claim: string): string {
  switch (claim) {
    case 'iss':
      return 'not the configured issuer';
    case 'aud':
      return 'none of the configured audiences';
    case 'nbf':
      return 'the token is not valid yet';
    case 'exp':
      return 'a token must carry an expiry';
    default:
      return 'missing or malformed';
  }
}
