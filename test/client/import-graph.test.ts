import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const ENTRY = resolve(ROOT, 'src/client/index.ts');
/** Server-side dependencies the SDK must never load: a user installing it gets none of them. */
const SERVER_PACKAGES = ['kafkajs', 'avsc', 'prom-client', 'lmdb', '@kafkajs/confluent-schema-registry', 'jose', 'yaml'];

/**
 * Import and export-from statements that survive compilation: `import type` / `export type`
 * are erased, and with verbatimModuleSyntax everything else is kept (even
 * `import { type A }`, which becomes a bare `import 'x'`).
 */
function runtimeSpecifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)'/gms)) {
    if (m[2] === undefined) out.push(m[4]!);
  }
  for (const m of source.matchAll(/^\s*import\s*'([^']+)'/gm)) out.push(m[1]!);
  for (const m of source.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) out.push(m[1]!);
  return out;
}

/** Every module loaded at runtime from `entry`: repo files (relative) and packages (bare). */
function runtimeGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const specifier of runtimeSpecifiers(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else packages.add(specifier);
    }
  };
  visit(entry);
  return { files: [...files].map((f) => relative(ROOT, f)).sort(), packages: [...packages].sort() };
}

describe('the client SDK import graph', () => {
  it('reads type-only imports as erased and everything else as loaded', () => {
    const source = [
      "import type { Producer } from 'kafkajs';",
      "export type { X } from 'avsc';",
      "import { type A, b } from 'lmdb';",
      "import {\n  c,\n  d,\n} from './multi.js';",
      "export { e } from 'prom-client';",
      "import 'side-effect';",
    ].join('\n');
    expect(runtimeSpecifiers(source).sort()).toEqual(['./multi.js', 'lmdb', 'prom-client', 'side-effect']);
  });

  it('loads no server package, only node built-ins, at runtime', () => {
    const { packages } = runtimeGraph(ENTRY);
    expect(packages.filter((p) => SERVER_PACKAGES.some((s) => p === s || p.startsWith(`${s}/`)))).toEqual([]);
    expect(packages.filter((p) => !p.startsWith('node:'))).toEqual([]);
  });

  it('reaches only the clock, the model leaf, the base errors and itself', () => {
    const { files } = runtimeGraph(ENTRY);
    expect(files.filter((f) => !/^src\/(client|clock)\//.test(f))).toEqual(['src/errors.ts', 'src/model/consistency-token.ts', 'src/model/headers.ts']);
  });
});
