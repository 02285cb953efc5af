import { describe, expect, it } from 'vitest';
import { CapacityArgsError, parseCapacityArgs, parseDuration } from '../../src/capacity/capacity-args.js';
import { WORKLOAD_DEFAULTS } from '../../src/capacity/capacity-model.js';

const bad = (argv: string[]): string => {
  try {
    parseCapacityArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(CapacityArgsError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
};

describe('npm run capacity flags', () => {
  it('reads a workload with defaults, and one per (events/s, subjects) pair', () => {
    const args = parseCapacityArgs(['--events-per-second', '1000,10000', '--subjects=10000', '--windows', 'hour,DAY', '--retention', 'HOUR=35d,DAY=forever', '--partitions', '12', '--merge', 'false']);
    expect(args.workloads.map((w) => [w.eventsPerSecond, w.subjects])).toEqual([[1000, 10000], [10000, 10000]]);
    const w = args.workloads[0]!;
    expect(w.windows).toEqual(['HOUR', 'DAY']);
    expect(w.retention).toEqual({ HOUR: 35 * 86_400_000, DAY: null });
    expect(w.partitions).toBe(12);
    expect(w.merge).toBe(false);
    expect(w.replication).toBe(WORKLOAD_DEFAULTS.replication);
    expect(parseCapacityArgs(['--events-per-second', '1e5', '--subjects', '1e7']).workloads[0]).toMatchObject({ eventsPerSecond: 100_000, subjects: 10_000_000 });
  });

  it('parses durations', () => {
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration('1.5h', 'x')).toBe(5_400_000);
    expect(() => parseDuration('3 weeks', 'lateness')).toThrow(/--lateness: "3 weeks" is not a duration/);
  });

  it('names the flag and the defect of every bad input', () => {
    expect(bad([])).toMatch(/--events-per-second is required/);
    expect(bad(['--events-per-second', '100'])).toMatch(/--subjects is required/);
    expect(bad(['--events-per-second', 'many', '--subjects', '1'])).toMatch(/--events-per-second: "many" is not a number/);
    expect(bad(['--events-per-second', '0', '--subjects', '1'])).toMatch(/--events-per-second: "0" must be a number >= 1/);
    expect(bad(['--events-per-second', '10', '--subjects', '1.5'])).toMatch(/--subjects: "1.5" must be a whole number >= 1/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--windows', 'WEEK'])).toMatch(/--windows: "WEEK" is not a window size \(MINUTE, HOUR, DAY, MONTH\)/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--windows', 'DAY,DAY'])).toMatch(/names a window size twice/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--retention', 'HOUR'])).toMatch(/--retention: "HOUR" is not SIZE=DURATION/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--retention', 'HOUR=1d,HOUR=2d'])).toMatch(/HOUR is given twice/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--speed', '3'])).toMatch(/unknown flag --speed/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--subjects', '3'])).toMatch(/--subjects is given twice/);
    expect(bad(['--events-per-second', '10', '--subjects'])).toMatch(/--subjects needs a value/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', 'extra'])).toMatch(/unexpected argument "extra"/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--merge', 'yes'])).toMatch(/--merge: "yes" is not true or false/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--utilization', '1.5'])).toMatch(/--utilization: "1.5" is not a share in \(0, 1\]/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--api-store-per-replica', '64G'])).toMatch(/is not a size/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--meters', '2', '--unique-meters', '3'])).toMatch(/--unique-meters \(3\) cannot be more than --meters \(2\)/);
    expect(bad(['--events-per-second', '10', '--subjects', '10', '--horizon', '0d'])).toMatch(/--horizon must be more than 0/);
  });

  it('answers --help without requiring anything', () => {
    expect(parseCapacityArgs(['--help'])).toMatchObject({ help: true, workloads: [] });
  });
});
