import type { SubjectScope } from './subject-scope.js';

/** Who is asking, once authenticated: what routes can do and which subjects it can see. */
export interface Principal {
  /** The token's name in the tokens file, a JWT's `sub`, or `anonymous`. Safe to log. */
  readonly name: string;
  readonly method: 'none' | 'token' | 'jwt';
  readonly scopes: ReadonlySet<string>;
  readonly subjects: SubjectScope;
}
