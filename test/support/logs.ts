import type { LogMeta, Logger } from '../../src/observability/logger.js';

export interface RecordedLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  meta?: LogMeta;
}

/** A Logger that keeps every line it is given (children included), for tests that check what was logged. */
export function recordingLogger(lines: RecordedLine[]): Logger {
  const log: Logger = {
    debug: (msg, meta) => lines.push({ level: 'debug', msg, meta }),
    info: (msg, meta) => lines.push({ level: 'info', msg, meta }),
    warn: (msg, meta) => lines.push({ level: 'warn', msg, meta }),
    error: (msg, meta) => lines.push({ level: 'error', msg, meta }),
    child: () => log,
  };
  return log;
}
