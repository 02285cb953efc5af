import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { type Logger, noopLogger } from '../observability/logger.js';
import { AuthError } from './auth-error.js';
import { constantTimeFind } from './constant-time.js';
import type { Principal } from './principal.js';
import { type TokenEntry, parseTokensFile } from './tokens-file.js';

export const TOKENS_FILE_VARIABLE = 'ORDO_API_TOKENS_FILE';

export interface TokenStoreOptions {
  /** How often the file is read to see whether it changed (default 1,000 ms; 0: never). */
  reloadIntervalMs?: number;
  logger?: Logger;
}

/** `invalid`: the file cannot be read or parsed (the previous tokens stay in use). */
export type ReloadOutcome = 'unchanged' | 'reloaded' | 'invalid';

/**
 * The tokens of the tokens file, re-read when its content changes, without a restart. The
 * file is read (not watched): a Kubernetes Secret volume swaps a symlink, which file watches
 * miss. A new file that cannot be read or parsed keeps the previous tokens and logs an error
 * once per distinct content; the tokens never appear in logs (the file holds only hashes).
 */
export class TokenStore {
  private entries: TokenEntry[];
  private hashes: Buffer[];
  /** sha256 of the last content read, good or bad, so one bad file is reported once. */
  private seen: string;
  /** Whether the content last read was refused (the previous tokens are in use). */
  private seenInvalid = false;
  private lastReadError: string | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private reloading: Promise<ReloadOutcome> | undefined;

  /** Reads and checks the file now: a missing or invalid file is a ConfigError (exit 78). */
  constructor(
    readonly file: string,
    options: TokenStoreOptions = {},
  ) {
    this.logger = options.logger ?? noopLogger;
    let text: Buffer;
    try {
      text = readFileSync(file);
    } catch (error) {
      throw new ConfigError(TOKENS_FILE_VARIABLE, `${file}: cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    try {
      this.entries = parseTokensFile(text.toString('utf8'));
    } catch (error) {
      throw new ConfigError(TOKENS_FILE_VARIABLE, `${file}: ${(error as Error).message}`);
    }
    this.hashes = this.entries.map((e) => e.hash);
    this.seen = fingerprint(text);
    if (this.entries.length === 0) this.logger.warn('the API tokens file lists no tokens: every request will be refused', { file });
    const interval = options.reloadIntervalMs ?? 1_000;
    if (interval > 0) {
      this.timer = setInterval(() => void this.reload(), interval);
      this.timer.unref();
    }
  }

  /** Names of the tokens currently accepted. */
  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** The principal of a presented token; 401 invalid-token if no entry has its hash. */
  authenticate(token: string): Principal {
    const hash = createHash('sha256').update(token, 'utf8').digest();
    const index = constantTimeFind(hash, this.hashes);
    const entry = this.entries[index];
    if (index === -1 || entry === undefined) throw new AuthError('invalid-token', 'the bearer token is not valid');
    return { name: entry.name, method: 'token', scopes: entry.scopes, subjects: entry.subjects };
  }

  /** Reads the file and takes it if its content changed and is valid. The timer calls this. */
  reload(): Promise<ReloadOutcome> {
    this.reloading ??= this.readAndSwap().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  private async readAndSwap(): Promise<ReloadOutcome> {
    let text: Buffer;
    try {
      text = await readFile(this.file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      if (reason !== this.lastReadError) {
        this.logger.error('cannot read the API tokens file; keeping the previous tokens', { file: this.file, reason });
        this.lastReadError = reason;
      }
      return 'invalid';
    }
    this.lastReadError = undefined;
    const print = fingerprint(text);
    if (print === this.seen) return this.seenInvalid ? 'invalid' : 'unchanged';
    this.seen = print;
    let entries: TokenEntry[];
    try {
      entries = parseTokensFile(text.toString('utf8'));
    } catch (error) {
      this.logger.error('the API tokens file is invalid; keeping the previous tokens', { file: this.file, reason: (error as Error).message });
      this.seenInvalid = true;
      return 'invalid';
    }
    this.seenInvalid = false;
    this.entries = entries;
    this.hashes = entries.map((e) => e.hash);
    this.logger.info('API tokens file reloaded', { file: this.file, tokens: entries.length });
    return 'reloaded';
  }
}

function fingerprint(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
