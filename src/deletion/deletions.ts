import { createHash } from 'node:crypto';

/**
 * Subject deletions as they live in the compacted deletions topic (one partition): key = the
 * subject, or `<subject><separator>*` for the subject with its children; value JSON
 * `{id, subject, children, requestedAt, by}`. The id is a hash of the key, so a repeated
 * request (or two at once, on two replicas) names the same deletion and compaction keeps one.
 *
 * Keys that start with `*` are never deletions (a subject holds no `*`): the pipeline's
 * sweep-completion markers share the topic (see sweptKey).
 */

export interface Deletion {
  id: string;
  subject: string;
  children: boolean;
  /** When the api took the request (ms since the epoch). */
  requestedAt: number;
  /** The principal that asked (its name, for the audit trail). */
  by: string;
}

/** Why a subject cannot be deleted (the api answers 400 with it). */
export function subjectProblem(subject: string): string | undefined {
  if (subject.length === 0) return 'the subject is empty';
  if (subject.includes('*')) return 'a subject cannot contain `*` (children are deleted with ?children=true)';
  if (subject.trim() !== subject) return 'the subject has leading or trailing whitespace';
  return undefined;
}

/** The topic key of a deletion. */
export function deletionKey(subject: string, children: boolean, separator: string): string {
  return children ? `${subject}${separator}*` : subject;
}

/** The deletion id: derived from the key alone, so a repeat answers the same id. */
export function deletionId(key: string): string {
  return `del-${createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 32)}`;
}

/** Builds the record for a new request. */
export function newDeletion(subject: string, children: boolean, separator: string, requestedAt: number, by: string): { key: string; value: Deletion } {
  const key = deletionKey(subject, children, separator);
  return { key, value: { id: deletionId(key), subject, children, requestedAt, by } };
}

/** A deletion record's value, or undefined when it is not one (unreadable, or its id does not match its key). */
export function parseDeletion(key: string, value: Buffer | string): Deletion | undefined {
  let j: Partial<Deletion>;
  try {
    j = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as Partial<Deletion>;
  } catch {
    return undefined;
  }
  if (typeof j !== 'object' || j === null) return undefined;
  if (typeof j.subject !== 'string' || typeof j.children !== 'boolean' || typeof j.requestedAt !== 'number' || typeof j.id !== 'string') return undefined;
  if (j.id !== deletionId(key)) return undefined;
  return { id: j.id, subject: j.subject, children: j.children, requestedAt: j.requestedAt, by: typeof j.by === 'string' ? j.by : '?' };
}

/** The key of a pipeline task's "swept" marker (never a deletion key: it starts with `*`). */
export function sweptKey(id: string, topic: string, partition: number): string {
  return `*swept/${id}/${topic}/${partition}`;
}

/** What a sweep-completion marker says. */
export interface SweptMarker {
  id: string;
  topic: string;
  partition: number;
  /** Aggregates tombstoned plus state entries removed by this task's sweep. */
  removed: number;
  /** Held events sent to the late topic. */
  late: number;
  sweptAt: number;
}

export function parseSwept(value: Buffer | string): SweptMarker | undefined {
  try {
    const j = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as Partial<SweptMarker>;
    if (typeof j.id !== 'string' || typeof j.topic !== 'string' || typeof j.partition !== 'number') return undefined;
    return { id: j.id, topic: j.topic, partition: j.partition, removed: Number(j.removed ?? 0), late: Number(j.late ?? 0), sweptAt: Number(j.sweptAt ?? 0) };
  } catch {
    return undefined;
  }
}

/**
 * The deletions in force, by key. `match` is the constant-time check every read makes: the
 * subject itself, or one of its ancestors (each prefix ending before a separator) deleted
 * with its children. A subject with k separators costs k + 1 map lookups, whatever the number
 * of deletions.
 */
export class DeletionSet {
  private readonly byKey = new Map<string, Deletion>();
  private readonly byId = new Map<string, Deletion>();

  constructor(private readonly separator: string) {}

  /** Applies one record of the topic (null: the deletion was withdrawn by a tombstone). */
  apply(key: string, value: Deletion | null): void {
    const old = this.byKey.get(key);
    if (old !== undefined) this.byId.delete(old.id);
    if (value === null) {
      this.byKey.delete(key);
      return;
    }
    this.byKey.set(key, value);
    this.byId.set(value.id, value);
  }

  /** The deletion that covers `subject`, if any (its own first, then one deleted with children: itself or an ancestor). */
  match(subject: string): Deletion | undefined {
    const own = this.byKey.get(subject);
    if (own !== undefined) return own;
    const sep = this.separator;
    // Deleted with children: `subject` itself, or any prefix of it that ends before a separator.
    const self = this.byKey.get(`${subject}${sep}*`);
    if (self !== undefined) return self;
    // Every occurrence of the separator (overlapping ones too, for a separator like `--`).
    for (let at = subject.indexOf(sep, 1); at > 0; at = subject.indexOf(sep, at + 1)) {
      const found = this.byKey.get(`${subject.slice(0, at)}${sep}*`);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  byIdentifier(id: string): Deletion | undefined {
    return this.byId.get(id);
  }

  get(key: string): Deletion | undefined {
    return this.byKey.get(key);
  }

  values(): IterableIterator<Deletion> {
    return this.byKey.values();
  }

  get size(): number {
    return this.byKey.size;
  }
}

/** Whether `deletion` covers `subject` (the subject itself, or a descendant when deleted with children). */
export function covers(deletion: Pick<Deletion, 'subject' | 'children'>, subject: string, separator: string): boolean {
  if (subject === deletion.subject) return true;
  return deletion.children && subject.startsWith(`${deletion.subject}${separator}`);
}
