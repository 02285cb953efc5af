import { HEADER, type DeadLetter, type OutputRecord, type SourceRecord } from '../model/records.js';
import { passThroughHeaders } from './encode.js';

const RESERVED = new Set<string>([
  HEADER.dlqReason,
  HEADER.dlqError,
  HEADER.dlqNode,
  HEADER.lateReason,
  HEADER.lateDetail,
  HEADER.sourceTopic,
  HEADER.sourcePartition,
  HEADER.sourceOffset,
]);
const MAX_ERROR_LENGTH = 1000;

/** The original key and bytes, untouched, plus headers naming the reason and where it came from. */
export function toDeadLetterRecord(dead: DeadLetter, topic: string, node: string): OutputRecord {
  return sideOutput(dead.source, topic, node, { [HEADER.dlqReason]: dead.reason, [HEADER.dlqError]: dead.message.slice(0, MAX_ERROR_LENGTH) });
}

/**
 * A valid event taken out of the main flow because it came too late: original bytes, reason
 * headers, and as its timestamp when Ordo saw it (`seenAt`, ms): its dedupe claim, which a
 * restored task reads back from here.
 */
export function toLateRecord(late: { source: SourceRecord; reason: string; detail: string; seenAt: number }, topic: string, node: string): OutputRecord {
  const record = sideOutput(late.source, topic, node, { [HEADER.lateReason]: late.reason, [HEADER.lateDetail]: late.detail.slice(0, MAX_ERROR_LENGTH) });
  record.timestamp = late.seenAt;
  return record;
}

function sideOutput(source: SourceRecord, topic: string, node: string, why: Record<string, string>): OutputRecord {
  const headers = passThroughHeaders(source.headers, RESERVED);
  Object.assign(headers, why);
  headers[HEADER.dlqNode] = node;
  headers[HEADER.sourceTopic] = source.topic;
  headers[HEADER.sourcePartition] = String(source.partition);
  headers[HEADER.sourceOffset] = source.offset;
  return { topic, key: source.key, value: source.value, headers };
}
