import { ConfigError } from '../errors.js';

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
}
