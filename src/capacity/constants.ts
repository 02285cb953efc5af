/**
 * The measured constants the capacity model runs on, read from the file `npm run
 * bench:capacity` writes (bench/results/capacity-constants.json). Every field is checked:
 * a file without a figure the model needs is an error naming it, never a silent zero.
 */
export interface CapacityConstants {
  /** Aggregates each bench event updates (meters x windows of bench/meters.ts): the CPU figures' workload. */
  benchAggregatesPerEvent: number;
  /** CPU of the pipeline process per event through the broker (one core, bench meters), µs. */
  pipelineMicrosPerEvent: number;
  /** Of the pipeline's in-process steps, µs per event (decode, stamp, measure, ...). */
  stageMicrosPerEvent: Record<string, number>;
  /** The events of a saturated pipeline batch take this long to commit, ms (sets batch sizes under load). */
  meanTransactionMs: number;
  /** Bytes on the broker's disk per record as written (no compression), per topic. */
  diskBytes: { input: number; ordered: number; aggregate: number; uniqueMember: number };
  /** The same with the topic's compression.type=zstd (bench events: a best case). */
  diskBytesZstd: { ordered: number | null; aggregate: number | null; uniqueMember: number | null };
  /** `meta` changelog records per event (a few per batch). */
  metaRecordsPerEvent: number;
  /** Records per event the bench's pipeline wrote (1,000 subjects, 3 partitions): shown, not used (the model computes its own). */
  benchRecordsPerEvent: { ordered: number; aggregates: number; uniqueChangelog: number };
  /** Heap bytes per entry. */
  heap: { aggregateInStore: number; aggregateInReadModel: number; dedupeId: number; uniqueMember: number; heldEvent: number; contribution: number };
  /** lmdb bytes per aggregate of the api's store (null: not measured yet). */
  apiStoreBytesPerAggregate: number | null;
  /** Records/s the api's store applies (lmdb writes, no Kafka; null: not measured yet). */
  apiStoreApplyRecordsPerSecond: number | null;
  /** Records/s one process restores from a changelog into memory, and into lmdb. */
  restoreRecordsPerSecond: number;
  lmdbRestoreRecordsPerSecond: number;
  /** The merge role: CPU per event (µs) and the rate it reached through the broker. */
  mergeMicrosPerEvent: number;
  mergeEventsPerSecond: number;
  /** When each part was measured (ISO), for the table's footer. */
  measuredAt: Record<string, string>;
}

/** A constants file that lacks a figure or holds a wrong one. */
export class ConstantsError extends Error {
  override name = 'ConstantsError';
}

type Json = Record<string, unknown>;

function at(json: unknown, path: string): unknown {
  let v: unknown = json;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Json)[part];
  }
  return v;
}

function num(json: unknown, path: string): number {
  const v = at(json, path);
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConstantsError(`capacity constants: ${path} is ${JSON.stringify(v)}, not a measured number >= 0 (re-run npm run bench:capacity)`);
  return v;
}

function positive(json: unknown, path: string): number {
  const v = num(json, path);
  if (v === 0) throw new ConstantsError(`capacity constants: ${path} is 0; a rate or cost of 0 cannot be right (re-run npm run bench:capacity)`);
  return v;
}

function optional(json: unknown, path: string): number | null {
  const v = at(json, path);
  return v === null || v === undefined ? null : num(json, path);
}

/** Reads the file's JSON into constants; throws ConstantsError naming the first missing or wrong figure. */
export function capacityConstants(json: unknown): CapacityConstants {
  const stages = at(json, 'cpu.microsPerEvent');
  if (typeof stages !== 'object' || stages === null) throw new ConstantsError('capacity constants: cpu.microsPerEvent is missing (re-run npm run bench:capacity)');
  const measuredAt = at(json, 'measuredAt');
  return {
    benchAggregatesPerEvent: positive(json, 'parameters.aggregatesPerEvent'),
    pipelineMicrosPerEvent: positive(json, 'pipeline.processCpuMicrosPerEvent'),
    stageMicrosPerEvent: Object.fromEntries(Object.keys(stages).map((k) => [k, num(json, `cpu.microsPerEvent.${k}`)])),
    meanTransactionMs: positive(json, 'pipeline.meanTransactionMs'),
    diskBytes: {
      input: positive(json, 'diskBytesPerRecord.input'),
      ordered: positive(json, 'diskBytesPerRecord.ordered'),
      aggregate: positive(json, 'diskBytesPerRecord.aggregates'),
      uniqueMember: positive(json, 'diskBytesPerRecord.uniqueChangelog'),
    },
    diskBytesZstd: {
      ordered: optional(json, 'diskBytesPerRecord.compressed.zstd.ordered'),
      aggregate: optional(json, 'diskBytesPerRecord.compressed.zstd.aggregates'),
      uniqueMember: optional(json, 'diskBytesPerRecord.compressed.zstd.uniqueChangelog'),
    },
    metaRecordsPerEvent: num(json, 'recordsPerEvent.metaChangelog'),
    benchRecordsPerEvent: { ordered: num(json, 'recordsPerEvent.ordered'), aggregates: num(json, 'recordsPerEvent.aggregates'), uniqueChangelog: num(json, 'recordsPerEvent.uniqueChangelog') },
    heap: {
      aggregateInStore: positive(json, 'memory.bytesPerAggregateInStore'),
      aggregateInReadModel: positive(json, 'memory.bytesPerAggregateInReadModel'),
      dedupeId: positive(json, 'memory.bytesPerDedupeId'),
      uniqueMember: positive(json, 'memory.bytesPerUniqueMember'),
      heldEvent: positive(json, 'memory.bytesPerHeldEvent'),
      contribution: positive(json, 'memory.bytesPerContribution'),
    },
    apiStoreBytesPerAggregate: optional(json, 'apiStore.bytesPerAggregate'),
    apiStoreApplyRecordsPerSecond: optional(json, 'apiStore.applyRecordsPerSecond'),
    restoreRecordsPerSecond: positive(json, 'restore.recordsPerSecond'),
    lmdbRestoreRecordsPerSecond: positive(json, 'restore.lmdbRecordsPerSecond'),
    mergeMicrosPerEvent: positive(json, 'merge.processCpuMicrosPerEvent'),
    mergeEventsPerSecond: positive(json, 'merge.eventsPerSecond'),
    measuredAt: typeof measuredAt === 'object' && measuredAt !== null ? (measuredAt as Record<string, string>) : {},
  };
}
