import { AuthError } from './auth-error.js';
import type { Principal } from './principal.js';

/**
 * The subjects a token may see. Written as a list of entries: `acme` (exactly that subject),
 * `team-a/*` (every subject starting with `team-a/`) or `*` (every subject). The same
 * notation in the tokens file and in a JWT's subjects claim.
 */
export class SubjectScope {
  static readonly ALL = new SubjectScope(true, new Set(), []);
  static readonly NONE = new SubjectScope(false, new Set(), []);

  private constructor(
    /** Every subject. */
    readonly all: boolean,
    readonly exact: ReadonlySet<string>,
    readonly prefixes: readonly string[],
  ) {}

  /** Throws an Error naming the bad entry (the caller says where it came from). */
  static parse(entries: readonly unknown[]): SubjectScope {
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const entry of entries) {
      if (typeof entry !== 'string' || entry === '') throw new Error(`subject entry ${JSON.stringify(entry)} is not a non-empty string`);
      if (entry === '*') return SubjectScope.ALL;
      if (entry.endsWith('*')) prefixes.push(entry.slice(0, -1));
      else exact.add(entry);
    }
    return exact.size === 0 && prefixes.length === 0 ? SubjectScope.NONE : new SubjectScope(false, exact, prefixes);
  }

  allows(subject: string): boolean {
    if (this.all || this.exact.has(subject)) return true;
    return this.prefixes.some((prefix) => subject.startsWith(prefix));
  }

  /** The subjects themselves when the scope is a finite list (no prefix, not all), sorted. */
  get list(): string[] | undefined {
    return this.all || this.prefixes.length > 0 ? undefined : [...this.exact].sort();
  }

  /** The entries as written (prefixes with their `*`): what `parse` reads back. */
  entries(): string[] {
    return this.all ? ['*'] : [...this.exact, ...this.prefixes.map((p) => `${p}*`)];
  }

  /** The entries as written (prefixes with their `*`), for messages. */
  describe(): string {
    if (this.all) return 'every subject';
    const entries = [...this.exact, ...this.prefixes.map((p) => `${p}*`)];
    if (entries.length === 0) return 'no subjects';
    const shown = entries.slice(0, 10).map((e) => JSON.stringify(e)).join(', ');
    return `subjects ${shown}${entries.length > 10 ? ` and ${entries.length - 10} more` : ''}`;
  }
}

/** A subject selection after the principal's scope applied to it. */
export interface NarrowedSubjects {
  /** The subjects to read; undefined: every subject `allows` accepts. */
  subjects: string[] | undefined;
  /** undefined: no restriction. */
  allows: ((subject: string) => boolean) | undefined;
}

/**
 * Applies the principal's subject scope to the subjects a query asked for. Any asked subject
 * outside the scope answers 403 forbidden-subject (whether or not it exists, so the answer
 * says nothing about other customers). No subject asked: the query is narrowed to the scope,
 * as if the caller had listed its subjects (a finite scope becomes exactly that list, so a
 * one-subject token can ask UNIQUE_COUNT meters without naming itself).
 */
export function narrowSubjects(principal: Principal, asked: readonly string[] | undefined): NarrowedSubjects {
  const scope = principal.subjects;
  if (scope.all) return { subjects: asked === undefined ? undefined : [...asked], allows: undefined };
  const allows = (subject: string): boolean => scope.allows(subject);
  if (asked !== undefined) {
    const refused = asked.find((subject) => !scope.allows(subject));
    if (refused !== undefined) {
      throw new AuthError('forbidden-subject', `subject ${quote(refused)} is not visible to the token of ${principal.name}, which may see ${scope.describe()}`);
    }
    return { subjects: [...asked], allows };
  }
  const list = scope.list;
  if (list?.length === 0) throw new AuthError('forbidden-subject', `the token of ${principal.name} may see no subjects`);
  return { subjects: list, allows };
}

function quote(value: string): string {
  return value.length > 64 ? `${JSON.stringify(value.slice(0, 64))}... (${value.length} chars)` : JSON.stringify(value);
}
