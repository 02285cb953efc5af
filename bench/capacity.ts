/**
 * `npm run bench:capacity`: measures the constants of the capacity model (docs/scaling.md,
 * scripts/capacity.ts) and writes them to bench/results/capacity-constants.json. Runs under
 * `node --expose-gc` (the heap figures need global.gc). Reuses the bench's phases: the real
 * `pipeline` role with the bench meters through the broker (records written per topic,
 * bytes on the broker's disk per record, process CPU per event), the heap per entry
 * (bench/memory.ts), the restore rates (bench/restore.ts); adds CPU per step of the chain,
 * heap per held event, the `merge` role's ceiling through the broker, bytes per record
 * under topic compression and lmdb bytes per aggregate. Each figure is the median of
 * CAPACITY_ROUNDS runs (3): the machine is shared and 2-core, single runs are noise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kafka, Message } from 'kafkajs';
import { OrdoMetrics } from '../src/metrics/metrics.js';
import { noopLogger } from '../src/observability/logger.js';
import { ReadStore } from '../src/api/read-store.js';
import type { UsageAggregate } from '../src/usage/aggregation.js';
import { createMergeWorker } from '../src/roles/merge.js';
import { type AnchorSetup, prepareAnchors } from './anchors.js';
import { measureContributions, measureHeld, measureStages } from './capacity-stages.js';
import { EventFactory, deleteSubject } from './events.js';
import { benchKafka, cleanUp, createTopics, nowMs, uniqueName, waitUntil, withTimeout } from './kafka.js';
import { measureMemory } from './memory.js';
import { BENCH_METERS, UPDATES_PER_EVENT, benchMetersFile, removeBenchMetersFile } from './meters.js';
import { type BenchParams, loadParams } from './params.js';
import { type ThroughputResult, runThroughput } from './phases.js';
import { ordoConfig } from './processors.js';
import { OutputWatcher } from './reader.js';
import { changelogAggregate, runRestore } from './restore.js';
import { machineInfo } from './report.js';
import { median, round2 } from './stats.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const OUT = resolve(fileURLToPath(import.meta.url), '..', 'results', 'capacity-constants.json');
const COMPRESSIONS = ['zstd', 'lz4'] as const;

function log(line: string): void {
  process.stderr.write(`[capacity] ${line}\n`);
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`${name}: "${raw}" is not a whole number >= 1`);
  return Number(raw);
}

/** Bytes of each partition on the broker's disk, as the broker reports them (kafka-log-dirs, Java tools). */
function logDirSizes(anchors: AnchorSetup, brokers: string[], topics: string[]): Map<string, number> | string {
  if (anchors.state !== 'ready') return `no Java tools: ${anchors.reason}`;
  const r = spawnSync(anchors.anchors.java, ['-Xmx256m', '-cp', anchors.anchors.classpath, 'org.apache.kafka.tools.LogDirsCommand', '--bootstrap-server', brokers.join(','), '--describe', '--topic-list', topics.join(',')], { encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || line === undefined) return `kafka-log-dirs failed (exit ${r.status}): ${(r.stderr || r.stdout).slice(-400)}`;
  const parsed = JSON.parse(line) as { brokers: { logDirs: { partitions: { partition: string; size: number }[] }[] }[] };
  const sizes = new Map<string, number>();
  for (const b of parsed.brokers) {
    for (const d of b.logDirs) {
      for (const p of d.partitions) {
        const topic = p.partition.slice(0, p.partition.lastIndexOf('-'));
        sizes.set(topic, (sizes.get(topic) ?? 0) + p.size);
      }
    }
  }
  return sizes;
}

/** Copies every committed record of `from` to `to` (same partition, the pipeline's batch sizes) so the broker compresses it under `to`'s compression.type. */
async function copyTopic(kafka: Kafka, from: string, to: string, records: number, group: string): Promise<void> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  const consumer = kafka.consumer({ groupId: group, readUncommitted: false, allowAutoTopicCreation: false, maxBytesPerPartition: 4_194_304 });
  let copied = 0;
  await producer.connect();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: from, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (let i = 0; i < batch.messages.length; i += 2_000) {
          const chunk = batch.messages.slice(i, i + 2_000).map((m): Message => ({ key: m.key, value: m.value, headers: m.headers ?? {}, partition: batch.partition, timestamp: m.timestamp }));
          await producer.send({ topic: to, acks: -1, messages: chunk });
          copied += chunk.length;
        }
      },
    });
    const done = await waitUntil(() => copied >= records, 120_000);
    if (!done) throw new Error(`copying ${from}: ${copied} of ${records} records after 120 s`);
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
  }
}

interface MergeRun {
  records: number;
  eventsPerSecond: number | null;
  processCpuMs: number | null;
  startupMs: number | null;
}

/** The real `merge` role over the phase's ordered topic (already written): events/s to the global topic. */
async function runMerge(kafka: Kafka, params: BenchParams, prefix: string, records: number): Promise<MergeRun> {
  const config = ordoConfig(params, prefix, benchMetersFile(), 0);
  await createTopics(kafka, [config.topics.global], 1);
  const readerGroup = `${prefix}-global-reader`;
  const watcher = new OutputWatcher(kafka, config.topics.global, readerGroup, params.readerMaxWaitMs);
  const worker = createMergeWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    await watcher.start();
    await producer.connect();
    // The pipeline stopped: its last events wait for a watermark. Publish one per partition
    // far ahead (what an idle pipeline does), so the merge can release everything it reads.
    const far = String(Date.now() + 86_400_000);
    await producer.send({ topic: config.topics.watermarks, acks: -1, messages: Array.from({ length: params.partitions }, (_, p) => ({ key: String(p), value: far, partition: p })) });
    const t0 = nowMs();
    const cpu0 = process.cpuUsage();
    await withTimeout(worker.start(), 60_000, 'merge start');
    const done = await waitUntil(() => watcher.count >= records, params.drainTimeoutMs, { everyMs: 5, abort: () => (worker.state === 'failed' ? new Error('merge failed') : undefined) });
    const cpu = process.cpuUsage(cpu0);
    if (!done) throw new Error(`merge: ${watcher.count} of ${records} records on the global topic`);
    const first = watcher.firstAt!;
    const last = watcher.lastAt!;
    return {
      records,
      eventsPerSecond: last > first ? Math.round(((records - watcher.firstCount) / (last - first)) * 1000) : null,
      processCpuMs: round2((cpu.user + cpu.system) / 1000),
      startupMs: round2(first - t0),
    };
  } finally {
    await withTimeout(worker.stop(), 30_000, 'merge stop').catch(() => undefined);
    await watcher.stop().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteGroups([readerGroup, `${config.groupId}-merge`]).catch(() => undefined);
    await admin.disconnect();
  }
}

interface DiskRound {
  /** Per topic (suffix after the phase prefix): records, bytes on disk as written, and under each topic compression. */
  topics: Record<string, { records: number; bytes: number; bytesPerRecord: number | null; compressed: Record<string, number | null> }>;
  note?: string;
}

async function inspectPhase(kafka: Kafka, params: BenchParams, anchors: AnchorSetup, prefix: string, t: ThroughputResult, disk: DiskRound[], merges: MergeRun[]): Promise<void> {
  const written = t.writes?.topics ?? [];
  const names = written.filter((w) => w.records > 0).map((w) => w.name);
  const sizes = logDirSizes(anchors, params.brokers, [...names, 'in'].map((n) => `${prefix}-${n}`));
  const round: DiskRound = { topics: {} };
  if (typeof sizes === 'string') round.note = sizes;
  for (const w of written) {
    if (w.records === 0) continue;
    const bytes = typeof sizes === 'string' ? 0 : sizes.get(`${prefix}-${w.name}`) ?? 0;
    round.topics[w.name] = { records: w.records, bytes, bytesPerRecord: typeof sizes === 'string' ? null : round2(bytes / w.records), compressed: {} };
  }
  if (typeof sizes !== 'string') {
    const input = sizes.get(`${prefix}-in`) ?? 0;
    round.topics.in = { records: t.events, bytes: input, bytesPerRecord: round2(input / t.events), compressed: {} };
    for (const name of ['ordered', 'aggregates', 'g-unique-changelog']) {
      const topic = round.topics[name];
      if (topic === undefined) continue;
      for (const codec of COMPRESSIONS) {
        const to = `${prefix}-copy-${codec}-${name}`;
        await createTopics(kafka, [to], params.partitions, [{ name: 'compression.type', value: codec }]);
        await copyTopic(kafka, `${prefix}-${name}`, to, topic.records, `${prefix}-copy-${codec}-${name}-g`);
        const copied = logDirSizes(anchors, params.brokers, [to]);
        topic.compressed[codec] = typeof copied === 'string' ? null : round2((copied.get(to) ?? 0) / topic.records);
      }
    }
  }
  disk.push(round);
  log(`  disk: ${Object.entries(round.topics).map(([n, v]) => `${n} ${v.bytesPerRecord ?? '-'} B/record (${Object.entries(v.compressed).map(([c, b]) => `${c} ${b ?? '-'}`).join(', ')})`).join('; ')}`);
  const ordered = round.topics.ordered?.records ?? t.events;
  const merge = await runMerge(kafka, params, prefix, ordered);
  merges.push(merge);
  log(`  merge: ${merge.eventsPerSecond ?? '-'} ev/s, ${merge.processCpuMs} ms CPU for ${merge.records} events`);
}

/**
 * The api's store (src/api/read-store.ts): n bench aggregates applied into a ReadStore over
 * 12 partitions in batches of 2,000 (as fetched batches are), then its data file per
 * aggregate and the apply rate (records/s into lmdb, the CPU side of a replica's restore).
 */
async function apiStoreFigures(n: number, subjects: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'ordo-capacity-store-'));
  const partitions = 12;
  try {
    const store = ReadStore.open({ dir, topic: 'bench-aggregates', logger: noopLogger });
    const base = Date.UTC(2026, 8, 1);
    const batches = new Map<number, { key: string; aggregate: UsageAggregate }[]>();
    let applyMs = 0;
    let offset = 0n;
    const flush = async (partition: number): Promise<void> => {
      const batch = batches.get(partition) ?? [];
      batches.set(partition, []);
      if (batch.length === 0) return;
      offset += BigInt(batch.length);
      // CPU time, not wall time (apply is one synchronous lmdb transaction): the rate one core gives.
      const started = process.cpuUsage();
      await store.apply(partition, batch, offset);
      const used = process.cpuUsage(started);
      applyMs += (used.user + used.system) / 1000;
    };
    for (let i = 0; i < n; i++) {
      const record = changelogAggregate(i, subjects, base);
      const partition = i % partitions;
      const batch = batches.get(partition) ?? [];
      batch.push(record);
      batches.set(partition, batch);
      if (batch.length >= 2_000) await flush(partition);
    }
    for (let p = 0; p < partitions; p++) await flush(p);
    const held = store.size();
    const fileBytes = store.diskBytes();
    await store.close();
    const blocks = Number(spawnSync('du', ['-sB1', join(dir, 'data.mdb')], { encoding: 'utf8' }).stdout.split('\t')[0]);
    return {
      method: `src/api/read-store.ts ReadStore (merged from branch store): ${n} bench aggregates (bench/restore.ts changelogAggregate: HOUR/DAY windows, 4 meters) applied over ${partitions} partitions in batches of 2,000; bytesPerAggregate = diskBytes() (data.mdb size) / size(); applyRecordsPerSecond = records / process CPU time inside apply() (one core's rate; the machine is shared)`,
      aggregates: held,
      fileBytes,
      allocatedBytes: blocks,
      bytesPerAggregate: held > 0 ? Math.round(fileBytes / held) : null,
      applyRecordsPerSecond: applyMs > 0 ? Math.round((n / applyMs) * 1000) : null,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PARTS = ['broker', 'restore', 'memory', 'cpu', 'lmdb'] as const;
type Part = (typeof PARTS)[number];

/** CAPACITY_PARTS (default all): a subset re-measures only those sections of the existing file. */
function parts(): Set<Part> {
  const raw = process.env.CAPACITY_PARTS;
  if (raw === undefined || raw === '') return new Set(PARTS);
  const list = raw.split(',').map((p) => p.trim());
  for (const p of list) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`CAPACITY_PARTS: "${p}" is not one of ${PARTS.join(', ')}`);
  return new Set(list as Part[]);
}

async function measureBroker(params: BenchParams, rounds: number): Promise<Record<string, unknown>> {
  const anchors = prepareAnchors(log);
  if (anchors.state !== 'ready') log(`no Java tools, so no bytes on disk: ${anchors.reason}`);
  const runPrefix = uniqueName('cap');
  const kafka = benchKafka(params.brokers, 'capacity-admin');
  const inputSubject = `${runPrefix}-usage-events-value`;
  const factory = await EventFactory.register(params.registryUrl, inputSubject, params.subjects, params.contextRatio);
  const ctx = { params, factory, log, anchors };
  const now = Date.now();
  const messages = Array.from({ length: params.events }, (_, i) => factory.message('t-', i, now));
  const phases: ThroughputResult[] = [];
  const disk: DiskRound[] = [];
  const merges: MergeRun[] = [];
  try {
    if (params.warmupEvents > 0) {
      log(`warm-up: ${params.warmupEvents} events`);
      await runThroughput(ctx, 'ordo-aggregate', `${runPrefix}-warm`, messages.slice(0, params.warmupEvents));
    }
    for (let round = 1; round <= rounds; round++) {
      const prefix = `${runPrefix}-r${round}`;
      log(`round ${round}/${rounds}: pipeline with the bench meters, ${params.events} events x ${params.partitions} partitions, ${params.subjects} subjects`);
      const t = await runThroughput(ctx, 'ordo-aggregate', prefix, messages, { countWrites: true, inspect: (k, r) => inspectPhase(k, params, anchors, prefix, r, disk, merges) });
      phases.push(t);
      log(`  ${t.eventsPerSecond ?? '-'} ev/s, process CPU ${t.processCpuMs ?? '-'} ms${t.error ? `  ERROR: ${t.error}` : ''}`);
      if (!t.complete) throw new Error(`pipeline round ${round}: ${t.error ?? 'incomplete'}`);
    }
  } finally {
    await cleanUp(kafka, runPrefix);
    await deleteSubject(params.registryUrl, inputSubject);
    removeBenchMetersFile();
  }
  const med = (f: (t: ThroughputResult) => number | null | undefined): number | null => median(phases.map(f));
  const perEvent = (name: string): number | null => med((t) => {
    const w = t.writes?.topics.find((x) => x.name === name);
    return w ? w.records / t.events : null;
  });
  const bytesPer = (name: string, codec?: string): number | null =>
    median(disk.map((d) => (codec === undefined ? d.topics[name]?.bytesPerRecord : d.topics[name]?.compressed[codec]) ?? null));
  const details = phases.map((t) => t.details as { recordsPerTransaction?: number; meanTransactionMs?: number });
  return {
    pipeline: {
      method: 'bench/phases.ts runThroughput of the ordo-aggregate system (the real pipeline role in process, bench meters, reorder window 0, corrections on) over N pre-produced events; processCpuMs = process.cpuUsage from start to all N visible (includes the bench reader of the ordered topic)',
      eventsPerSecond: med((t) => t.eventsPerSecond),
      processCpuMicrosPerEvent: med((t) => (t.processCpuMs == null ? null : round2((t.processCpuMs * 1000) / t.events))),
      recordsPerTransaction: median(details.map((d) => d.recordsPerTransaction)),
      meanTransactionMs: median(details.map((d) => d.meanTransactionMs)),
      rounds: phases.map((t) => ({ eventsPerSecond: t.eventsPerSecond, processCpuMs: t.processCpuMs, writes: t.writes?.topics.map((w) => ({ name: w.name, records: w.records })) })),
    },
    recordsPerEvent: {
      method: 'bench/writes.ts: committed records per topic of the phase / N events (medians of the rounds)',
      ordered: perEvent('ordered'),
      aggregates: perEvent('aggregates'),
      uniqueChangelog: perEvent('g-unique-changelog'),
      metaChangelog: perEvent('g-meta-changelog'),
    },
    diskBytesPerRecord: {
      method: 'bytes of the topic on the broker (kafka-log-dirs, org.apache.kafka.tools.LogDirsCommand: segment bytes incl. batch headers, transaction markers and aborted records) / committed records, before any compaction; as written (Ordo\'s producers do not compress), and for copies of the same records (same partitions, batches of the pipeline\'s size) into topics with compression.type zstd and lz4 (the broker compresses). The bench events are repetitive: the compressed figures are a best case',
      input: bytesPer('in'),
      ordered: bytesPer('ordered'),
      aggregates: bytesPer('aggregates'),
      uniqueChangelog: bytesPer('g-unique-changelog'),
      compressed: Object.fromEntries(COMPRESSIONS.map((c) => [c, { ordered: bytesPer('ordered', c), aggregates: bytesPer('aggregates', c), uniqueChangelog: bytesPer('g-unique-changelog', c) }])),
      rounds: disk,
    },
    merge: {
      method: 'the real merge role (createMergeWorker, in process) over the ordered topic the round\'s pipeline wrote (P partitions -> the one global partition), a far-ahead watermark per partition published first; eventsPerSecond as the pipeline\'s: (N - first visible batch) / (first -> last visible on the global topic)',
      eventsPerSecond: median(merges.map((m) => m.eventsPerSecond)),
      processCpuMicrosPerEvent: median(merges.map((m) => (m.processCpuMs === null ? null : round2((m.processCpuMs * 1000) / m.records)))),
      rounds: merges,
    },
  };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  if (globalThis.gc === undefined) throw new Error('run with node --expose-gc (npm run bench:capacity)');
  const params: BenchParams = { ...loadParams(), systems: ['ordo-aggregate'] };
  const selected = parts();
  const rounds = envInt('CAPACITY_ROUNDS', 3);
  const stageEvents = envInt('CAPACITY_STAGE_EVENTS', 40_000);
  const heldEvents = envInt('CAPACITY_HELD_EVENTS', 50_000);
  const lmdbAggregates = envInt('CAPACITY_LMDB_AGGREGATES', 200_000);
  const previous = selected.size < PARTS.length && existsSync(OUT) ? (JSON.parse(readFileSync(OUT, 'utf8')) as Record<string, unknown>) : {};
  const sections: Record<string, unknown> = {};
  if (selected.has('broker')) Object.assign(sections, await measureBroker(params, rounds));
  if (selected.has('restore')) {
    log('restore phase (bench/restore.ts)');
    const prefix = uniqueName('cap-restore');
    const restore = await runRestore(params, prefix, log);
    await cleanUp(benchKafka(params.brokers, 'capacity-admin'), prefix);
    sections.restore = {
      method: 'bench/restore.ts runRestore: one compacted changelog partition of aggregates read into an InMemoryStore (recordsPerSecond, median of repetitions, incl. start-up) and into lmdb after a crash (persistent.fullRecordsPerSecond)',
      recordsPerSecond: restore.recordsPerSecond,
      steadyRecordsPerSecond: restore.steadyRecordsPerSecond,
      lmdbRecordsPerSecond: restore.persistent?.fullRecordsPerSecond ?? null,
      cleanRestartSeconds: restore.persistent?.cleanRestartSeconds ?? null,
      meanKeyBytes: restore.meanKeyBytes,
      meanValueBytes: restore.meanValueBytes,
      records: restore.records,
    };
  }
  if (selected.has('memory')) {
    log('heap per entry (bench/memory.ts) and per held event');
    const memory = await measureMemory(params, 'in process (node --expose-gc), bench/memory.ts measureMemory');
    const held = await measureHeld(heldEvents, params.subjects);
    const contributions = await measureContributions(heldEvents, params.subjects);
    sections.memory = {
      method: memory.method,
      bytesPerAggregateInStore: memory.bytesPerAggregateInStore,
      bytesPerAggregateInReadModel: memory.bytesPerAggregateInReadModel,
      bytesPerDedupeId: memory.bytesPerDedupeId,
      bytesPerUniqueMember: memory.bytesPerUniqueMember,
      bytesPerHeldEvent: held.bytesPerHeldEvent,
      bytesPerContribution: contributions.bytesPerContribution,
      held,
      contributions,
      raw: memory,
    };
  }
  if (selected.has('cpu')) {
    log(`CPU per step (${Math.max(rounds, 5)} rounds of ${stageEvents} events)`);
    sections.cpu = await measureStages({ events: stageEvents, batch: 2_000, rounds: Math.max(rounds, 5), subjects: params.subjects, contextRatio: params.contextRatio });
  }
  if (selected.has('lmdb')) {
    log('api store (ReadStore): bytes per aggregate and apply rate');
    sections.apiStore = await apiStoreFigures(lmdbAggregates, params.subjects);
  }
  const before = previous.measuredAt;
  const measuredAt = { ...(typeof before === 'string' ? Object.fromEntries(PARTS.map((p) => [p, before])) : ((before ?? {}) as Record<string, string>)), ...Object.fromEntries([...selected].map((p) => [p, startedAt.toISOString()])) };
  // Rates measured in wall time (restore, merge and pipeline events/s) follow the machine's load: keep it per part.
  const load = machineInfo().loadAverage;
  const loadAverage = { ...((previous.loadAverage ?? {}) as Record<string, unknown>), ...Object.fromEntries([...selected].map((p) => [p, load])) };
  const result = {
    ...previous,
    what: 'The measured constants of the capacity model (docs/scaling.md, scripts/capacity.ts). Regenerate: npm run bench:capacity (broker, registry and a JDK for kafka-log-dirs needed); CAPACITY_PARTS=broker,restore,memory,cpu,lmdb re-measures a subset.',
    measuredAt,
    loadAverage,
    machine: machineInfo(),
    parameters: { events: params.events, partitions: params.partitions, subjects: params.subjects, contextRatio: params.contextRatio, rounds, stageEvents, heldEvents, lmdbAggregates, meters: BENCH_METERS.map((m) => `${m.slug} ${m.aggregation} ${m.windows.join('/')}`), aggregatesPerEvent: UPDATES_PER_EVENT },
    caveat: 'A shared 2-core machine running the broker, the registry and other jobs: CPU and rate figures are medians of the rounds and move by +-30 % between runs; bytes and records per event are stable.',
    ...sections,
  };
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  log(`written to ${OUT} (${[...selected].join(', ')}) in ${Math.round((Date.now() - startedAt.getTime()) / 1000)} s`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
