import type { OutputRecord, SourceRecord } from '../model/records.js';
import type { KeyValueStore, StoreCodec } from '../model/store.js';

export interface StoreSpec {
  name: string;
  codec: StoreCodec<unknown>;
  /**
   * The store's changelog is an output topic the processor itself writes in the same
   * transaction (Kafka Streams' source-topic changelog): the engine writes no
   * `<group>-<store>-changelog` records for it and restores from the task's partition of
   * `topic` instead: `payload` turns a record value into what `codec` decodes (e.g. strips
   * the wire-format header), and only entries `keep` accepts are kept. Its deletes stay in
   * memory: they never tombstone the output topic.
   */
  changelog?: { topic: string; payload(value: Buffer): Buffer; keep(key: string, value: unknown, now: number): boolean };
  /**
   * No changelog at all: the processor rebuilds the store in `onRestored`, from topics the
   * task writes anyway (Replay). Its writes are never sent anywhere.
   */
  rebuilt?: { from: readonly string[] };
  /**
   * The store's changelog is written at most every `everyMs` (the keys changed since, with
   * their latest value), not with every batch. What changed in between must be derivable
   * from `tailTopics` (outputs of this task): with each such write the engine records, in
   * `meta` under `tailKey(name)`, where those topics' records written after it begin, so
   * `onRestored` can replay them (the replay may overlap the snapshot by up to one batch:
   * deriving must be idempotent). Changes the processor makes in `onRestored` are part of
   * the next write.
   */
  snapshot?: { everyMs: number; tailTopics: readonly string[] };
}

/** The meta key under which a snapshot store's tail offsets are kept (JSON: topic -> offset). */
export function tailKey(store: string): string {
  return `tail:${store}`;
}

/**
 * Where a replay of one of the task's topics starts: at `offset`, or at the first record
 * with a timestamp at or after `timestamp` (ms), whichever comes first.
 */
export interface ReplayFrom {
  offset?: bigint;
  timestamp?: number;
}

/** One topic to replay: this task's partition of it, from `from` to `to` (exclusive; default: its end). */
export interface ReplaySource {
  topic: string;
  from: ReplayFrom;
  to?: bigint;
  onRecord(record: SourceRecord): void;
}

/** Lets `onRestored` read topics of this task's partition (read_committed), e.g. to rebuild `rebuilt` stores. */
export interface Replay {
  read(sources: readonly ReplaySource[]): Promise<number>;
  /**
   * Set when the stores came back from a trusted checkpoint (persistent state): the rebuilt
   * stores are as they were then, and these are the offsets their topics stood at; only
   * what was written after needs reading. Undefined: the rebuilt stores are empty.
   */
  readonly checkpointed?: ReadonlyMap<string, bigint>;
}

/** A transactional unit's restored stores, as its processor sees them. */
export interface UnitContext {
  /** The engine's own store (`meta`): input positions, and what the processor keeps there. */
  readonly meta: KeyValueStore<string>;
  store<V>(name: string): KeyValueStore<V>;
}

/** What a task hands its processor: its partition and its restored stores. */
export interface TaskContext extends UnitContext {
  readonly topic: string;
  readonly partition: number;
}

/** Per-batch facts a processor reports for metrics; the engine records them after commit. */
export interface BatchReport {
  deadLetters: { reason: string }[];
  clockSkewsMs?: number[];
  clockSkewRejected?: number;
  /** Events dropped as duplicates of an id seen within the dedupe window. */
  duplicates?: number;
  /** Events routed to the late topic, with the reason. */
  late?: { reason: string }[];
  /** Corrections seen in this batch, by kind and outcome (ordo_corrections_total). */
  corrections?: readonly { kind: string; outcome: string }[];
  /** State entries expired (deleted) in this batch. */
  expired?: number;
  /** Ordering violations seen, one reason per event (ordo_ordering_violations_total). */
  violations?: readonly string[];
  /** Events the reorder buffer emitted early because it was full. */
  forcedEmits?: number;
  /** Events held in the reorder buffer after this batch. */
  buffered?: number;
  /**
   * Origin times (ms) of the events this batch emitted, for the end-to-end latency
   * (origin service time -> output commit). Without it the input record timestamps are used.
   */
  originTimesMs?: readonly number[];
}

export interface ProcessResult {
  outputs: OutputRecord[];
  report: BatchReport;
}

/**
 * One processor chain per task. `prepare` may do I/O (e.g. prefetch schemas) and must be
 * idempotent; `process` is pure over the batch and the task's stores: its store writes are
 * staged and only become state when the batch's transaction commits.
 */
export interface TaskProcessor {
  readonly stores: readonly StoreSpec[];
  /**
   * Output topics whose end offsets on the task's partition are committed with every input
   * position, in the offset commit's metadata (model/position-metadata.ts): a reader of
   * those topics can then tell when it has read all that a committed position covers
   * (read-your-writes). None by default.
   */
  readonly positionTopics?: readonly string[];
  /**
   * Called once after the stores are restored from their changelogs, before the first
   * batch: rebuilds what has no changelog of its own. Its store writes become state without
   * being written anywhere (snapshot stores: with their next snapshot).
   */
  onRestored(context: TaskContext, replay: Replay): Promise<void> | void;
  prepare(records: readonly SourceRecord[]): Promise<void>;
  process(records: readonly SourceRecord[], context: TaskContext): ProcessResult;
  /**
   * Optional clock tick for an idle partition (no batch for a while): lets time-held
   * state (the reorder buffer) move on without new input. Undefined: nothing to commit.
   */
  punctuate?(context: TaskContext): ProcessResult | undefined;
}

export type TaskProcessorFactory = (topic: string, partition: number) => TaskProcessor;

/** What a merge batch or watermark produces: records to write (in order) and what to count. */
export interface MergeOutput {
  outputs: OutputRecord[];
  /** Records among `outputs` that go to the global stream. */
  emitted: number;
  /** Of those, emitted below what the stream had already passed. */
  late: number;
  deadLetters: readonly { reason: string }[];
}

/**
 * The `merge` role's processor: ONE over every partition of the ordered topic, in one
 * TransactionalUnit. Pure over its stores, like a TaskProcessor; discarded with the unit
 * after a failed commit.
 */
export interface MergeProcessor {
  readonly stores: readonly StoreSpec[];
  /** Name of the unit's meta store (its changelog topic is named after it). */
  readonly metaStore: string;
  /** Events held, and the low watermark (ms) over every partition, for the gauges. */
  readonly held: number;
  readonly lowWatermark: number;
  restore(context: UnitContext): void;
  /** Consecutive records of one ordered-topic partition. */
  onOrdered(records: readonly SourceRecord[], context: UnitContext): MergeOutput;
  /** A partition's published watermark, once everything written before it has been read. */
  onWatermark(partition: number, markMs: number, context: UnitContext): MergeOutput;
}
