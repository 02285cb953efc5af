import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../src/auth/auth-error.js';
import { MAX_TOKEN_LENGTH, bearerToken } from '../../src/auth/authorization-header.js';
import { catchError } from '../support/unit/fixtures.js';

function refusal(header: string | undefined): AuthError {
  const error = catchError(() => bearerToken(header));
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

describe('bearerToken', () => {
  it('takes the token of a Bearer credential, whatever the scheme case and spacing around it', () => {
    expect(bearerToken('Bearer ordo_abc-DEF_123')).toBe('ordo_abc-DEF_123');
    expect(bearerToken('bearer  eyJ.eyJ.sig')).toBe('eyJ.eyJ.sig');
    expect(bearerToken('BEARER a+b/c~d==  ')).toBe('a+b/c~d==');
  });

  it.each([
    [undefined, 'unauthenticated'],
    ['', 'unauthenticated'],
    ['   ', 'unauthenticated'],
    ['Basic dXNlcjpwYXNz', 'unauthenticated'],
    ['Token abc', 'unauthenticated'],
    ['abc', 'unauthenticated'],
    ['ordo_secret', 'unauthenticated'],
    ['Bearer', 'invalid-token'],
    ['Bearer ', 'invalid-token'],
    ['Bearer a b', 'invalid-token'],
    ['Bearer a,b', 'invalid-token'],
    ['Bearer =abc', 'invalid-token'],
    ['Bearer abc=def', 'invalid-token'],
    ['Bearer \u00e9t\u00e9', 'invalid-token'],
  ])('refuses %j as %s (401) with a challenge', (header, kind) => {
    const error = refusal(header);
    expect(error.kind).toBe(kind);
    expect(error.status).toBe(401);
    expect(error.challenge).toMatch(/^Bearer realm="ordo"/);
  });

  it('names a known other scheme, but never echoes a first word that may be a token sent without "Bearer"', () => {
    expect(refusal('Basic dXNlcjpwYXNz').message).toContain('"Basic" scheme');
    expect(refusal('Basic dXNlcjpwYXNz').message).not.toContain('dXNlcjpwYXNz');
    expect(refusal('ordo_secret123').message).not.toContain('ordo_secret123');
    expect(refusal('ordo_secret123 x').message).not.toContain('ordo_secret123');
  });

  it('refuses a token longer than the limit', () => {
    expect(bearerToken(`Bearer ${'a'.repeat(MAX_TOKEN_LENGTH)}`)).toHaveLength(MAX_TOKEN_LENGTH);
    expect(refusal(`Bearer ${'a'.repeat(MAX_TOKEN_LENGTH + 1)}`).kind).toBe('invalid-token');
  });

  it('either returns a token found in the header or refuses with a 401 that does not quote it', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `Bearer ${s}`), fc.string({ unit: 'binary' })), (header) => {
        let token: string | undefined;
        try {
          token = bearerToken(header);
        } catch (error) {
          expect(error).toBeInstanceOf(AuthError);
          expect((error as AuthError).status).toBe(401);
          for (const word of header.split(/\s+/)) if (word.length >= 6) expect((error as AuthError).message).not.toContain(word);
          return;
        }
        expect(header).toContain(token);
        expect(token).toMatch(/^[A-Za-z0-9\-._~+/]+=*$/);
      }),
    );
  });
});
