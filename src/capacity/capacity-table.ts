import type { CapacityConstants } from './constants.js';
import type { CapacityPlan } from './capacity-model.js';

/** 1.2k, 3.4M, 5.6G: counts for people. */
export function count(v: number): string {
  const abs = Math.abs(v);
  for (const [limit, suffix] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (abs >= limit) return `${trim(v / limit)}${suffix}`;
  }
  return trim(v);
}

/** Bytes in binary units. */
export function bytes(v: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${trim(v)} ${units[i]}`;
}

export function seconds(v: number): string {
  if (v < 1) return '< 1 s';
  if (v < 120) return `${Math.round(v)} s`;
  if (v < 7_200) return `${trim(v / 60)} min`;
  if (v < 172_800) return `${trim(v / 3_600)} h`;
  return `${trim(v / 86_400)} d`;
}

function trim(v: number): string {
  if (v !== 0 && Math.abs(v) < 0.1) return String(Number(v.toPrecision(2)));
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return String(Number(v.toFixed(digits)));
}

function rate(bytesPerSecond: number): string {
  return `${trim(bytesPerSecond / 1e6)} MB/s`;
}

/** The rows of the table: a label and the cell of each plan. */
const ROWS: [string, (p: CapacityPlan) => string][] = [
  ['partitions', (p) => String(p.partitions)],
  ['aggregates updated per event / records written per event', (p) => `${p.aggregatesPerEvent} / ${trim(p.aggregateRecordsPerEvent)}`],
  ["brokers' write rate (all replicas)", (p) => rate(p.brokerWriteBytesPerSecond)],
  ['kept on the brokers (all replicas, all topics)', (p) => bytes(p.storedBytes)],
  ...topicRows(),
  ['pipeline: CPU per event', (p) => `${trim(p.pipeline.microsPerEvent)} µs`],
  ['pipeline: cores busy / replicas', (p) => `${trim(p.pipeline.cores)} / ${p.pipeline.replicas}`],
  ['pipeline: open aggregates / dedupe ids / contributions', (p) => `${count(p.pipeline.openAggregates)} / ${count(p.pipeline.dedupeIds)} / ${count(p.pipeline.contributions)}`],
  ['pipeline: state per replica (heap; on disk with ORDO_STATE_DIR)', (p) => bytes(p.pipeline.memoryPerReplicaBytes)],
  ['pipeline: restore after a crash, per replica', (p) => `${seconds(p.pipeline.restoreSeconds)} (${count(p.pipeline.restoreRecordsPerReplica)} records)`],
  ['api: aggregates kept', (p) => count(p.api.aggregates)],
  ['api: replicas', (p) => String(p.api.replicas)],
  ['api: lmdb store per replica (disk)', (p) => `${bytes(p.api.storePerReplicaBytes)}${p.api.storeBytesMeasured ? '' : ' ²'}`],
  ['api: the same in the heap per replica (ReadModel)', (p) => bytes(p.api.heapPerReplicaBytes)],
  ['api: restore after a crash, per replica', (p) => seconds(p.api.restoreSeconds)],
  ["merge: share of its one core (ceiling)", (p) => (p.merge.enabled ? `${Math.round(p.merge.share * 100)} % (${count(p.merge.ceilingEventsPerSecond)} ev/s)` : 'off')],
];

function topicRows(): [string, (p: CapacityPlan) => string][] {
  const names = ['usage-events', 'usage-events-ordered', 'usage-aggregates', '<group>-unique-changelog', 'usage-events-global'];
  return names.map((name) => [
    `topic ${name}: write rate / kept`,
    (p: CapacityPlan) => {
      const t = p.topics.find((x) => x.topic === name);
      return t === undefined ? '-' : `${rate(t.bytesPerSecond)} / ${bytes(t.storedBytes)}`;
    },
  ]);
}

export function columnLabel(p: CapacityPlan): string {
  return `${count(p.workload.eventsPerSecond)} ev/s, ${count(p.workload.subjects)} subjects`;
}

/** The plans side by side as a Markdown table, then their warnings and notes. */
export function formatPlans(plans: readonly CapacityPlan[], measuredAt: Record<string, string> = {}): string {
  const header = `| | ${plans.map(columnLabel).join(' | ')} |`;
  const rule = `|---|${plans.map(() => '---:').join('|')}|`;
  const lines = [header, rule, ...ROWS.map(([label, cell]) => `| ${label} | ${plans.map(cell).join(' | ')} |`)];
  // A warning that holds for several columns is listed once, with the columns it holds for.
  const columns = new Map<string, string[]>();
  for (const p of plans) for (const w of p.warnings) columns.set(w, [...(columns.get(w) ?? []), columnLabel(p)]);
  const warnings = [...columns].map(([w, labels]) => `- ${labels.length === plans.length && plans.length > 1 ? 'all columns' : labels.join('; ')}: ${w}`);
  if (warnings.length > 0) lines.push('', 'Warnings:', '', ...warnings);
  if (plans.some((p) => !p.api.storeBytesMeasured)) lines.push('', '² lmdb bytes per aggregate not measured yet: the aggregates topic\'s bytes per record stand in.');
  const when = [...new Set(Object.values(measuredAt).map((t) => t.slice(0, 10)))].sort();
  if (when.length > 0) lines.push('', `Constants measured ${when.join(', ')} (bench/results/capacity-constants.json).`);
  return lines.join('\n');
}

/** The measured constants as a Markdown table: figure, value, how it was measured. */
export function formatConstants(c: CapacityConstants): string {
  const st = c.stageMicrosPerEvent;
  const zstd = (v: number | null): string => (v === null ? '-' : `${trim(v)} B`);
  const rows: [string, string, string][] = [
    ['pipeline CPU per event (bench meters: 10 aggregates)', `${trim(c.pipelineMicrosPerEvent)} µs`, 'process CPU of the real `pipeline` role through the broker / events (`process.cpuUsage`, includes the bench\'s reader)'],
    ...Object.entries(st).map(([stage, v]): [string, string, string] => [`  step \`${stage}\``, `${trim(v)} µs`, 'CPU around the step in the in-process chain, per event']),
    ['pipeline transaction (saturated batch)', `${trim(c.meanTransactionMs)} ms`, 'mean commit time of the pipeline\'s transactions in the same run'],
    ['`usage-events` on disk', `${trim(c.diskBytes.input)} B/record`, 'kafka-log-dirs bytes / records (batch headers, markers included)'],
    ['`usage-events-ordered` on disk', `${trim(c.diskBytes.ordered)} B/record (zstd ${zstd(c.diskBytesZstd.ordered)})`, 'as above; zstd: a copy into a topic with `compression.type=zstd`'],
    ['`usage-aggregates` on disk', `${trim(c.diskBytes.aggregate)} B/record (zstd ${zstd(c.diskBytesZstd.aggregate)})`, 'as above'],
    ['unique changelog on disk', `${trim(c.diskBytes.uniqueMember)} B/record (zstd ${zstd(c.diskBytesZstd.uniqueMember)})`, 'as above'],
    ['records per event: ordered / aggregates / unique changelog', `${trim(c.benchRecordsPerEvent.ordered)} / ${trim(c.benchRecordsPerEvent.aggregates)} / ${trim(c.benchRecordsPerEvent.uniqueChangelog)}`, 'committed records / events in the bench (1,000 subjects: a batch sees each subject several times; 25 users per subject, each event a new one half the time)'],
    ['`meta` changelog records per event', trim(c.metaRecordsPerEvent), 'committed records / events'],
    ['heap per aggregate, pipeline store', `${c.heap.aggregateInStore} B`, 'heap after full GCs with and without the store / entries'],
    ['heap per aggregate, api ReadModel', `${c.heap.aggregateInReadModel} B`, 'as above, decoded aggregates as the api role held them'],
    ['heap per dedupe id', `${c.heap.dedupeId} B`, 'as above'],
    ['heap per UNIQUE_COUNT member', `${c.heap.uniqueMember} B`, 'as above'],
    ['heap per held (reordered) event', `${c.heap.heldEvent} B`, 'OrderStep holding every event of a run'],
    ['heap per kept contribution (corrections)', `${c.heap.contribution} B`, 'the contributions store and its window index / entries'],
    ['lmdb per aggregate (api store)', c.apiStoreBytesPerAggregate === null ? 'not measured' : `${c.apiStoreBytesPerAggregate} B`, '`ReadStore` data file / aggregates held'],
    ['api store apply rate', c.apiStoreApplyRecordsPerSecond === null ? 'not measured' : `${count(c.apiStoreApplyRecordsPerSecond)} records/s`, 'time inside `ReadStore.apply`, batches of 2,000'],
    ['restore into memory', `${count(c.restoreRecordsPerSecond)} records/s`, 'one changelog partition, `restorePartitions`, start-up included'],
    ['restore into lmdb (after a crash)', `${count(c.lmdbRestoreRecordsPerSecond)} records/s`, 'the same into the persistent store'],
    ['merge CPU per event', `${trim(c.mergeMicrosPerEvent)} µs (ceiling ${count(1e6 / c.mergeMicrosPerEvent)} ev/s on one core)`, 'process CPU of the real `merge` role over a written ordered topic / events'],
    ['merge rate through the broker', `${count(c.mergeEventsPerSecond)} ev/s`, 'the same run, first to last record visible on the global topic'],
  ];
  return ['| figure | value | how |', '|---|---:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * Fills a document's generated blocks: `<!-- capacity: <flags> -->` … `<!-- /capacity -->`
 * gets the table of those flags, `<!-- capacity-constants -->` … `<!-- /capacity-constants -->`
 * the constants. `table` runs the model (the script's own path, so the doc shows what it prints).
 */
export function renderDocBlocks(text: string, constants: CapacityConstants, table: (argv: string[]) => string): string {
  const withTables = text.replace(/(<!-- capacity: ([^>]*?) -->)[\s\S]*?(<!-- \/capacity -->)/g, (_m, open: string, flags: string, close: string) => `${open}\n${table(flags.trim().split(/\s+/))}\n${close}`);
  return withTables.replace(/(<!-- capacity-constants -->)[\s\S]*?(<!-- \/capacity-constants -->)/g, (_m, open: string, close: string) => `${open}\n${formatConstants(constants)}\n${close}`);
}
