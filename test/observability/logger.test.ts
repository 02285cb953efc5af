import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { jsonLogger, noopLogger } from '../../src/observability/logger.js';

function capture(level: Parameters<typeof jsonLogger>[0] = 'info') {
  const lines: string[] = [];
  const logger = jsonLogger(level, (line) => lines.push(line));
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, entries };
}

describe('jsonLogger', () => {
  it('writes one JSON object per line with time, level and msg first, then meta', () => {
    const { logger, lines, entries } = capture();
    const before = Date.now();
    logger.info('task restored', { records: 12, seconds: 0.5, position: null });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    const [entry] = entries();
    expect(Object.keys(entry!).slice(0, 3)).toEqual(['time', 'level', 'msg']);
    expect(entry).toMatchObject({ level: 'info', msg: 'task restored', records: 12, seconds: 0.5, position: null });
    const time = Date.parse(entry!.time as string);
    expect(entry!.time).toBe(new Date(time).toISOString());
    expect(time).toBeGreaterThanOrEqual(before - 1);
    expect(time).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('never lets meta or bindings overwrite time, level or msg (kept as _key)', () => {
    const { logger, entries } = capture();
    logger.child({ level: 'x' }).error('real message', { msg: 'spoofed', time: 42 });
    const [entry] = entries();
    expect(entry).toMatchObject({ level: 'error', msg: 'real message', _level: 'x', _msg: 'spoofed', _time: 42 });
    expect(typeof entry!.time).toBe('string');
  });

  it('drops entries below the threshold', () => {
    const cases = {
      debug: ['debug', 'info', 'warn', 'error'],
      info: ['info', 'warn', 'error'],
      warn: ['warn', 'error'],
      error: ['error'],
      silent: [],
    } as const;
    for (const [threshold, expected] of Object.entries(cases)) {
      const { logger, entries } = capture(threshold as keyof typeof cases);
      logger.debug('d');
      logger.info('i');
      logger.warn('w');
      logger.error('e');
      expect(entries().map((e) => e.level)).toEqual(expected);
    }
  });

  it('defaults to info', () => {
    const lines: string[] = [];
    const logger = jsonLogger(undefined, (line) => lines.push(line));
    logger.debug('hidden');
    logger.info('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });

  it('binds context in child loggers, nested, without changing the parent', () => {
    const { logger, entries } = capture();
    const group = logger.child({ group: 'ordo-pipeline' });
    const task = group.child({ topic: 'usage-events', partition: 3 });
    task.warn('slow commit', { ms: 900 });
    group.info('rebalance');
    logger.info('plain');
    expect(entries()).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'slow commit', group: 'ordo-pipeline', topic: 'usage-events', partition: 3, ms: 900 }),
      expect.objectContaining({ msg: 'rebalance', group: 'ordo-pipeline' }),
      expect.objectContaining({ msg: 'plain' }),
    ]);
    expect(entries()[1]).not.toHaveProperty('partition');
    expect(entries()[2]).not.toHaveProperty('group');
  });

  it('keeps the threshold in children', () => {
    const { logger, lines } = capture('warn');
    logger.child({ a: 1 }).info('hidden');
    logger.child({ a: 1 }).error('shown');
    expect(lines).toHaveLength(1);
  });

  it('serialises errors with name, message, code and stack', () => {
    const { logger, entries } = capture();
    const error = new ConfigError('ORDO_MAX_SKEW_MS', '"abc" is not an integer');
    logger.error('bad config', { error, plain: new TypeError('boom') });
    const [entry] = entries();
    expect(entry!.error).toEqual({ name: 'ConfigError', message: 'ORDO_MAX_SKEW_MS: "abc" is not an integer', code: 'ORDO_CONFIG', stack: error.stack });
    expect(entry!.plain).toEqual({ name: 'TypeError', message: 'boom', stack: expect.stringContaining('TypeError: boom') as unknown });
    expect(entry!.plain).not.toHaveProperty('code');
  });

  it('writes bigint values as decimal strings, in meta and nested', () => {
    const { logger, entries } = capture();
    logger.info('stamp', { serviceTime: 18446744073709551615n, nested: { offset: 9007199254740993n } });
    expect(entries()[0]).toMatchObject({ serviceTime: '18446744073709551615', nested: { offset: '9007199254740993' } });
  });

  it('writes to stderr by default', () => {
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    };
    try {
      jsonLogger('info').info('to stderr');
    } finally {
      process.stderr.write = original;
    }
    expect(written).toHaveLength(1);
    expect(written[0]!.endsWith('\n')).toBe(true);
    expect(JSON.parse(written[0]!)).toMatchObject({ msg: 'to stderr' });
  });
});

describe('noopLogger', () => {
  it('accepts every call and returns itself as child', () => {
    expect(() => {
      noopLogger.debug('x', { a: 1 });
      noopLogger.info('x');
      noopLogger.warn('x');
      noopLogger.error('x', { error: new Error('e') });
    }).not.toThrow();
    expect(noopLogger.child({ a: 1 })).toBe(noopLogger);
  });
});
