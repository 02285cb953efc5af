import { AuthError } from './auth-error.js';

/** RFC 6750 2.1: the b64token syntax of a bearer credential. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^([A-Za-z][A-Za-z0-9!#$%&'*+\-.^_`|~]*)(?: |$)/;
/** Schemes named back in the message; any other first word might be a token sent without a scheme. */
const KNOWN_SCHEMES = ['basic', 'digest', 'negotiate', 'ntlm', 'token', 'apikey', 'dpop', 'hoba', 'mutual', 'aws4-hmac-sha256'];
/** Far above any real token (a JWT with many claims is a few KB); Node caps all headers at 16 KB. */
export const MAX_TOKEN_LENGTH = 8192;

/**
 * The bearer token of an Authorization header. No header, or another scheme (Basic...): 401
 * unauthenticated; a Bearer credential that is malformed: 401 invalid-token. Messages never
 * quote the credential.
 */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.trim() === '') {
    throw new AuthError('unauthenticated', 'this API needs a bearer token: send the header "Authorization: Bearer <token>"');
  }
  const match = BEARER.exec(header);
  if (match === null) {
    const scheme = SCHEME.exec(header)?.[1];
    if (scheme === undefined || scheme.toLowerCase() !== 'bearer') {
      const named = scheme !== undefined && KNOWN_SCHEMES.includes(scheme.toLowerCase()) ? `the ${JSON.stringify(scheme)} scheme` : 'a credential that is not a bearer token';
      throw new AuthError('unauthenticated', `the Authorization header has ${named}; this API takes "Authorization: Bearer <token>"`);
    }
    throw new AuthError('invalid-token', 'the bearer token is malformed (RFC 6750: one token of letters, digits and -._~+/, optionally ending in =)');
  }
  const token = match[1] ?? '';
  if (token.length > MAX_TOKEN_LENGTH) throw new AuthError('invalid-token', `the bearer token is longer than ${MAX_TOKEN_LENGTH} characters`);
  return token;
}
