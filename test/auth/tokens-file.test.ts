import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { parseTokensFile } from '../../src/auth/tokens-file.js';
import { catchError } from '../support/unit/fixtures.js';

const ADMIN = sha256Hex('ordo_admin');
const PORTAL = sha256Hex('ordo_portal');

function parseError(text: string): string {
  const error = catchError(() => parseTokensFile(text));
  expect(error).toBeInstanceOf(Error);
  return (error as Error).message;
}

describe('parseTokensFile', () => {
  it('reads names, hashes, scopes and subjects from YAML', () => {
    const entries = parseTokensFile(`
tokens:
  - name: billing-admin
    sha256: ${ADMIN.toUpperCase()}
    scopes: [read, admin]
  - name: portal-acme
    sha256: ${PORTAL}
    scopes: [read]
    subjects: [acme, "acme-eu/*"]
`);
    expect(entries.map((e) => e.name)).toEqual(['billing-admin', 'portal-acme']);
    expect(entries[0]?.hash.toString('hex')).toBe(ADMIN);
    expect([...(entries[0]?.scopes ?? [])]).toEqual(['read', 'admin']);
    expect(entries[0]?.subjects.all).toBe(true);
    const portal = entries[1]?.subjects;
    expect(portal?.allows('acme')).toBe(true);
    expect(portal?.allows('acme-eu/7')).toBe(true);
    expect(portal?.allows('acme-us')).toBe(false);
    expect(portal?.allows('globex')).toBe(false);
  });

  it('reads the same file written as JSON', () => {
    const entries = parseTokensFile(JSON.stringify({ tokens: [{ name: 'portal-acme', sha256: PORTAL, scopes: ['read'], subjects: ['acme'] }] }));
    expect(entries[0]?.subjects.list).toEqual(['acme']);
  });

  it('accepts an empty list (every request refused)', () => {
    expect(parseTokensFile('tokens: []')).toEqual([]);
  });

  it.each([
    ['', /a "tokens" list/],
    ['tokens: {}', /a "tokens" list/],
    ['tokens: [1]', /tokens\[0\]: expected an object/],
    [`tokens: []\nextra: 1`, /unknown top-level field "extra"/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read], subject: [acme]}`, /tokens\[0\]: unknown field "subject"/],
    [`tokens:\n  - {sha256: ${ADMIN}, scopes: [read]}`, /tokens\[0\]\.name/],
    [`tokens:\n  - {name: "a b", sha256: ${ADMIN}, scopes: [read]}`, /tokens\[0\]\.name/],
    [`tokens:\n  - {name: a, sha256: abc, scopes: [read]}`, /tokens\[0\] \(a\)\.sha256: expected the token's sha256 as 64 hex digits/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}}`, /tokens\[0\] \(a\)\.scopes: expected a non-empty list/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: []}`, /\.scopes: expected a non-empty list/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [raed]}`, /\.scopes: "raed" is not a scope; scopes: read, ingest, deliver, admin/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read], subjects: []}`, /\.subjects: expected a non-empty list/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read], subjects: acme}`, /\.subjects: expected a non-empty list/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read], subjects: [""]}`, /\.subjects: subject entry "" is not a non-empty string/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read]}\n  - {name: a, sha256: ${PORTAL}, scopes: [read]}`, /tokens\[1\] \(a\)\.name: "a" is used twice/],
    [`tokens:\n  - {name: a, sha256: ${ADMIN}, scopes: [read]}\n  - {name: b, sha256: ${ADMIN.toUpperCase()}, scopes: [read]}`, /tokens\[1\] \(b\)\.sha256: the same token as "a"/],
  ])('refuses %j, naming what is wrong', (text, message) => {
    expect(parseError(text)).toMatch(message);
  });

  it('keeps a YAML error to its first line (the code frame would copy the file into logs)', () => {
    const message = parseError(`tokens:\n  - name: a\n    sha256: "${ADMIN}\n    scopes: [read`);
    expect(message).toMatch(/^invalid YAML\/JSON: /);
    expect(message).not.toContain('\n');
    expect(message).not.toContain(ADMIN);
  });
});
