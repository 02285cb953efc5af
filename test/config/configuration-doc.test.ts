import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';

/**
 * docs/configuration.md's variables tables against the code: every variable the config
 * code reads is documented, and every documented one is read. "Read" is both what
 * loadConfig asks of the environment (recorded) and every variable name literal in
 * src/config/ (variables read only under a condition).
 */
function variablesReadByCode(): Set<string> {
  const read = new Set<string>();
  const env = new Proxy({}, {
    get: (_target, name) => {
      if (typeof name === 'string') read.add(name);
      return undefined;
    },
  });
  loadConfig(env);
  const dir = new URL('../../src/config/', import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(new URL(file, dir), 'utf8').matchAll(/['"`]((?:ORDO|KAFKA|SCHEMA)_[A-Z0-9_]+)['"`]/g)) read.add(m[1]!);
  }
  return read;
}

function documentedVariables(): Set<string> {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  // Every variables table of the page up to the variables Ordo does not read itself (the
  // main table and the sections of API authentication and of a secured cluster).
  const roles = doc.slice(doc.indexOf('\n## Variables'), doc.indexOf('\n## Other environment variables'));
  return new Set([...roles.matchAll(/^\| `([A-Z][A-Z0-9_]+)`/gm)].map((m) => m[1]!));
}

describe('docs/configuration.md', () => {
  it('documents exactly the variables the configuration code reads', () => {
    const code = [...variablesReadByCode()].sort();
    const documented = [...documentedVariables()].sort();
    expect(code.length).toBeGreaterThan(30);
    expect({ undocumented: code.filter((v) => !documented.includes(v)), notRead: documented.filter((v) => !code.includes(v)) }).toEqual({ undocumented: [], notRead: [] });
  });
});
