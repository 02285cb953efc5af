import type { RetentionPolicy } from '../usage/retention.js';
import { WINDOW_SIZES, type WindowSize } from '../usage/windows.js';
import { WORKLOAD_DEFAULTS, type Workload } from './capacity-model.js';

/** A bad flag of `npm run capacity`: the message names the flag and what it takes. */
export class CapacityArgsError extends Error {
  override name = 'CapacityArgsError';
}

/** Every flag and its help line. */
const FLAGS: Record<string, { help: string }> = {
  'events-per-second': { help: 'events/s into usage-events (required; a comma list gives one column each)' },
  subjects: { help: 'distinct subjects (required; a comma list gives one column each)' },
  meters: { help: 'meters every event updates (4)' },
  windows: { help: 'window sizes each meter keeps (HOUR,DAY,MONTH)' },
  groups: { help: 'group-by values per subject and meter (1)' },
  'unique-meters': { help: 'of the meters, UNIQUE_COUNT ones (1)' },
  'members-per-subject': { help: 'distinct members a subject has, for UNIQUE_COUNT (25)' },
  retention: { help: 'per window size once final, e.g. HOUR=35d,DAY=730d (absent: for ever)' },
  horizon: { help: 'how long the system has run, bounds "for ever" (365d)' },
  partitions: { help: 'partitions of the topics (default: the least that fits, at least 6)' },
  replication: { help: 'replication factor (3)' },
  'input-retention': { help: 'retention of usage-events (7d)' },
  'ordered-retention': { help: 'retention of usage-events-ordered and -global (7d)' },
  lateness: { help: 'ORDO_ALLOWED_LATENESS_MS (35d)' },
  'dedupe-window': { help: 'ORDO_DEDUPE_WINDOW_MS (24h)' },
  'reorder-window': { help: 'ORDO_REORDER_WINDOW_MS (1s)' },
  corrections: { help: 'ORDO_CORRECTIONS (true)' },
  merge: { help: 'the merge role and global topic run (true)' },
  'max-batch': { help: 'ORDO_MAX_BATCH_RECORDS (2000)' },
  utilization: { help: 'share of a core a pipeline replica is planned at (0.6)' },
  'api-store-per-replica': { help: 'lmdb bytes one api replica may hold (64GiB)' },
  'min-api-replicas': { help: 'api replicas at least (2)' },
  'pipeline-memory-per-replica': { help: 'heap a pipeline replica\'s state may take before a warning (16GiB)' },
  constants: { help: 'path of the constants file (bench/results/capacity-constants.json)' },
};

export function capacityHelp(): string {
  return ['usage: npm run capacity -- --events-per-second N --subjects N [flags]', '', ...Object.entries(FLAGS).map(([name, f]) => `  --${name.padEnd(22)} ${f.help}`)].join('\n');
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `35d`, `12h`, `90m`, `30s`, `500ms` -> ms. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (m === null) throw new CapacityArgsError(`--${flag}: "${text}" is not a duration (a number and one of ms, s, m, h, d, e.g. 35d)`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

function parseCount(text: string, flag: string, min = 1): number {
  if (!/^\d+(\.\d+)?(e\d+)?$/i.test(text.trim())) throw new CapacityArgsError(`--${flag}: "${text}" is not a number`);
  const v = Number(text);
  if (!Number.isFinite(v) || v < min || (flag !== 'events-per-second' && !Number.isInteger(v))) {
    throw new CapacityArgsError(`--${flag}: "${text}" must be ${flag === 'events-per-second' ? 'a number' : 'a whole number'} >= ${min}`);
  }
  return v;
}

function parseWindows(text: string, flag: string): WindowSize[] {
  const sizes = text.split(',').map((s) => s.trim().toUpperCase());
  for (const s of sizes) if (!(WINDOW_SIZES as readonly string[]).includes(s)) throw new CapacityArgsError(`--${flag}: "${s}" is not a window size (${WINDOW_SIZES.join(', ')})`);
  if (new Set(sizes).size !== sizes.length) throw new CapacityArgsError(`--${flag}: "${text}" names a window size twice`);
  return sizes as WindowSize[];
}

function parseRetention(text: string, flag: string): RetentionPolicy {
  const policy: RetentionPolicy = {};
  for (const item of text.split(',')) {
    const [size, value, ...rest] = item.split('=');
    if (value === undefined || rest.length > 0) throw new CapacityArgsError(`--${flag}: "${item}" is not SIZE=DURATION (e.g. HOUR=35d, DAY=forever)`);
    const [window] = parseWindows(size!, flag);
    if (Object.hasOwn(policy, window!)) throw new CapacityArgsError(`--${flag}: ${window} is given twice`);
    policy[window!] = value.trim() === 'forever' ? null : parseDuration(value, flag);
  }
  return policy;
}

function parseBytes(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB)$/.exec(text.trim());
  if (m === null) throw new CapacityArgsError(`--${flag}: "${text}" is not a size (a number and B, KiB, MiB, GiB or TiB, e.g. 64GiB)`);
  const v = Number(m[1]) * 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB'].indexOf(m[2]!);
  if (v <= 0) throw new CapacityArgsError(`--${flag}: "${text}" must be more than 0`);
  return v;
}

export interface CapacityArgs {
  /** One workload per (events/s, subjects) pair, events/s varying slowest. */
  workloads: Workload[];
  constantsPath: string | undefined;
  help: boolean;
}

/** Parses `--flag value` / `--flag=value` arguments; throws CapacityArgsError naming the flag. */
export function parseCapacityArgs(argv: readonly string[]): CapacityArgs {
  const values = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new CapacityArgsError(`unexpected argument "${arg}" (flags are --name value; --help lists them)`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!Object.hasOwn(FLAGS, name)) throw new CapacityArgsError(`unknown flag --${name} (--help lists them)`);
    if (values.has(name)) throw new CapacityArgsError(`--${name} is given twice`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value.startsWith('--')) throw new CapacityArgsError(`--${name} needs a value`);
    values.set(name, value);
  }
  if (help) return { workloads: [], constantsPath: undefined, help };
  for (const required of ['events-per-second', 'subjects']) if (!values.has(required)) throw new CapacityArgsError(`--${required} is required (--help lists the flags)`);
  const base = { ...WORKLOAD_DEFAULTS };
  const get = <T>(name: string, parse: (text: string, flag: string) => T, fallback: T): T => (values.has(name) ? parse(values.get(name)!, name) : fallback);
  const bool = (text: string, flag: string): boolean => {
    if (text === 'true' || text === 'false') return text === 'true';
    throw new CapacityArgsError(`--${flag}: "${text}" is not true or false`);
  };
  const share = (text: string, flag: string): number => {
    const v = Number(text);
    if (!(v > 0 && v <= 1)) throw new CapacityArgsError(`--${flag}: "${text}" is not a share in (0, 1]`);
    return v;
  };
  const list = (name: string): number[] => values.get(name)!.split(',').map((t) => parseCount(t, name));
  const workload: Omit<Workload, 'eventsPerSecond' | 'subjects'> = {
    meters: get('meters', parseCount, base.meters),
    windows: get('windows', parseWindows, base.windows),
    groups: get('groups', parseCount, base.groups),
    uniqueMeters: get('unique-meters', (t, f) => parseCount(t, f, 0), base.uniqueMeters),
    membersPerSubject: get('members-per-subject', parseCount, base.membersPerSubject),
    retention: get('retention', parseRetention, base.retention),
    horizonMs: get('horizon', parseDuration, base.horizonMs),
    partitions: get('partitions', parseCount, base.partitions),
    replication: get('replication', parseCount, base.replication),
    inputRetentionMs: get('input-retention', parseDuration, base.inputRetentionMs),
    orderedRetentionMs: get('ordered-retention', parseDuration, base.orderedRetentionMs),
    allowedLatenessMs: get('lateness', parseDuration, base.allowedLatenessMs),
    dedupeWindowMs: get('dedupe-window', parseDuration, base.dedupeWindowMs),
    reorderWindowMs: get('reorder-window', parseDuration, base.reorderWindowMs),
    corrections: get('corrections', bool, base.corrections),
    merge: get('merge', bool, base.merge),
    maxBatchRecords: get('max-batch', parseCount, base.maxBatchRecords),
    utilization: get('utilization', share, base.utilization),
    apiStorePerReplicaBytes: get('api-store-per-replica', parseBytes, base.apiStorePerReplicaBytes),
    minApiReplicas: get('min-api-replicas', parseCount, base.minApiReplicas),
    pipelineMemoryPerReplicaBytes: get('pipeline-memory-per-replica', parseBytes, base.pipelineMemoryPerReplicaBytes),
  };
  if (workload.uniqueMeters > workload.meters) throw new CapacityArgsError(`--unique-meters (${workload.uniqueMeters}) cannot be more than --meters (${workload.meters})`);
  if (workload.horizonMs <= 0) throw new CapacityArgsError('--horizon must be more than 0');
  const workloads: Workload[] = [];
  for (const eventsPerSecond of list('events-per-second')) {
    for (const subjects of list('subjects')) workloads.push({ ...workload, eventsPerSecond, subjects });
  }
  return { workloads, constantsPath: values.get('constants'), help };
}
