import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { Secret } from './secret.js';

/** Reads typed values from an environment map; every failure names the variable. */
export class EnvReader {
  constructor(private readonly env: Record<string, string | undefined>) {}

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string, pattern?: RegExp, describe?: string): string {
    const value = this.raw(name) ?? fallback;
    if (pattern && !pattern.test(value)) {
      throw new ConfigError(name, `"${value}" is not ${describe ?? `a match for ${pattern}`}`);
    }
    return value;
  }

  optionalString(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    if (!/^-?\d+$/.test(text)) throw new ConfigError(name, `"${text}" is not an integer`);
    const value = Number(text);
    if (value < min || value > max) throw new ConfigError(name, `${value} is out of range [${min}, ${max}]`);
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const text = this.raw(name)?.toLowerCase();
    if (text === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(text)) return true;
    if (['0', 'false', 'no', 'off'].includes(text)) return false;
    throw new ConfigError(name, `"${text}" is not a boolean (true/false)`);
  }

  list(name: string, fallback: string[]): string[] {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const items = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new ConfigError(name, 'must list at least one value');
    return items;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const text = this.raw(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(text)) {
      throw new ConfigError(name, `"${text}" is not one of ${allowed.join(', ')}`);
    }
    return text as T;
  }

  /**
   * A credential from `name` or from the file `name`_FILE (a mounted Secret), never both.
   * One trailing newline of the file is dropped. Messages name the variable, never the value.
   */
  secret(name: string): Secret | undefined {
    const fileVariable = `${name}_FILE`;
    const inline = this.env[name];
    const path = this.raw(fileVariable);
    if (path !== undefined && inline !== undefined && inline !== '') {
      throw new ConfigError(name, `is set together with ${fileVariable}; set only one of them`);
    }
    if (path === undefined) return inline === undefined || inline.trim() === '' ? undefined : new Secret(inline.trim(), name);
    const value = this.readFile(fileVariable, path).toString('utf8').replace(/\r?\n$/, '');
    if (value === '') throw new ConfigError(fileVariable, `file "${path}" is empty`);
    return new Secret(value, fileVariable);
  }

  /** The contents of the file whose path `name` holds (certificates, keys), or undefined if unset. */
  file(name: string): Buffer | undefined {
    const path = this.raw(name);
    return path === undefined ? undefined : this.readFile(name, path);
  }

  private readFile(name: string, path: string): Buffer {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(name, `cannot read file "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
}
