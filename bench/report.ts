import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { LatencyResult, ThroughputResult } from './phases.js';
import type { BenchParams, SystemName } from './params.js';
import { median, ratio } from './stats.js';

export interface SystemSummary {
  system: SystemName;
  complete: boolean;
  /** Medians over rounds. */
  eventsPerSecond: number | null;
  eventsPerSecondInclStartup: number | null;
  startupMs: number | null;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  latencyReceived: string;
}

export interface RatioRow {
  name: string;
  numerator: SystemName;
  denominator: SystemName;
  /** numerator / denominator: < 1 means the numerator is slower. */
  throughput: number | null;
  throughputInclStartup: number | null;
  /** numerator / denominator: > 1 means the numerator is slower. */
  latencyP50: number | null;
  latencyP99: number | null;
}

export function summariseSystem(system: SystemName, throughput: ThroughputResult[], latency: LatencyResult[]): SystemSummary {
  const last = latency[latency.length - 1];
  return {
    system,
    complete: throughput.every((t) => t.complete) && latency.every((l) => l.complete),
    eventsPerSecond: median(throughput.map((t) => t.eventsPerSecond)),
    eventsPerSecondInclStartup: median(throughput.map((t) => t.eventsPerSecondInclStartup)),
    startupMs: median(throughput.map((t) => t.startupMs)),
    latencyP50Ms: median(latency.map((l) => l.latencyMs?.p50)),
    latencyP99Ms: median(latency.map((l) => l.latencyMs?.p99)),
    latencyMaxMs: median(latency.map((l) => l.latencyMs?.max)),
    latencyReceived: last ? `${last.received}/${last.sent}` : '-',
  };
}

const RATIOS: [SystemName, SystemName][] = [
  ['ordo-pipeline', 'baseline-tx'],
  ['ordo-pipeline', 'baseline-plain'],
  ['baseline-tx', 'baseline-plain'],
];

export function ratios(summaries: SystemSummary[]): RatioRow[] {
  const by = new Map(summaries.map((s) => [s.system, s]));
  const rows: RatioRow[] = [];
  for (const [a, b] of RATIOS) {
    const x = by.get(a);
    const y = by.get(b);
    if (!x || !y) continue;
    rows.push({
      name: `${a} / ${b}`,
      numerator: a,
      denominator: b,
      throughput: ratio(x.eventsPerSecond, y.eventsPerSecond),
      throughputInclStartup: ratio(x.eventsPerSecondInclStartup, y.eventsPerSecondInclStartup),
      latencyP50: ratio(x.latencyP50Ms, y.latencyP50Ms),
      latencyP99: ratio(x.latencyP99Ms, y.latencyP99Ms),
    });
  }
  return rows;
}

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  let kafkajs: string | undefined;
  try {
    kafkajs = (createRequire(import.meta.url)('kafkajs/package.json') as { version: string }).version;
  } catch {
    kafkajs = undefined;
  }
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    freeMemoryBytes: os.freemem(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    kafkajs,
  };
}

const int = (v: number | null): string => (v === null ? '-' : Math.round(v).toLocaleString('en-US'));
const ms = (v: number | null): string => (v === null ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: 1 }));
const x = (v: number | null): string => (v === null ? '-' : `${v.toFixed(2)}x`);

function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c < rightAlignFrom ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ').trimEnd())
    .join('\n');
}

export function formatReport(params: BenchParams, machine: Record<string, unknown>, summaries: SystemSummary[], ratioRows: RatioRow[]): string {
  const lines: string[] = [];
  lines.push(
    `Ordo bench: ${params.events.toLocaleString('en-US')} events, ${params.partitions} partitions; latency at ${params.latencyRate.toLocaleString('en-US')} ev/s for ${params.latencySeconds} s` +
      `${params.rounds > 1 ? `; median of ${params.rounds} rounds` : ''}`,
  );
  lines.push(`machine: ${String(machine.cpus)} cpus (${String(machine.cpuModel)}), node ${String(machine.node)}, kafkajs ${String(machine.kafkajs)}`);
  lines.push('');
  lines.push(
    table([
      ['system', 'throughput ev/s', 'incl. start-up ev/s', 'start-up ms', 'p50 ms', 'p99 ms', 'max ms', 'latency outputs', 'complete'],
      ...summaries.map((s) => [
        s.system, int(s.eventsPerSecond), int(s.eventsPerSecondInclStartup), int(s.startupMs),
        ms(s.latencyP50Ms), ms(s.latencyP99Ms), ms(s.latencyMaxMs), s.latencyReceived, s.complete ? 'yes' : 'NO',
      ]),
    ]),
  );
  if (ratioRows.length > 0) {
    lines.push('');
    lines.push(
      table([
        ['ratio', 'throughput', 'incl. start-up', 'latency p50', 'latency p99'],
        ...ratioRows.map((r) => [r.name, x(r.throughput), x(r.throughputInclStartup), x(r.latencyP50), x(r.latencyP99)]),
      ]),
    );
    lines.push('');
    lines.push('throughput ratio < 1: the first system is slower; latency ratio > 1: the first system is slower.');
  }
  return lines.join('\n');
}

/** Writes `result` to bench/results/<ISO timestamp>.json and bench/results/latest.json (atomically). */
export function writeResult(result: unknown, startedAt: Date): { file: string; latest: string } {
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const name = `${startedAt.toISOString().replace(/:/g, '-')}.json`;
  const text = JSON.stringify(result, null, 2) + '\n';
  const paths = { file: new URL(name, dir).pathname, latest: new URL('latest.json', dir).pathname };
  for (const path of [paths.file, paths.latest]) {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  }
  return paths;
}
