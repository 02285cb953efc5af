import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../src/auth/auth-error.js';
import type { Principal } from '../../src/auth/principal.js';
import { hasScope, requireScope } from '../../src/auth/scopes.js';
import { SubjectScope, narrowSubjects } from '../../src/auth/subject-scope.js';
import { catchError } from '../support/unit/fixtures.js';

const principal = (subjects: SubjectScope, scopes: string[] = ['read']): Principal => ({ name: 'portal', method: 'token', scopes: new Set(scopes), subjects });

describe('SubjectScope', () => {
  it('reads exact subjects, prefixes ending in * and a lone * for all', () => {
    const scope = SubjectScope.parse(['acme', 'team-a/*']);
    expect(scope.allows('acme')).toBe(true);
    expect(scope.allows('acme2')).toBe(false);
    expect(scope.allows('team-a/')).toBe(true);
    expect(scope.allows('team-a/x')).toBe(true);
    expect(scope.allows('team-b/x')).toBe(false);
    expect(scope.list).toBeUndefined();
    expect(SubjectScope.parse(['b', 'a', 'b']).list).toEqual(['a', 'b']);
    expect(SubjectScope.parse(['acme', '*'])).toBe(SubjectScope.ALL);
    expect(SubjectScope.parse([])).toBe(SubjectScope.NONE);
    expect(SubjectScope.NONE.allows('')).toBe(false);
  });

  it('refuses entries that are not non-empty strings', () => {
    for (const bad of ['', 1, null, ['a']]) expect(() => SubjectScope.parse([bad])).toThrow(/is not a non-empty string/);
  });

  it('allows a subject exactly when it is listed or starts with a listed prefix', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 4 })), fc.array(fc.string({ maxLength: 3 })), fc.string({ maxLength: 6 }), (exact, prefixes, subject) => {
        const entries = [...exact.filter((e) => !e.endsWith('*')), ...prefixes.filter((p) => !p.includes('*')).map((p) => `${p}*`)];
        const expected = entries.some((e) => (e.endsWith('*') ? subject.startsWith(e.slice(0, -1)) : subject === e));
        expect(SubjectScope.parse(entries).allows(subject)).toBe(expected);
      }),
    );
  });
});

describe('narrowSubjects', () => {
  it('leaves an unscoped principal\'s selection as asked', () => {
    expect(narrowSubjects(principal(SubjectScope.ALL), undefined)).toEqual({ subjects: undefined, allows: undefined });
    expect(narrowSubjects(principal(SubjectScope.ALL), ['x'])).toEqual({ subjects: ['x'], allows: undefined });
  });

  it('narrows no selection to the scope: its list when finite, else its predicate', () => {
    const finite = narrowSubjects(principal(SubjectScope.parse(['b', 'a'])), undefined);
    expect(finite.subjects).toEqual(['a', 'b']);
    expect(finite.allows?.('c')).toBe(false);
    const prefixed = narrowSubjects(principal(SubjectScope.parse(['a', 't/*'])), undefined);
    expect(prefixed.subjects).toBeUndefined();
    expect(prefixed.allows?.('t/1')).toBe(true);
    expect(prefixed.allows?.('u/1')).toBe(false);
    expect(() => narrowSubjects(principal(SubjectScope.NONE), undefined)).toThrow(/may see no subjects/);
  });

  it('answers 403 forbidden-subject when any asked subject is outside the scope', () => {
    const scoped = principal(SubjectScope.parse(['acme', 't/*']));
    expect(narrowSubjects(scoped, ['acme', 't/9']).subjects).toEqual(['acme', 't/9']);
    const error = catchError(() => narrowSubjects(scoped, ['acme', 'globex']));
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ kind: 'forbidden-subject', status: 403, challenge: undefined });
    expect((error as AuthError).message).toContain('"globex"');
  });
});

describe('scopes', () => {
  it('admin implies read; read does not imply admin', () => {
    expect(hasScope(principal(SubjectScope.ALL, ['admin']), 'read')).toBe(true);
    expect(hasScope(principal(SubjectScope.ALL, ['read']), 'admin')).toBe(false);
    const error = catchError(() => requireScope(principal(SubjectScope.ALL, []), 'read'));
    expect(error).toMatchObject({ kind: 'forbidden-scope', status: 403, challenge: 'Bearer realm="ordo", error="insufficient_scope", scope="read"' });
  });
});
