import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

/** Every relative import of every file under src/<folder>, as `folder/file` of the target. */
function importsOf(folder: string): { file: string; target: string }[] {
  const out: { file: string; target: string }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
          out.push({ file: relative(SRC, path), target: relative(SRC, resolve(dirname(path), m[1]!)) });
        }
      }
    }
  };
  walk(join(SRC, folder));
  return out;
}

const into = (folders: string[]) => (i: { target: string }) => folders.some((f) => i.target.startsWith(`${f}/`));

describe('the architecture in the tree (STYLE.md)', () => {
  it('the engine does not import the processors: they reach it through the ports in engine/task-processor.ts', () => {
    expect(importsOf('engine').filter(into(['processors', 'roles', 'api', 'commands']))).toEqual([]);
  });

  it('the config does not import the processors or the engine', () => {
    expect(importsOf('config').filter(into(['processors', 'engine', 'roles']))).toEqual([]);
  });

  it('the processors do not import Kafka code: only the engine touches Kafka', () => {
    const kafka = importsOf('processors').filter(into(['kafka', 'roles', 'api', 'commands']));
    expect(kafka).toEqual([]);
    const engine = importsOf('processors').filter(into(['engine']));
    // The ports' types only.
    expect([...new Set(engine.map((i) => i.target))]).toEqual(['engine/task-processor.js']);
  });

  it('connectors are pure: no Kafka, no HTTP server, no roles (the ingest role imports them, not the other way)', () => {
    expect(importsOf('connectors').filter(into(['kafka', 'engine', 'processors', 'roles', 'api', 'ingest', 'http', 'commands', 'config']))).toEqual([]);
  });

  it('the model folder is a leaf: records, store interface, reason lists', () => {
    expect(importsOf('model').filter(into(['engine', 'processors', 'config', 'roles', 'kafka', 'api', 'commands']))).toEqual([]);
  });
});
