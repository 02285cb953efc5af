import { OrdoError } from '../errors.js';

/**
 * Stable kinds of an authentication or authorization failure (the `kind` of the JSON error
 * body; docs/openapi.yaml lists them). 401: who is asking is not known; 403: known, not
 * allowed; 503: the token issuer's keys cannot be fetched right now.
 */
export const AUTH_ERROR_KINDS = ['unauthenticated', 'invalid-token', 'token-expired', 'forbidden-scope', 'forbidden-subject', 'auth-unavailable'] as const;
export type AuthErrorKind = (typeof AUTH_ERROR_KINDS)[number];

const STATUS: Record<AuthErrorKind, number> = {
  'unauthenticated': 401,
  'invalid-token': 401,
  'token-expired': 401,
  'forbidden-scope': 403,
  'forbidden-subject': 403,
  'auth-unavailable': 503,
};

/** The realm every challenge names. */
const REALM = 'ordo';

/**
 * A request the auth layer refuses. The message is for the client and never contains the
 * token (nor anything derived from it); `challenge` is the WWW-Authenticate value (RFC 6750).
 */
export class AuthError extends OrdoError {
  static override readonly code = 'ORDO_AUTH';
  readonly kind: AuthErrorKind;
  readonly status: number;
  readonly challenge: string | undefined;

  constructor(kind: AuthErrorKind, message: string, options: { scope?: string; cause?: unknown } = {}) {
    super(message, { retriable: kind === 'auth-unavailable', cause: options.cause });
    this.kind = kind;
    this.status = STATUS[kind];
    this.challenge = challenge(kind, options.scope);
  }
}

function challenge(kind: AuthErrorKind, scope: string | undefined): string | undefined {
  switch (kind) {
    case 'unauthenticated':
      // RFC 6750 3.1: no error code when the request had no credentials.
      return `Bearer realm="${REALM}"`;
    case 'invalid-token':
      return `Bearer realm="${REALM}", error="invalid_token", error_description="the token is not valid"`;
    case 'token-expired':
      return `Bearer realm="${REALM}", error="invalid_token", error_description="the token has expired"`;
    case 'forbidden-scope':
      return `Bearer realm="${REALM}", error="insufficient_scope"${scope === undefined ? '' : `, scope="${scope}"`}`;
    default:
      return undefined;
  }
}
