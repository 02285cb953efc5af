import { AuthError } from './auth-error.js';
import type { Principal } from './principal.js';

/**
 * Every scope a token may hold. `read`: the usage query API; `ingest`: posting events to the
 * ingest role; `deliver`: the ordered and global streams of the deliver role (SSE, sessions); `admin`: everything, including every other scope. A role that adds routes adds
 * its scope here, so that a tokens file naming an unknown scope (a typo) is refused rather
 * than granting nothing.
 */
export const SCOPES = ['read', 'ingest', 'deliver', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scope that implies all others. */
export const ADMIN_SCOPE: Scope = 'admin';

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has(scope) || principal.scopes.has(ADMIN_SCOPE);
}

/** Throws 403 forbidden-scope unless the principal holds `scope` (or admin). */
export function requireScope(principal: Principal, scope: Scope): void {
  if (hasScope(principal, scope)) return;
  throw new AuthError('forbidden-scope', `this route needs scope "${scope}"; the token of ${principal.name} has ${describeScopes(principal)}`, { scope });
}

function describeScopes(principal: Principal): string {
  const held = [...principal.scopes];
  return held.length === 0 ? 'no scopes' : `scopes ${held.map((s) => JSON.stringify(s)).join(', ')}`;
}
