// The runtime we ship is the runtime we test: package.json pins Node as its `node`
// devDependency (npm ci brings it; npm scripts find it first on PATH), the tests run on it,
// and the image builds on the same major line. Any drift between them fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (relative: string): string => readFileSync(new URL(`../../${relative}`, import.meta.url), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
  dependencies: Record<string, string>;
  allowScripts?: Record<string, boolean>;
};
const pinned = pkg.devDependencies.node ?? '';
const major = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1]);

describe('the Node runtime', () => {
  it('is pinned to one exact version, as a devDependency the image does not install', () => {
    expect(pinned, 'package.json devDependencies.node').toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.dependencies.node, 'a production dependency would put a second node into the image').toBeUndefined();
    // npm runs no dependency install script that allowScripts does not name; the package's
    // preinstall is what fetches the binary.
    expect(pkg.allowScripts?.node).toBe(true);
  });

  it('runs these tests', () => {
    expect(process.version, 'run the tests through npm (npm test, npx vitest), which puts node_modules/.bin/node first').toBe(`v${pinned}`);
  });

  it('is the line the engines field, @types/node and the Dockerfile name', () => {
    const line = major(pinned);
    expect(pkg.engines.node).toBe(`>=${line} <${line + 1}`);
    expect(major((pkg.devDependencies['@types/node'] ?? '').replace(/^[\^~]/, ''))).toBe(line);
    const arg = /^ARG NODE_VERSION=(\S+)$/m.exec(read('Dockerfile'))?.[1];
    expect(arg, 'Dockerfile: ARG NODE_VERSION').toBeDefined();
    expect(major(`${arg}.`)).toBe(line);
  });
});
