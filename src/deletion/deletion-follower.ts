import type { Kafka } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { TransientError } from '../errors.js';
import { Liveness } from '../engine/liveness.js';
import { type ReaderProgress, TopicReader } from '../engine/topic-reader.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { type Deletion, DeletionSet, type SweptMarker, parseDeletion, parseSwept } from './deletions.js';

/** How long a start may take to read the deletions topic to its end (it holds one small record per deletion). */
const CATCH_UP_MS = 60_000;

export interface DeletionFollowerOptions {
  kafka: Kafka;
  topic: string;
  separator: string;
  /** Prefix of the reader's own consumer group (one per start; see TopicReader). */
  groupId: string;
  logger: Logger;
  stuckAfterMs: number;
}

/**
 * Follows the deletions topic into a DeletionSet, for a role (api, deliver, pipeline) that
 * must refuse or filter deleted subjects. Knows how fresh it is (TopicReader progress), and
 * keeps the pipeline's sweep markers (`*swept/<id>/<topic>/<partition>`) for the status API.
 */
export class DeletionFollower {
  readonly set: DeletionSet;
  private readonly reader: TopicReader;
  /** Deletion id -> `<topic>/<partition>` -> marker. */
  private readonly swept = new Map<string, Map<string, SweptMarker>>();
  private readonly listeners: ((deletion: Deletion) => void)[] = [];
  private changes = 0;

  constructor(private readonly options: DeletionFollowerOptions) {
    this.set = new DeletionSet(options.separator);
    this.reader = new TopicReader({
      kafka: options.kafka,
      topic: options.topic,
      groupId: options.groupId,
      apply: (records) => this.applyRecords(records),
      logger: options.logger,
      liveness: new Liveness(options.stuckAfterMs),
    });
  }

  /** Starts following and reads the topic to its end (the topic must exist: the role ensures it). */
  async start(): Promise<void> {
    await this.reader.start();
    await this.caughtUp();
    this.options.logger.info('deletions read', { topic: this.options.topic, deletions: this.set.size });
  }

  /** Reads to the end offsets known now; a reader that cannot is an error, not a hang. */
  async caughtUp(timeoutMs = CATCH_UP_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new TransientError(`could not read ${this.options.topic} to its end within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.reader.caughtUp(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** How far the set is behind the topic (a replica answers for deletions within this freshness). */
  progress(): ReaderProgress {
    return this.reader.progress();
  }

  /** Changes with every deletion added or withdrawn (the pipeline's sweepers recompute their work then). */
  get version(): number {
    return this.changes;
  }

  /** A deletion this replica just wrote: in force here at once, before the reader sees it. */
  add(key: string, deletion: Deletion): void {
    this.applyOne(key, deletion);
  }

  /** Called with each deletion new to this set (not with repeats of a known one). */
  onDeletion(listener: (deletion: Deletion) => void): void {
    this.listeners.push(listener);
  }

  /** The sweep markers of a deletion so far. */
  sweptOf(id: string): SweptMarker[] {
    return [...(this.swept.get(id)?.values() ?? [])];
  }

  async stop(): Promise<void> {
    await this.reader.stop();
  }

  private applyRecords(records: readonly SourceRecord[]): void {
    for (const record of records) {
      const key = record.key?.toString('utf8');
      if (key === undefined) continue;
      if (key.startsWith('*')) {
        const marker = record.value === null ? undefined : parseSwept(record.value);
        if (marker === undefined) continue;
        let byTask = this.swept.get(marker.id);
        if (byTask === undefined) this.swept.set(marker.id, (byTask = new Map<string, SweptMarker>()));
        byTask.set(`${marker.topic}/${marker.partition}`, marker);
        continue;
      }
      if (record.value === null) {
        if (this.set.get(key) !== undefined) this.changes += 1;
        this.set.apply(key, null);
        continue;
      }
      const deletion = parseDeletion(key, record.value);
      if (deletion === undefined) {
        this.options.logger.warn('unreadable deletion record skipped', { topic: this.options.topic, offset: record.offset });
        continue;
      }
      this.applyOne(key, deletion);
    }
  }

  private applyOne(key: string, deletion: Deletion): void {
    // The first request wins: a later record of the same key (a concurrent repeat) keeps its requestedAt.
    const known = this.set.get(key);
    if (known !== undefined && known.requestedAt <= deletion.requestedAt) return;
    this.set.apply(key, deletion);
    this.changes += 1;
    if (known === undefined) for (const listener of this.listeners) listener(deletion);
  }
}

/** The pipeline's follower group prefix (the api and deliver roles use one under their own group prefixes). */
export function pipelineDeletionsGroupId(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-deletions-${config.nodeId}`.slice(0, 240);
}

/** Starts a follower for a role (after the role ensured the deletions topic) and reads the topic to its end. */
export async function startDeletionFollower(
  config: Pick<OrdoConfig, 'topics' | 'deletion' | 'stuckAfterMs'>,
  kafka: Kafka,
  logger: Logger,
  /** The reader's group prefix (it joins `<groupId>-<8 hex>`, one per start). */
  groupId: string,
): Promise<DeletionFollower> {
  const follower = new DeletionFollower({
    kafka,
    topic: config.topics.deletions,
    separator: config.deletion.separator,
    groupId,
    logger: logger.child({ topic: config.topics.deletions }),
    stuckAfterMs: config.stuckAfterMs,
  });
  try {
    await follower.start();
  } catch (error) {
    await follower.stop();
    throw error;
  }
  return follower;
}
