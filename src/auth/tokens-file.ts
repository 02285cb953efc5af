import { parse } from 'yaml';
import { SCOPES, type Scope, isScope } from './scopes.js';
import { SubjectScope } from './subject-scope.js';

/** One token of the tokens file (docs/configuration.md, "API authentication", shows the format). */
export interface TokenEntry {
  name: string;
  /** sha256 of the token, 32 bytes. The token itself is never stored. */
  hash: Buffer;
  scopes: ReadonlySet<Scope>;
  subjects: SubjectScope;
}

const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;
const FIELDS = ['name', 'sha256', 'scopes', 'subjects'];

/**
 * Parses a tokens file (YAML, or JSON, which YAML reads too):
 *
 *   tokens:
 *     - name: portal-acme
 *       sha256: <64 hex digits: sha256 of the token>
 *       scopes: [read]
 *       subjects: [acme, "acme-eu/*"]   # optional; left out: every subject
 *
 * Throws an Error naming the entry and field that is wrong. A parse error's message keeps
 * only its first line: YAML's code frame would copy the file's text into logs.
 */
export function parseTokensFile(text: string): TokenEntry[] {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    const first = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
    throw new Error(`invalid YAML/JSON: ${first}`);
  }
  if (!isObject(document) || !Array.isArray(document.tokens)) {
    throw new Error('expected a document with a "tokens" list (tokens: [{name, sha256, scopes, subjects?}, ...])');
  }
  const unknownTop = Object.keys(document).filter((key) => key !== 'tokens');
  if (unknownTop.length > 0) throw new Error(`unknown top-level field ${JSON.stringify(unknownTop[0])}; the only one is "tokens"`);
  const entries: TokenEntry[] = [];
  const names = new Set<string>();
  const hashes = new Map<string, string>();
  for (const [i, raw] of (document.tokens as unknown[]).entries()) {
    const where = `tokens[${i}]`;
    if (!isObject(raw)) throw new Error(`${where}: expected an object {name, sha256, scopes, subjects?}`);
    const unknown = Object.keys(raw).find((key) => !FIELDS.includes(key));
    if (unknown !== undefined) throw new Error(`${where}: unknown field ${JSON.stringify(unknown)}; fields: ${FIELDS.join(', ')}`);
    const { name, sha256, scopes, subjects } = raw;
    if (typeof name !== 'string' || !NAME.test(name)) throw new Error(`${where}.name: expected 1-128 characters of [A-Za-z0-9._:@-]`);
    const at = `${where} (${name})`;
    if (names.has(name)) throw new Error(`${at}.name: "${name}" is used twice; names identify tokens in logs`);
    names.add(name);
    if (typeof sha256 !== 'string' || !SHA256.test(sha256)) {
      throw new Error(`${at}.sha256: expected the token's sha256 as 64 hex digits (printf %s "$TOKEN" | sha256sum)`);
    }
    const hex = sha256.toLowerCase();
    const twin = hashes.get(hex);
    if (twin !== undefined) throw new Error(`${at}.sha256: the same token as "${twin}"; give each token its own`);
    hashes.set(hex, name);
    if (!Array.isArray(scopes) || scopes.length === 0) throw new Error(`${at}.scopes: expected a non-empty list, e.g. [read]; scopes: ${SCOPES.join(', ')}`);
    const checked = new Set<Scope>();
    for (const scope of scopes as unknown[]) {
      if (typeof scope !== 'string' || !isScope(scope)) throw new Error(`${at}.scopes: ${JSON.stringify(scope)} is not a scope; scopes: ${SCOPES.join(', ')}`);
      checked.add(scope);
    }
    let scope = SubjectScope.ALL;
    if (subjects !== undefined) {
      if (!Array.isArray(subjects) || subjects.length === 0) {
        throw new Error(`${at}.subjects: expected a non-empty list of subjects ("acme") or prefixes ("team-a/*"); leave it out for every subject`);
      }
      try {
        scope = SubjectScope.parse(subjects as unknown[]);
      } catch (error) {
        throw new Error(`${at}.subjects: ${(error as Error).message}`);
      }
    }
    entries.push({ name, hash: Buffer.from(hex, 'hex'), scopes: checked, subjects: scope });
  }
  return entries;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
