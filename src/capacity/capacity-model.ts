import type { RetentionPolicy } from '../usage/retention.js';
import type { WindowSize } from '../usage/windows.js';
import type { CapacityConstants } from './constants.js';

/**
 * The capacity model (docs/scaling.md): a workload and the measured constants in, the
 * brokers' write rate, topic sizes, replicas, memory and disk per replica, restore times and
 * the merge role's share out. Pure arithmetic; every formula is in docs/scaling.md.
 *
 * Subjects are modelled as independent Poisson sources of rate R / S, so a subject is in a
 * window of length L with probability 1 - exp(-L R / S): many rare subjects fill fewer
 * windows than few busy ones, and the same formula gives both.
 */
export interface Workload {
  eventsPerSecond: number;
  subjects: number;
  /** Meters every event updates, each keeping every size in `windows`. */
  meters: number;
  windows: WindowSize[];
  /** Group-by values per subject and meter (1: no group-by). */
  groups: number;
  /** Of the meters, how many are UNIQUE_COUNT, and the distinct members a subject has. */
  uniqueMeters: number;
  membersPerSubject: number;
  /** Per window size, how long it is kept once final (ms; null or absent: for ever, i.e. the horizon). */
  retention: RetentionPolicy;
  /** How long the system has run (bounds "for ever"), ms. */
  horizonMs: number;
  /** Partitions of the input topic (and so of everything keyed by subject); undefined: the least that fits. */
  partitions: number | undefined;
  replication: number;
  inputRetentionMs: number;
  orderedRetentionMs: number;
  allowedLatenessMs: number;
  dedupeWindowMs: number;
  reorderWindowMs: number;
  corrections: boolean;
  /** Whether the merge role (the single-partition global stream) runs. */
  merge: boolean;
  maxBatchRecords: number;
  /** Share of a core a pipeline replica is planned at (headroom for bursts and restores). */
  utilization: number;
  /** lmdb bytes an api replica may hold. */
  apiStorePerReplicaBytes: number;
  /** Heap a pipeline replica's state may take before the model warns. */
  pipelineMemoryPerReplicaBytes: number;
  minApiReplicas: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const WORKLOAD_DEFAULTS: Omit<Workload, 'eventsPerSecond' | 'subjects'> = {
  meters: 4,
  windows: ['HOUR', 'DAY', 'MONTH'],
  groups: 1,
  uniqueMeters: 1,
  membersPerSubject: 25,
  retention: {},
  horizonMs: 365 * DAY_MS,
  partitions: undefined,
  replication: 3,
  inputRetentionMs: 7 * DAY_MS,
  orderedRetentionMs: 7 * DAY_MS,
  allowedLatenessMs: 35 * DAY_MS,
  dedupeWindowMs: DAY_MS,
  reorderWindowMs: 1_000,
  corrections: true,
  merge: true,
  maxBatchRecords: 2_000,
  utilization: 0.6,
  apiStorePerReplicaBytes: 64 * 2 ** 30,
  pipelineMemoryPerReplicaBytes: 16 * 2 ** 30,
  minApiReplicas: 2,
};

/** Window lengths in seconds (a MONTH as the mean Gregorian month). */
export const WINDOW_SECONDS: Record<WindowSize, number> = { MINUTE: 60, HOUR: 3_600, DAY: 86_400, MONTH: 2_629_746 };

/** At least this many partitions, as Ordo's default ORDO_TOPIC_PARTITIONS. */
const MIN_PARTITIONS = 6;

export interface TopicLoad {
  topic: string;
  recordsPerSecond: number;
  /** Bytes/s written by producers (one copy). */
  bytesPerSecond: number;
  /** Bytes kept on the brokers, all replicas. */
  storedBytes: number;
  note: string;
}

export interface CapacityPlan {
  workload: Workload;
  partitions: number;
  /** Aggregates each event updates (meters x windows). */
  aggregatesPerEvent: number;
  /** Events per partition per transaction, and aggregate records written per event after a batch's coalescing. */
  batchEvents: number;
  aggregateRecordsPerEvent: number;
  topics: TopicLoad[];
  /** Producer bytes/s x replication: what the brokers' disks write. */
  brokerWriteBytesPerSecond: number;
  storedBytes: number;
  pipeline: {
    microsPerEvent: number;
    cores: number;
    replicas: number;
    openAggregates: number;
    dedupeIds: number;
    uniqueMembers: number;
    heldEvents: number;
    contributions: number;
    memoryBytes: number;
    memoryPerReplicaBytes: number;
    /** Records one replica reads back after a crash (no trusted local state), and how long that takes. */
    restoreRecordsPerReplica: number;
    restoreSeconds: number;
  };
  api: {
    aggregates: number;
    storeBytes: number;
    storeBytesMeasured: boolean;
    replicas: number;
    storePerReplicaBytes: number;
    /** The same aggregates as a ReadModel in the heap (one replica holding everything, as before issue 15), per replica now. */
    heapPerReplicaBytes: number;
    restoreSeconds: number;
  };
  merge: { enabled: boolean; ceilingEventsPerSecond: number; measuredEventsPerSecond: number; share: number };
  warnings: string[];
}

/** Share of S Poisson subjects of rate R / S seen at least once in a window of `seconds`. */
export function activeShare(eventsPerSecond: number, subjects: number, seconds: number): number {
  return -Math.expm1((-eventsPerSecond * seconds) / subjects);
}

/** Expected distinct values among n uniform draws from k (k (1 - (1 - 1/k)^n), as k (1 - e^(-n/k))). */
export function distinct(n: number, k: number): number {
  return k <= 0 ? 0 : -k * Math.expm1(-n / k);
}

export function plan(w: Workload, c: CapacityConstants): CapacityPlan {
  const warnings: string[] = [];
  const R = w.eventsPerSecond;
  const S = w.subjects;
  const perSubject = R / S;
  const A = w.meters * w.windows.length;
  const latenessS = w.allowedLatenessMs / 1000;
  const horizonS = w.horizonMs / 1000;

  // Aggregates: per window size, subjects active in a window x meters x groups x windows kept.
  let keptAggregates = 0;
  let openAggregates = 0;
  let openMembers = 0;
  let memberWritesPerSecond = 0;
  let longest = 0;
  for (const size of w.windows) {
    const L = WINDOW_SECONDS[size];
    longest = Math.max(longest, L);
    const inWindow = S * activeShare(R, S, L) * w.meters * w.groups;
    const retentionMs = w.retention[size];
    const keptS = Math.min(retentionMs === null || retentionMs === undefined ? horizonS : retentionMs / 1000 + latenessS, horizonS);
    const kept = Math.max(1, Math.ceil(keptS / L));
    const open = Math.min(kept, Math.ceil(latenessS / L) + 1);
    keptAggregates += inWindow * kept;
    openAggregates += inWindow * open;
    // UNIQUE_COUNT: distinct members of a subject in one window, from the events it has there.
    const members = S * w.groups * distinct(perSubject * L, w.membersPerSubject);
    openMembers += w.uniqueMeters * members * open;
    memberWritesPerSecond += (w.uniqueMeters * members) / L;
  }

  // CPU: the measured process cost, its aggregation share scaled by the aggregates per event.
  // The steps that work per aggregate (measure, aggregate, corrections) take share f of the
  // steps' CPU; that share of the process's CPU scales with A, the rest is per event.
  const st = c.stageMicrosPerEvent;
  const steps = Object.values(st).reduce((a, v) => a + v, 0);
  const f = Math.min(1, ((st.aggregate ?? 0) + (st.measure ?? 0) + (st.corrections ?? 0)) / Math.max(steps, c.pipelineMicrosPerEvent));
  const micros = c.pipelineMicrosPerEvent * (1 - f + (f * A) / c.benchAggregatesPerEvent);
  const cores = (R * micros) / 1e6;
  const pipelineReplicas = Math.max(1, Math.ceil(cores / w.utilization));

  // api: every kept aggregate, in lmdb, spread over the replicas by partition.
  const apiBytesPer = c.apiStoreBytesPerAggregate ?? c.diskBytes.aggregate;
  const apiStore = keptAggregates * apiBytesPer;
  const apiWanted = Math.max(w.minApiReplicas, Math.ceil(apiStore / w.apiStorePerReplicaBytes));

  const partitions = w.partitions ?? Math.max(MIN_PARTITIONS, pipelineReplicas, apiWanted);
  if (pipelineReplicas > partitions) warnings.push(`${pipelineReplicas} pipeline replicas are needed but only ${partitions} partitions exist: a replica needs at least one partition; raise --partitions (and the topics' partitions) to ${pipelineReplicas} or more`);
  if (apiWanted > partitions) warnings.push(`${apiWanted} api replicas are needed for the store but only ${partitions} partitions exist: replicas beyond the partitions hold nothing; raise --partitions to ${apiWanted} or more`);
  const apiReplicas = Math.min(apiWanted, partitions);
  const pipelineActive = Math.min(pipelineReplicas, partitions);

  // A batch coalesces the updates of one (subject, group, window): keys touched once per batch.
  const batch = Math.min(w.maxBatchRecords, Math.max(1, ((R / partitions) * c.meanTransactionMs) / 1000));
  const keysPerPartition = (S * w.groups) / partitions;
  const aggregateRecordsPerEvent = (A * distinct(batch, keysPerPartition)) / batch;

  // Corrections keep each event until the end of its longest window (half of it on average) plus the lateness.
  const reachS = w.corrections ? latenessS + longest / 2 : 0;
  const replayS = Math.max(w.dedupeWindowMs / 1000, reachS);
  if (w.orderedRetentionMs / 1000 < replayS) {
    warnings.push(`the ordered topic keeps ${days(w.orderedRetentionMs / 1000)} but a restoring pipeline task replays ${days(replayS)} of it (dedupe window${w.corrections ? ', corrections reach = lateness + half the longest window' : ''}): raise its retention.ms or shorten them`);
  }
  const rf = w.replication;
  const topic = (name: string, recordsPerSecond: number, bytes: number, storedRecords: number, note: string): TopicLoad => ({
    topic: name, recordsPerSecond, bytesPerSecond: recordsPerSecond * bytes, storedBytes: storedRecords * bytes * rf, note,
  });
  const sequencesPerSecond = (S * activeShare(R, S, 10)) / 10;
  const topics: TopicLoad[] = [
    topic('usage-events', R, c.diskBytes.input, R * (w.inputRetentionMs / 1000), `retention ${days(w.inputRetentionMs / 1000)}`),
    topic('usage-events-ordered', R, c.diskBytes.ordered, R * (w.orderedRetentionMs / 1000), `retention ${days(w.orderedRetentionMs / 1000)}`),
    topic('usage-aggregates', R * aggregateRecordsPerEvent, c.diskBytes.aggregate, keptAggregates, 'compacted; up to 2x before the cleaner runs'),
    topic('<group>-unique-changelog', memberWritesPerSecond, c.diskBytes.uniqueMember, openMembers, 'compacted'),
    topic('<group>-meta/-sequences-changelog', R * c.metaRecordsPerEvent + sequencesPerSecond, c.diskBytes.uniqueMember, partitions * 4 + S, 'compacted'),
  ];
  if (w.merge) topics.push(topic('usage-events-global', R, c.diskBytes.ordered, R * (w.orderedRetentionMs / 1000), 'one partition; retention as ordered'));
  const producerBytes = topics.reduce((a, t) => a + t.bytesPerSecond, 0);

  const dedupeIds = R * (w.dedupeWindowMs / 1000);
  const heldEvents = R * (w.reorderWindowMs / 1000);
  const contributions = R * reachS;
  const memory = openAggregates * c.heap.aggregateInStore + dedupeIds * c.heap.dedupeId + openMembers * c.heap.uniqueMember + heldEvents * c.heap.heldEvent + contributions * c.heap.contribution;
  const restoreRecords = (openAggregates + openMembers + R * replayS) / pipelineActive;
  if (memory / pipelineActive > w.pipelineMemoryPerReplicaBytes) {
    const biggest = [['contributions (corrections)', contributions * c.heap.contribution], ['dedupe ids', dedupeIds * c.heap.dedupeId], ['open aggregates', openAggregates * c.heap.aggregateInStore]].sort((a, b) => (b[1] as number) - (a[1] as number))[0]![0];
    warnings.push(`a pipeline replica's state is ${gib(memory / pipelineActive)} GiB of heap, over ${gib(w.pipelineMemoryPerReplicaBytes)} GiB, most of it ${biggest}: run it with ORDO_STATE_DIR (lmdb on disk), or shorten the lateness or dedupe window, or turn corrections off`);
  }

  const mergeCeiling = 1e6 / c.mergeMicrosPerEvent;
  const share = w.merge ? R / mergeCeiling : 0;
  if (w.merge && share > w.utilization) {
    warnings.push(`the merge role would need ${(share * 100).toFixed(0)} % of its one core (ceiling about ${Math.round(mergeCeiling).toLocaleString('en-US')} events/s): it is one process by design (a total order has one writer); beyond it run without the global stream (ORDO_GLOBAL_TOPIC consumers read the per-subject ordered topic instead) or merge a subset`);
  }

  return {
    workload: w,
    partitions,
    aggregatesPerEvent: A,
    batchEvents: batch,
    aggregateRecordsPerEvent,
    topics,
    brokerWriteBytesPerSecond: producerBytes * rf,
    storedBytes: topics.reduce((a, t) => a + t.storedBytes, 0),
    pipeline: {
      microsPerEvent: micros,
      cores,
      replicas: pipelineReplicas,
      openAggregates,
      dedupeIds,
      uniqueMembers: openMembers,
      heldEvents,
      contributions,
      memoryBytes: memory,
      memoryPerReplicaBytes: memory / pipelineActive,
      restoreRecordsPerReplica: restoreRecords,
      restoreSeconds: restoreRecords / c.restoreRecordsPerSecond,
    },
    api: {
      aggregates: keptAggregates,
      storeBytes: apiStore,
      storeBytesMeasured: c.apiStoreBytesPerAggregate !== null,
      replicas: apiReplicas,
      storePerReplicaBytes: apiStore / apiReplicas,
      heapPerReplicaBytes: (keptAggregates * c.heap.aggregateInReadModel) / apiReplicas,
      restoreSeconds: keptAggregates / apiReplicas / apiRestoreRate(c),
    },
    merge: { enabled: w.merge, ceilingEventsPerSecond: mergeCeiling, measuredEventsPerSecond: c.mergeEventsPerSecond, share },
    warnings,
  };
}

/**
 * Records/s an api replica rebuilds its store at: reading the topic (the measured restore
 * rate into memory: fetch and decode) and then applying to the ReadStore, one after the
 * other on one thread; without a ReadStore figure, the engine's lmdb restore rate.
 */
export function apiRestoreRate(c: CapacityConstants): number {
  if (c.apiStoreApplyRecordsPerSecond === null) return c.lmdbRestoreRecordsPerSecond;
  return 1 / (1 / c.restoreRecordsPerSecond + 1 / c.apiStoreApplyRecordsPerSecond);
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(bytes >= 10 * 2 ** 30 ? 0 : 1);
}

function days(seconds: number): string {
  const d = seconds / 86_400;
  return d >= 1 ? `${Number(d.toFixed(1))} d` : `${Number((seconds / 3_600).toFixed(1))} h`;
}
