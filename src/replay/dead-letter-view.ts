import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../errors.js';
import { HEADER, type HeaderValue, type Headers, type SourceRecord, setHeader } from '../model/records.js';

/**
 * A record of the DLQ topic as replay sees it: where it is, why it is there (the headers the
 * pipeline's dead-letter step wrote, src/processors/dead-letter.ts) and where it came from.
 * Pure: no Kafka.
 */
export interface DeadLetterView {
  partition: number;
  offset: string;
  reason: DeadLetterReason;
  error: string;
  /** The worker that dead-lettered it. */
  node: string;
  /** The input record it was (`ordo-source-*`). */
  source: { topic: string; partition: number; offset: string } | null;
  /** When the pipeline wrote it (the DLQ record's timestamp, ms). */
  timestamp: number;
}

/** Header prefixes of what the DLQ added: never re-produced to the input. */
export const STRIPPED_PREFIXES = ['ordo-dlq-', 'ordo-source-'] as const;
/** Names the replayed input record by the letter it came from (`<dlq partition>/<offset>`); passes through to the ordered output. */
export const REPLAY_OF_HEADER = 'ordo-replay-of';

function text(value: HeaderValue): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.toString();
}

/** The letter's view, or undefined when the record is not a dead letter (no known `ordo-dlq-reason`). */
export function viewDeadLetter(record: SourceRecord): DeadLetterView | undefined {
  const reason = text(record.headers[HEADER.dlqReason]);
  if (reason === undefined || !(DEAD_LETTER_REASONS as readonly string[]).includes(reason)) return undefined;
  const topic = text(record.headers[HEADER.sourceTopic]);
  const partition = text(record.headers[HEADER.sourcePartition]);
  const offset = text(record.headers[HEADER.sourceOffset]);
  const source = topic !== undefined && partition !== undefined && /^\d{1,9}$/.test(partition) && offset !== undefined && /^\d{1,19}$/.test(offset) ? { topic, partition: Number(partition), offset } : null;
  return {
    partition: record.partition,
    offset: record.offset,
    reason: reason as DeadLetterReason,
    error: text(record.headers[HEADER.dlqError]) ?? '',
    node: text(record.headers[HEADER.dlqNode]) ?? '',
    source,
    timestamp: record.timestamp,
  };
}

/**
 * The headers to re-produce: the original ones (as the DLQ kept them), without every
 * `ordo-dlq-*` and `ordo-source-*` header, and with `ordo-replay-of` naming the letter
 * (replacing one a replayed letter may carry already). A repeated header keeps its last value.
 */
export function replayHeaders(headers: Headers, letter: { partition: number; offset: string }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (STRIPPED_PREFIXES.some((prefix) => name.startsWith(prefix)) || name === REPLAY_OF_HEADER) continue;
    const last = text(value);
    if (last !== undefined) setHeader(out, name, last);
  }
  out[REPLAY_OF_HEADER] = letterKey(letter.partition, letter.offset);
  return out;
}

/** The key of a letter in the replays topic: `<dlq partition>/<offset>`. */
export function letterKey(partition: number, offset: string): string {
  return `${partition}/${offset}`;
}

/** A time range [from, to) over the letters' DLQ timestamps, and the reason they must have. */
export interface LetterFilter {
  reason?: DeadLetterReason;
  fromMs: number;
  toMs: number;
}

export function matchesFilter(letter: DeadLetterView, filter: LetterFilter): boolean {
  return (filter.reason === undefined || letter.reason === filter.reason) && letter.timestamp >= filter.fromMs && letter.timestamp < filter.toMs;
}
