import { millisOf } from '../clock/service-time.js';
import type { DeletedSubjectPolicy } from '../config/config.js';
import type { KeyValueStore } from '../model/store.js';
import type { DeadLetter, OutputRecord, SourceRecord, StampedEvent } from '../model/records.js';
import type { UsageAggregate } from '../usage/aggregation.js';
import { toLateRecord } from '../processors/dead-letter.js';
import { type Deletion, type DeletionSet, type SweptMarker, covers, sweptKey } from './deletions.js';

/**
 * A pipeline task's lazy sweep of deleted subjects, and its policy for their later events.
 *
 * The sweep removes, a bounded amount per transaction (`sweepBatch` entries in all), what the
 * task holds of each deletion's subjects: events held in the reorder buffer (to the late
 * topic, reason `subject-deleted`), sequence and UNIQUE_COUNT member entries, and aggregates
 * (a tombstone in the aggregates topic with the store entry). Aggregates of final windows are
 * no longer in memory: their keys come from one read of the task's partition of the
 * aggregates topic (`scan`), kept in memory while the sweep runs.
 *
 * Resumable: its progress is in the task's meta store (`deletion:<id>`), committed with each
 * transaction, and what is still to remove is whatever state still matches. A task that
 * restarts mid-sweep reads the topic again (tombstoned keys are gone from it) and goes on;
 * it ends in the same state. When nothing is left it records `done:<ms>` in meta and writes a
 * marker (`*swept/<id>/<input topic>/<partition>`) to the deletions topic, in the same
 * transaction: the api's GET /v1/deletions/{id} counts them.
 *
 * Dedupe entries are keyed by (source, id) and carry no subject: they expire with the dedupe
 * window.
 */

/** Reads the keys of `partition` of the aggregates topic that `keep` selects: key -> live (its last record is not a tombstone). */
export type AggregateScanner = (partition: number, keep: (key: string) => boolean) => Promise<Map<string, boolean>>;

/** What the sweeper knows of the deletions in force (a DeletionFollower). */
export interface DeletionsView {
  readonly set: DeletionSet;
  /** Changes with every deletion added or withdrawn. */
  readonly version: number;
}

export interface SweepSettings {
  deletions: DeletionsView;
  separator: string;
  policy: DeletedSubjectPolicy;
  sweepBatch: number;
  aggregatesTopic: string;
  lateTopic: string;
  /** Names the node in the late records' headers. */
  node: string;
  deletionsTopic: string;
  scan?: AggregateScanner;
  /** Called as a sweep step is staged (for metrics): entries removed, and a deletion finished on this task. */
  onRemoved?: (count: number) => void;
  onSwept?: (deletion: Deletion, marker: SweptMarker) => void;
  /** A read of the aggregates topic failed (it is tried again with a later step). */
  onScanError?: (error: unknown) => void;
  now: () => number;
}

/** The stores a sweep reads and writes (the pipeline's). */
export interface SweepStores {
  meta: KeyValueStore<string>;
  aggregates: KeyValueStore<UsageAggregate>;
  unique: KeyValueStore<number>;
  sequences: KeyValueStore<string>;
}

/** The reorder buffer's part in a sweep (OrderStep.evict, bound to its store). */
export interface HeldEvents {
  evict(drop: (subject: string) => boolean, limit: number): { subject: string; offset: bigint; stamp: { time: bigint }; record: OutputRecord }[];
}

export interface SweepResult {
  outputs: OutputRecord[];
  removed: number;
  late: { reason: 'subject-deleted' }[];
}

interface Progress {
  removed: number;
  late: number;
}

/** The meta key of a deletion's sweep on a task. */
export function progressKey(id: string): string {
  return `deletion:${id}`;
}

/** The subject of a sequences-store key (`s|<subject>` or `p|<length>:<subject>|<producer>`). */
export function sequenceSubject(key: string): string | undefined {
  if (key.startsWith('s|')) return key.slice(2);
  if (key.startsWith('p|')) {
    const colon = key.indexOf(':', 2);
    const length = Number(key.slice(2, colon));
    return Number.isSafeInteger(length) ? key.slice(colon + 1, colon + 1 + length) : undefined;
  }
  return undefined;
}

/** The subject of an aggregate key (`[meter, subject, groupBy, size, start]` as JSON), or of a UNIQUE_COUNT member key (`<aggregate key>\0<member>`). */
export function aggregateSubject(key: string): string | undefined {
  const end = key.indexOf('\u0000');
  try {
    const parts = JSON.parse(end < 0 ? key : key.slice(0, end)) as unknown;
    return Array.isArray(parts) && typeof parts[1] === 'string' ? parts[1] : undefined;
  } catch {
    return undefined;
  }
}

export class DeletionSweeper {
  private pending: Deletion[] = [];
  private seenVersion = -1;
  /** Per deletion id: keys of the aggregates topic still to tombstone (from the scan). */
  private readonly scanned = new Map<string, Set<string>>();
  private scanning: Promise<void> | undefined;
  private scanError: unknown;

  constructor(private readonly settings: SweepSettings) {}

  /** Deletions this task has not finished sweeping. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** When this task finished sweeping `id` (ms), or undefined. */
  sweptAt(meta: KeyValueStore<string>, id: string): number | undefined {
    const text = meta.get(progressKey(id));
    return text?.startsWith('done:') ? Number(text.slice(5)) : undefined;
  }

  /**
   * The policy for events of deleted subjects: events stamped at or before the deletion belong
   * to the deleted data and are dead-lettered; later ones are dead-lettered too (`dead-letter`),
   * or counted as the subject's new epoch (`new-epoch`) once this task's sweep of it is done
   * (until then dead-lettered, with a message saying to replay them).
   */
  admit<E extends StampedEvent>(items: readonly E[], meta: KeyValueStore<string>): { items: E[]; dead: DeadLetter[] } {
    const set = this.settings.deletions.set;
    if (set.size === 0) return { items: items as E[], dead: [] };
    const kept: E[] = [];
    const dead: DeadLetter[] = [];
    for (const item of items) {
      const deletion = set.match(item.event.subject);
      if (deletion === undefined) {
        kept.push(item);
        continue;
      }
      const stampedAt = millisOf(item.stamp.time);
      const when = new Date(deletion.requestedAt).toISOString();
      if (stampedAt <= deletion.requestedAt) {
        dead.push({ source: item.source, reason: 'subject-deleted', message: `subject deleted at ${when} (deletion ${deletion.id}); this event reached Ordo before that and is not counted` });
      } else if (this.settings.policy === 'dead-letter') {
        dead.push({ source: item.source, reason: 'subject-deleted', message: `subject deleted at ${when} (deletion ${deletion.id}); ORDO_DELETED_SUBJECT_POLICY=dead-letter` });
      } else if (this.sweptAt(meta, deletion.id) === undefined) {
        dead.push({ source: item.source, reason: 'subject-deleted', message: `subject deleted at ${when} (deletion ${deletion.id}); its sweep is still running here: replay this event once GET /v1/deletions/${deletion.id} says complete` });
      } else kept.push(item);
    }
    return { items: kept, dead };
  }

  /**
   * A restored task replays the ordered topic into its sequences: records of a subject whose
   * sweep finished here, written before it finished, stay out (they are the deleted epoch).
   */
  replaysOrdered(meta: KeyValueStore<string>, subject: string, timestamp: number): boolean {
    const deletion = this.settings.deletions.set.match(subject);
    if (deletion === undefined) return true;
    const done = this.sweptAt(meta, deletion.id);
    return done !== undefined && timestamp > done;
  }

  /** One bounded step of the sweep; undefined when nothing is to be swept. */
  step(context: { topic: string; partition: number }, stores: SweepStores, held: HeldEvents): SweepResult | undefined {
    this.refresh(stores.meta);
    if (this.pending.length === 0) return undefined;
    const { separator, sweepBatch } = this.settings;
    const result: SweepResult = { outputs: [], removed: 0, late: [] };
    let budget = sweepBatch;
    const finished: Deletion[] = [];
    for (const deletion of this.pending) {
      if (budget <= 0) break;
      const match = (subject: string | undefined): boolean => subject !== undefined && covers(deletion, subject, separator);
      const progress = this.progressOf(stores.meta, deletion.id);
      const before = budget;
      for (const event of held.evict(match, budget)) {
        budget -= 1;
        progress.late += 1;
        result.late.push({ reason: 'subject-deleted' });
        result.outputs.push(this.lateRecord(context, event, deletion));
      }
      const removeFrom = <V>(store: KeyValueStore<V>, subjectOf: (key: string, value: V) => string | undefined, tombstone: boolean): void => {
        for (const [key, value] of store.entries()) {
          if (budget <= 0) return;
          if (!match(subjectOf(key, value))) continue;
          store.delete(key);
          budget -= 1;
          progress.removed += 1;
          result.removed += 1;
          if (tombstone) {
            result.outputs.push({ topic: this.settings.aggregatesTopic, key, value: null, headers: {} });
            this.scanned.get(deletion.id)?.delete(key);
          }
        }
      };
      removeFrom(stores.sequences, (key) => sequenceSubject(key), false);
      removeFrom(stores.unique, (key) => aggregateSubject(key), false);
      removeFrom(stores.aggregates, (_key, aggregate) => aggregate.subject, true);
      // Final windows, only in the topic: their keys come from the scan.
      const fromTopic = this.scanned.get(deletion.id);
      if (fromTopic === undefined) this.startScan(context.partition);
      else {
        for (const key of fromTopic) {
          if (budget <= 0) break;
          fromTopic.delete(key);
          result.outputs.push({ topic: this.settings.aggregatesTopic, key, value: null, headers: {} });
          budget -= 1;
          progress.removed += 1;
          result.removed += 1;
        }
      }
      // Nothing left: every phase ended within the budget, and the topic's keys are known.
      if (budget > 0 && fromTopic !== undefined && fromTopic.size === 0) {
        finished.push(deletion);
        const marker: SweptMarker = { id: deletion.id, topic: context.topic, partition: context.partition, removed: progress.removed, late: progress.late, sweptAt: this.settings.now() };
        stores.meta.put(progressKey(deletion.id), `done:${marker.sweptAt}`);
        result.outputs.push({ topic: this.settings.deletionsTopic, partition: 0, key: sweptKey(deletion.id, context.topic, context.partition), value: JSON.stringify(marker), headers: {} });
        this.scanned.delete(deletion.id);
        this.settings.onSwept?.(deletion, marker);
      } else if (budget < before) stores.meta.put(progressKey(deletion.id), JSON.stringify(progress));
    }
    if (finished.length > 0) this.pending = this.pending.filter((d) => !finished.includes(d));
    if (result.removed > 0) this.settings.onRemoved?.(result.removed);
    // Store changes alone (sequences, members, progress) need a transaction too.
    return budget === sweepBatch && finished.length === 0 ? undefined : result;
  }

  /** Deletions in force this task has not swept, oldest first (recomputed when the set changes). */
  private refresh(meta: KeyValueStore<string>): void {
    const { deletions } = this.settings;
    if (deletions.version === this.seenVersion) return;
    this.seenVersion = deletions.version;
    this.pending = [...deletions.set.values()].filter((d) => this.sweptAt(meta, d.id) === undefined).sort((a, b) => a.requestedAt - b.requestedAt);
  }

  private progressOf(meta: KeyValueStore<string>, id: string): Progress {
    const text = meta.get(progressKey(id));
    if (text === undefined) return { removed: 0, late: 0 };
    const j = JSON.parse(text) as Partial<Progress>;
    return { removed: Number(j.removed ?? 0), late: Number(j.late ?? 0) };
  }

  /**
   * One read of the partition for every pending deletion without keys yet; in the background
   * (the step after it finished uses them). Without a scanner there is nothing beyond memory.
   */
  private startScan(partition: number): void {
    if (this.scanning !== undefined) return;
    const waiting = this.pending.filter((d) => !this.scanned.has(d.id));
    const scan = this.settings.scan;
    if (scan === undefined) {
      for (const d of waiting) this.scanned.set(d.id, new Set());
      return;
    }
    if (this.scanError !== undefined) {
      // A broker blip must not fail the task: say so, and read again (this step goes on without the keys).
      this.settings.onScanError?.(this.scanError);
      this.scanError = undefined;
      return;
    }
    const { separator } = this.settings;
    const coveredBy = (key: string): Deletion | undefined => {
      const subject = aggregateSubject(key);
      return subject === undefined ? undefined : waiting.find((d) => covers(d, subject, separator));
    };
    this.scanning = scan(partition, (key) => coveredBy(key) !== undefined).then(
      (keys) => {
        const sets = new Map(waiting.map((d) => [d.id, new Set<string>()]));
        for (const [key, live] of keys) if (live) sets.get(coveredBy(key)!.id)!.add(key);
        for (const [id, set] of sets) this.scanned.set(id, set);
        this.scanning = undefined;
      },
      (error: unknown) => {
        // Reported by the next step, which then starts another read.
        this.scanError = error;
        this.scanning = undefined;
      },
    );
  }

  private lateRecord(context: { topic: string; partition: number }, event: ReturnType<HeldEvents['evict']>[number], deletion: Deletion): OutputRecord {
    const { record } = event;
    const bytes = (v: Buffer | string | null): Buffer | null => (v === null ? null : typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
    const seenAt = millisOf(event.stamp.time);
    const source: SourceRecord = { topic: context.topic, partition: context.partition, offset: event.offset.toString(), key: bytes(record.key), value: bytes(record.value), headers: record.headers, timestamp: seenAt };
    return toLateRecord({ source, seenAt, reason: 'subject-deleted', detail: `held in the reorder buffer when subject ${JSON.stringify(event.subject)} was deleted (deletion ${deletion.id})` }, this.settings.lateTopic, this.settings.node);
  }
}
