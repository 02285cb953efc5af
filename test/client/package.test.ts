import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; type: string; exports: Record<string, unknown> };

/**
 * `ordo/client` as a user gets it: the build's output (tsconfig.build.json, the config
 * `npm run build` uses, here over the client's files only) in a package with this repo's
 * package.json `exports`, installed under node_modules/ordo of an app that has no other
 * dependency. A runtime import of kafkajs, avsc or any other package would fail to resolve.
 */
describe('the ordo/client package export', () => {
  let app = '';
  const dir = mkdtempSync(join(tmpdir(), 'ordo-client-pkg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeAll(async () => {
    const packageDir = join(dir, 'ordo');
    app = join(dir, 'app');
    mkdirSync(packageDir);
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: join(ROOT, 'tsconfig.build.json'),
        compilerOptions: { rootDir: ROOT, outDir: join(packageDir, 'dist'), sourceMap: false, typeRoots: [join(ROOT, 'node_modules/@types')] },
        include: [],
        files: [join(ROOT, 'src/client/index.ts')],
      }),
    );
    await run(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json')], { cwd: dir });
    writeFileSync(join(packageDir, 'package.json'), JSON.stringify({ name: pkg.name, type: pkg.type, exports: pkg.exports }));
    symlinkSync(packageDir, join(app, 'node_modules', pkg.name), 'dir');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  }, 60_000);

  it('imports by name at runtime and works', async () => {
    writeFileSync(
      join(app, 'main.js'),
      [
        "import { HybridClock, OrdoIngestClient, formatTimeContext, encodeConsistencyToken, stampRecord, withServiceTime } from 'ordo/client';",
        "const clock = new HybridClock({ node: 'app-1' });",
        "const stamped = stampRecord(clock, { value: 'v' });",
        'console.log(JSON.stringify({',
        "  time: /^[0-9a-f]{16}$/.test(formatTimeContext({ time: clock.now(), node: 'app-1' })['service-time']),",
        "  record: stamped.headers['service-node'],",
        "  token: encodeConsistencyToken({ topic: 'usage-events', partition: 1, offset: '2' }),",
        "  client: typeof new OrdoIngestClient({ url: 'http://127.0.0.1:1' }).send,",
        '  fetch: typeof withServiceTime(fetch, clock),',
        '}));',
      ].join('\n'),
    );
    const { stdout } = await run(process.execPath, ['main.js'], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({ time: true, record: 'app-1', token: 'c1.dXNhZ2UtZXZlbnRz.1.2', client: 'function', fetch: 'function' });
  });

  it('type-checks against the declarations the exports map names, and so does the example of docs/client.md', async () => {
    const doc = readFileSync(join(ROOT, 'docs/client.md'), 'utf8');
    const example = /## Example[^\n]*\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example, 'docs/client.md has an example block').toContain("from 'ordo/client'");
    writeFileSync(join(app, 'example.ts'), `${example}\nexport {};\n`);
    writeFileSync(
      join(app, 'typed.ts'),
      [
        "import { HybridClock, OrdoIngestClient, type AcceptedEvent, type ServiceTime } from 'ordo/client';",
        "const t: ServiceTime = new HybridClock({ node: 'app-1' }).now();",
        "const client = new OrdoIngestClient({ url: 'http://127.0.0.1:1', maxBatchEvents: 10 });",
        "const accepted: Promise<AcceptedEvent> = client.enqueue({ source: '//app', type: 'call', subject: 'acme', data: { value: '1' } });",
        "// @ts-expect-error value is a decimal string, never a number",
        "void client.send({ source: '//app', type: 'call', subject: 'acme', data: { value: 1 } });",
        'export { t, accepted };',
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')], skipLibCheck: false,
          // kafkajs types only: an app that stamps records has kafkajs installed.
          paths: { kafkajs: [join(ROOT, 'node_modules/kafkajs/types/index.d.ts')] } },
        files: ['typed.ts', 'example.ts'],
      }),
    );
    const result = await run(process.execPath, [TSC, '-p', join(app, 'tsconfig.json')], { cwd: app }).catch((error: { stdout: string }) => error);
    expect(result.stdout).toBe('');
  }, 60_000);
});
