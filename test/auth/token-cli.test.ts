import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { runTokenCli } from '../../src/auth/token-cli.js';
import { TokenStore } from '../../src/auth/token-store.js';

async function run(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runTokenCli(argv, { out: (t) => (out += t), err: (t) => (err += t), readStdin: () => Promise.resolve(stdin) });
  return { code, out, err };
}

describe('ordo token', () => {
  it('new prints a fresh token once and a tokens file entry that accepts exactly it', async () => {
    const { code, out, err } = await run(['new', '--name', 'portal-acme', '--scope', 'read', '--subject', 'acme', '--subject', 'acme-eu/*']);
    expect(code).toBe(0);
    expect(err).toMatch(/shown once/);
    const token = /^token: (ordo_[A-Za-z0-9_-]{43})$/m.exec(out)?.[1];
    expect(token).toBeDefined();
    const entry = out.slice(out.indexOf('  - name:'));
    expect(entry).toContain(`sha256: ${sha256Hex(token ?? '')}`);
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-token-cli-')), 'tokens.yaml');
    writeFileSync(file, `tokens:\n${entry}`);
    const store = new TokenStore(file, { reloadIntervalMs: 0 });
    const principal = store.authenticate(token ?? '');
    expect(principal.name).toBe('portal-acme');
    expect([...principal.scopes]).toEqual(['read']);
    expect(principal.subjects.allows('acme-eu/3')).toBe(true);
    expect(principal.subjects.allows('globex')).toBe(false);
    expect((await run(['new', '--name', 'b', '--scope', 'read'])).out).not.toContain(token);
  });

  it.each([
    [['new', '--scope', 'read'], /--name and --scope are required/],
    [['new', '--name', 'a'], /--name and --scope are required/],
    [['new', '--name', 'a', '--scope', 'raed'], /"raed" is not a scope; scopes: read, ingest, deliver, admin/],
    [['new', '--name', 'a b', '--scope', 'read'], /name: expected 1-128 characters/],
    [['new', '--name', 'a', '--scope', 'read', '--subject', ''], /subject entry "" is not a non-empty string/],
    [['new', '--name', 'a', '--scope', 'read', '--colour', 'red'], /Unknown option '--colour'/],
    [['mint'], /unknown command "mint"/],
    [[], /usage: ordo token new/],
  ])('%j is a usage error (exit 2) saying why', async (argv, message) => {
    const { code, err, out } = await run(argv);
    expect(code).toBe(2);
    expect(err).toMatch(message);
    expect(out).toBe('');
  });

  it('hash prints the sha256 of the token on stdin, ignoring one trailing newline', async () => {
    expect(await run(['hash'], 'abc\n')).toEqual({ code: 0, out: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n', err: '' });
    expect((await run(['hash'], '')).code).toBe(2);
  });

  it('is reached through the ordo CLI, reading stdin', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'token', 'hash'], { input: 'abc\n', encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n');
    expect(result.status).toBe(0);
  });
});
