import type { LogLevel } from '../config/config.js';

export type LogMeta = Record<string, unknown>;

/** The narrow logging interface every module takes; `child` binds context (group, partition...). */
export interface Logger {
  debug(message: string, meta?: LogMeta): void;
  info(message: string, meta?: LogMeta): void;
  warn(message: string, meta?: LogMeta): void;
  error(message: string, meta?: LogMeta): void;
  child(bindings: LogMeta): Logger;
}

const RESERVED = new Set(['time', 'level', 'msg']);

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export const noopLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => noopLogger,
};

/** Structured JSON lines: {"time","level","msg",...bindings,...meta}. Errors become {name,message,code,stack}. */
export function jsonLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
  bindings: LogMeta = {},
): Logger {
  const threshold = RANK[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, meta?: LogMeta): void => {
    if (RANK[lvl] < threshold) return;
    const entry: LogMeta = { time: new Date().toISOString(), level: lvl, msg };
    // Context never overwrites time/level/msg: a clashing key is kept as `_key`.
    for (const source of [bindings, meta]) {
      if (source) for (const [k, v] of Object.entries(source)) entry[RESERVED.has(k) ? `_${k}` : k] = serialise(v);
    }
    write(JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  };
  return {
    debug: (m, meta) => emit('debug', m, meta),
    info: (m, meta) => emit('info', m, meta),
    warn: (m, meta) => emit('warn', m, meta),
    error: (m, meta) => emit('error', m, meta),
    child: (more) => jsonLogger(level, write, { ...bindings, ...more }),
  };
}

function serialise(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }), stack: value.stack };
  }
  return value;
}
