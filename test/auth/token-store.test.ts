import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError } from '../../src/auth/auth-error.js';
import { sha256Hex } from '../../src/auth/constant-time.js';
import { TokenStore } from '../../src/auth/token-store.js';
import { ConfigError } from '../../src/errors.js';
import type { LogMeta, Logger } from '../../src/observability/logger.js';
import { catchError } from '../support/unit/fixtures.js';

class Lines implements Logger {
  readonly lines: { level: string; message: string; meta: LogMeta | undefined }[] = [];
  debug(): void {}
  info(message: string, meta?: LogMeta): void {
    this.lines.push({ level: 'info', message, meta });
  }
  warn(message: string, meta?: LogMeta): void {
    this.lines.push({ level: 'warn', message, meta });
  }
  error(message: string, meta?: LogMeta): void {
    this.lines.push({ level: 'error', message, meta });
  }
  child(): Logger {
    return this;
  }
  get errors(): string[] {
    return this.lines.filter((l) => l.level === 'error').map((l) => l.message);
  }
}

function tokensYaml(...tokens: [name: string, token: string, subjects?: string[]][]): string {
  return `tokens:\n${tokens
    .map(([name, token, subjects]) => `  - name: ${name}\n    sha256: ${sha256Hex(token)}\n    scopes: [read]\n${subjects ? `    subjects: ${JSON.stringify(subjects)}\n` : ''}`)
    .join('')}`;
}

function accepts(store: TokenStore, token: string): string | undefined {
  try {
    return store.authenticate(token).name;
  } catch (error) {
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).kind).toBe('invalid-token');
    return undefined;
  }
}

async function until(condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('TokenStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ordo-tokens-'));
  const stores: TokenStore[] = [];
  const open = (file: string, logger: Logger, reloadIntervalMs = 0): TokenStore => {
    const store = new TokenStore(file, { logger, reloadIntervalMs });
    stores.push(store);
    return store;
  };
  afterEach(() => stores.splice(0).forEach((s) => s.close()));

  it('accepts exactly the tokens whose sha256 the file lists, with their name, scopes and subjects', () => {
    const file = join(dir, 'exact.yaml');
    writeFileSync(file, tokensYaml(['admin', 'ordo_one'], ['portal-acme', 'ordo_two', ['acme']]));
    const store = open(file, new Lines());
    expect(accepts(store, 'ordo_one')).toBe('admin');
    const portal = store.authenticate('ordo_two');
    expect(portal).toMatchObject({ name: 'portal-acme', method: 'token' });
    expect(portal.subjects.list).toEqual(['acme']);
    for (const wrong of ['ordo_on', 'ordo_one ', 'ORDO_ONE', sha256Hex('ordo_one'), '']) expect(accepts(store, wrong)).toBeUndefined();
  });

  it('refuses to start on a missing or invalid file, naming ORDO_API_TOKENS_FILE', () => {
    for (const [file, content, message] of [
      [join(dir, 'absent.yaml'), undefined, /cannot read the file: ENOENT/],
      [join(dir, 'bad.yaml'), 'tokens: [1]', /tokens\[0\]: expected an object/],
    ] as const) {
      if (content !== undefined) writeFileSync(file, content);
      const error = catchError(() => new TokenStore(file, { reloadIntervalMs: 0 }));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('ORDO_API_TOKENS_FILE');
      expect((error as ConfigError).message).toMatch(message);
    }
  });

  it('picks up a changed file by itself, without a restart', async () => {
    const file = join(dir, 'watched.yaml');
    writeFileSync(file, tokensYaml(['first', 'ordo_first']));
    const logger = new Lines();
    const store = open(file, logger, 20);
    expect(accepts(store, 'ordo_first')).toBe('first');
    writeFileSync(file, tokensYaml(['second', 'ordo_second']));
    await until(() => accepts(store, 'ordo_second') === 'second');
    expect(accepts(store, 'ordo_first')).toBeUndefined();
    expect(logger.lines).toContainEqual({ level: 'info', message: 'API tokens file reloaded', meta: { file, tokens: 1 } });
  });

  it('follows a Kubernetes-style atomic swap (a new file renamed over the old one)', async () => {
    const file = join(dir, 'swapped.yaml');
    writeFileSync(file, tokensYaml(['old', 'ordo_old']));
    const store = open(file, new Lines(), 20);
    writeFileSync(`${file}.tmp`, tokensYaml(['new', 'ordo_new']));
    renameSync(`${file}.tmp`, file);
    await until(() => accepts(store, 'ordo_new') === 'new');
  });

  it('keeps the previous tokens when the new file is invalid or gone, logs it once, and recovers when it is fixed', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, tokensYaml(['kept', 'ordo_kept']));
    const logger = new Lines();
    const store = open(file, logger);
    writeFileSync(file, 'tokens:\n  - name: half-written\n');
    expect(await store.reload()).toBe('invalid');
    expect(await store.reload()).toBe('invalid');
    expect(accepts(store, 'ordo_kept')).toBe('kept');
    expect(logger.errors).toEqual(['the API tokens file is invalid; keeping the previous tokens']);
    rmSync(file);
    expect(await store.reload()).toBe('invalid');
    expect(await store.reload()).toBe('invalid');
    expect(accepts(store, 'ordo_kept')).toBe('kept');
    expect(logger.errors).toHaveLength(2);
    expect(logger.errors[1]).toBe('cannot read the API tokens file; keeping the previous tokens');
    writeFileSync(file, tokensYaml(['fixed', 'ordo_fixed']));
    expect(await store.reload()).toBe('reloaded');
    expect(await store.reload()).toBe('unchanged');
    expect(accepts(store, 'ordo_fixed')).toBe('fixed');
    expect(accepts(store, 'ordo_kept')).toBeUndefined();
    // Hashes only, and never a token, in what was logged.
    expect(JSON.stringify(logger.lines)).not.toMatch(/ordo_(kept|fixed)/);
  });
});
