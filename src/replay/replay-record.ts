import type { DeadLetterReason } from '../errors.js';
import { letterKey } from './dead-letter-view.js';

/**
 * One replayed dead letter, as the replays topic keeps it (compacted, key `<dlq
 * partition>/<offset>`), written in the same transaction as the input record it names.
 */
export interface ReplayRecord {
  /** The letter: its DLQ partition and offset. */
  partition: number;
  offset: string;
  reason: DeadLetterReason;
  /** When it was replayed (ms since the epoch). */
  replayedAt: number;
  /** Who asked (the token's name). */
  by: string;
  /** Whether a corrected value replaced the original one. */
  corrected: boolean;
  /** Where the replayed event was written on the input topic. */
  input: { topic: string; partition: number; offset: string };
}

export function encodeReplayRecord(record: ReplayRecord): { key: string; value: string } {
  return { key: letterKey(record.partition, record.offset), value: JSON.stringify(record) };
}

/** The record of a replays topic entry, or undefined when it is not one (checked field by field: the topic is shared by every api replica). */
export function parseReplayRecord(value: Buffer | string): ReplayRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(value.toString());
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const r = json as Record<string, unknown>;
  const input = r.input as Record<string, unknown> | null | undefined;
  const ok =
    Number.isInteger(r.partition) &&
    typeof r.offset === 'string' &&
    typeof r.reason === 'string' &&
    typeof r.replayedAt === 'number' &&
    typeof r.by === 'string' &&
    typeof r.corrected === 'boolean' &&
    typeof input === 'object' &&
    input !== null &&
    typeof input.topic === 'string' &&
    Number.isInteger(input.partition) &&
    typeof input.offset === 'string';
  return ok ? (json as ReplayRecord) : undefined;
}

/**
 * What this replica knows has been replayed: the replays topic as read so far, plus its own
 * replays at once (they are committed before the answer; the follower sees them again later).
 */
export class ReplaySet {
  private readonly replays = new Map<string, ReplayRecord>();

  /** Applies one record of the topic (a tombstone forgets the letter: it may be replayed again). */
  apply(key: string, value: Buffer | string | null): void {
    if (value === null) {
      this.replays.delete(key);
      return;
    }
    const record = parseReplayRecord(value);
    if (record !== undefined && letterKey(record.partition, record.offset) === key) this.replays.set(key, record);
  }

  add(record: ReplayRecord): void {
    this.replays.set(letterKey(record.partition, record.offset), record);
  }

  get(partition: number, offset: string): ReplayRecord | undefined {
    return this.replays.get(letterKey(partition, offset));
  }

  get size(): number {
    return this.replays.size;
  }
}
