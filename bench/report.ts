import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { LatencyResult, ThroughputResult } from './phases.js';
import type { BenchParams, SystemName } from './params.js';
import type { QueryResult } from './query.js';
import type { RestoreResult } from './restore.js';
import { median, ratio } from './stats.js';
import type { TopicWrites } from './writes.js';

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
  /** kafka-producer-perf only: its throughput measured from the outside (median); the headline is the tool's own figure. */
  measuredEventsPerSecond: number | null;
  /** Throughput / kafka-producer-perf's (the broker's limit) and / baseline-tx's; null without them. */
  throughputVsLimit: number | null;
  throughputVsBaselineTx: number | null;
  /** Records written per input event (medians over rounds): outputs and state (`*-changelog`). */
  outputsPerEvent: number | null;
  statePerEvent: number | null;
  /** The last round's per-topic split. */
  writesByTopic: TopicWrites[];
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
    measuredEventsPerSecond: median(throughput.map((t) => t.measuredEventsPerSecond)),
    throughputVsLimit: null,
    throughputVsBaselineTx: null,
    outputsPerEvent: median(throughput.map((t) => t.writes?.outputsPerEvent)),
    statePerEvent: median(throughput.map((t) => t.writes?.statePerEvent)),
    writesByTopic: throughput.filter((t) => t.writes).pop()?.writes?.topics ?? [],
  };
}

/** Fills every summary's throughput ratios to the broker's limit (kafka-producer-perf) and to baseline-tx. */
export function withAnchorRatios(summaries: SystemSummary[]): SystemSummary[] {
  const rate = (system: SystemName): number | null => summaries.find((s) => s.system === system)?.eventsPerSecond ?? null;
  const limit = rate('kafka-producer-perf');
  const tx = rate('baseline-tx');
  return summaries.map((s) => ({ ...s, throughputVsLimit: ratio(s.eventsPerSecond, limit), throughputVsBaselineTx: ratio(s.eventsPerSecond, tx) }));
}

const RATIOS: [SystemName, SystemName][] = [
  // The anchors: what the Java client does against the broker's limit and against kafkajs.
  ['java-eos-passthrough', 'kafka-producer-perf'],
  ['baseline-tx', 'java-eos-passthrough'],
  ['ordo-window-0', 'baseline-tx'],
  ['ordo-window-0', 'java-eos-passthrough'],
  ['ordo-pipeline', 'baseline-tx'],
  ['ordo-pipeline', 'baseline-plain'],
  ['baseline-tx', 'baseline-plain'],
  ['ordo-aggregate', 'baseline-tx'],
  ['ordo-aggregate', 'baseline-plain'],
  ['ordo-aggregate', 'ordo-window-0'],
  // Corrections (issue 14): keeping every event's contribution, against not.
  ['ordo-aggregate', 'ordo-aggregate-no-corrections'],
  // Ordering: each reorder window against the raw passthrough and against window 0.
  ['ordo-window-0', 'baseline-plain'],
  ['ordo-window-250', 'baseline-plain'],
  ['ordo-window-3000', 'baseline-plain'],
  ['ordo-window-250', 'ordo-window-0'],
  ['ordo-pipeline', 'ordo-window-0'],
  ['ordo-window-3000', 'ordo-window-0'],
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
const ms2 = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
const x = (v: number | null): string => (v === null ? '-' : `${v.toFixed(2)}x`);
const perEvent = (v: number | null): string => (v === null ? '-' : v.toFixed(2));

/** `ordered 1.00, aggregates 1.12` for one class of a system's written topics ('-' when none). */
function split(topics: TopicWrites[], c: TopicWrites['class']): string {
  const parts = topics.filter((t) => t.class === c).map((t) => `${t.name} ${perEvent(t.perEvent)}`);
  return parts.length > 0 ? parts.join(', ') : '-';
}

function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c < rightAlignFrom ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ').trimEnd())
    .join('\n');
}

export function formatReport(
  params: BenchParams,
  machine: Record<string, unknown>,
  summaries: SystemSummary[],
  ratioRows: RatioRow[],
  extra: { query: QueryResult | null; restore: RestoreResult | null } = { query: null, restore: null },
): string {
  const lines: string[] = [];
  lines.push(
    `Ordo bench: ${params.events.toLocaleString('en-US')} events, ${params.partitions} partitions; latency at ${params.latencyRate.toLocaleString('en-US')} ev/s for ${params.latencySeconds} s` +
      `${params.rounds > 1 ? `; median of ${params.rounds} rounds` : ''}`,
  );
  lines.push(`machine: ${String(machine.cpus)} cpus (${String(machine.cpuModel)}), node ${String(machine.node)}, kafkajs ${String(machine.kafkajs)}`);
  lines.push('');
  lines.push(
    table([
      ['system', 'throughput ev/s', '/ limit', '/ baseline-tx', 'incl. start-up ev/s', 'start-up ms', 'outputs/ev', 'state/ev', 'p50 ms', 'p99 ms', 'max ms', 'latency outputs', 'complete'],
      ...summaries.map((s) => [
        s.system, int(s.eventsPerSecond), x(s.throughputVsLimit), x(s.throughputVsBaselineTx), int(s.eventsPerSecondInclStartup), int(s.startupMs),
        perEvent(s.outputsPerEvent), perEvent(s.statePerEvent),
        ms(s.latencyP50Ms), ms(s.latencyP99Ms), ms(s.latencyMaxMs), s.latencyReceived, s.complete ? 'yes' : 'NO',
      ]),
    ]),
  );
  lines.push('/ limit: throughput / kafka-producer-perf (Kafka\'s own transactional producer: the broker\'s limit); outputs/ev, state/ev: records written per input event.');
  const perf = summaries.find((s) => s.system === 'kafka-producer-perf');
  if (perf) {
    lines.push(
      `kafka-producer-perf: its own figure (records sent / its send time, commits every ${params.perfTransactionMs} ms); ` +
        `from the outside ${int(perf.measuredEventsPerSecond)} ev/s (visible one transaction at a time: coarse)`,
    );
  }
  const written = summaries.filter((s) => s.writesByTopic.length > 0);
  if (written.length > 0) {
    lines.push('');
    lines.push('Records written per input event, by topic (outputs | state):');
    lines.push(
      table(
        [
          ['system', 'outputs', 'state'],
          ...written.map((s) => [s.system, split(s.writesByTopic, 'outputs'), split(s.writesByTopic, 'state')]),
        ],
        3,
      ),
    );
  }
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
  if (extra.query) lines.push('', ...formatQuery(extra.query));
  if (extra.restore) lines.push('', ...formatRestore(extra.restore));
  return lines.join('\n');
}

const bytes = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : `${Math.round(v).toLocaleString('en-US')} B`);

function formatQuery(q: QueryResult): string[] {
  const lines: string[] = [];
  lines.push(
    `Query latency: GET /v1/meters/{slug}/usage on the real API server, ${q.requestsPerN.toLocaleString('en-US')} sequential requests per N ` +
      `(kinds in turn, Ns alternating), over aggregates of N events folded in process (${q.subjects} subjects, ${q.month.from.slice(0, 7)})`,
  );
  if (q.error) lines.push(`  INCOMPLETE: ${q.error}`);
  lines.push(
    table([
      ['events', 'aggregates', 'fold ev/s', 'fold records out/event', 'p50 ms', 'p99 ms'],
      ...q.cases.map((c) => [
        int(c.events) + (c.allWindowsFilled ? '' : ' (sparse)'),
        int(c.readModelAggregates),
        int(c.fold.eventsPerSecond),
        c.fold.events > 0 ? (c.fold.outputs / c.fold.events).toFixed(2) : '-',
        ms2(c.latencyMs?.p50 ?? null),
        ms2(c.latencyMs?.p99 ?? null),
      ]),
    ]),
  );
  lines.push('');
  lines.push(
    table([
      ['query kind', 'windowsRead', 'rows', ...q.cases.map((c) => `p50 / p99 ms @ ${int(c.events)}`), ...(q.ratio ? ['ratio p50 / p99'] : [])],
      ...q.kinds.map((k, i) => {
        const distinct = (values: (number | null | undefined)[]): string => [...new Set(values.map((v) => (v === null || v === undefined ? '-' : String(v))))].join(' vs ');
        const byKind = q.ratio?.byKind[i];
        return [
          k.name,
          distinct(q.cases.map((c) => c.kinds[i]?.windowsRead)),
          distinct(q.cases.map((c) => c.kinds[i]?.rows)),
          ...q.cases.map((c) => `${ms2(c.kinds[i]?.latencyMs?.p50 ?? null)} / ${ms2(c.kinds[i]?.latencyMs?.p99 ?? null)}`),
          ...(byKind ? [`${x(byKind.p50)} / ${x(byKind.p99)}`] : []),
        ];
      }),
    ]),
  );
  if (q.ratio) {
    lines.push(
      `${int(q.ratio.numeratorEvents)} / ${int(q.ratio.denominatorEvents)} events: latency p50 ${x(q.ratio.p50)}, p99 ${x(q.ratio.p99)} ` +
        `(flat read = about 1.00x); windowsRead equal: ${yesNo(q.windowsReadEqual)}; aggregates equal: ${yesNo(q.aggregatesEqual)}`,
    );
  }
  const m = q.memory;
  if (m) {
    lines.push(
      `heap (${int(m.events)} events, ${m.method.startsWith('child') ? '--expose-gc child' : 'global.gc'}): ${bytes(m.bytesPerAggregateInStore)} per aggregate in the store, ` +
        `${bytes(m.bytesPerAggregateInReadModel)} per aggregate in the read model, ${bytes(m.bytesPerDedupeId)} per dedupe id, ${bytes(m.bytesPerUniqueMember)} per unique member`,
    );
  } else {
    lines.push(`heap per entry: not measured (${q.memoryNote ?? 'unknown reason'})`);
  }
  return lines;
}

function formatRestore(r: RestoreResult): string[] {
  const lines = [
    `State restore: restorePartitions over ${int(r.records)} aggregate changelog records (1 partition, ~${Math.round((r.meanKeyBytes ?? 0) + (r.meanValueBytes ?? 0))} B each), ` +
      `median of ${r.repetitions.length}: ${int(r.recordsPerSecond)} records/s, ${r.seconds ?? '-'} s ` +
      `(first record after ${ms(r.firstRecordMs)} ms; then ${int(r.steadyRecordsPerSecond)} records/s)`,
  ];
  const p = r.persistent;
  if (p) {
    lines.push(`  into lmdb (ORDO_STATE_DIR) after a crash: ${int(p.fullRecordsPerSecond)} records/s, ${p.fullSeconds} s; ` +
      `clean restart from the checkpoint: ready in ${p.cleanRestartSeconds} s (${int(p.tailRecords)} tail records, ${int(p.storeSize)} entries)`);
  }
  if (r.error) lines.push(`  INCOMPLETE: ${r.error}`);
  return lines;
}

function yesNo(v: boolean | null): string {
  return v === null ? '-' : v ? 'yes' : 'NO';
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
