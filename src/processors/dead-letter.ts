import { HEADER, type DeadLetter, type OutputRecord } from './records.js';
import { passThroughHeaders } from './encode.js';

const RESERVED = new Set<string>([HEADER.dlqReason, HEADER.dlqError, HEADER.dlqNode, HEADER.sourceTopic, HEADER.sourcePartition, HEADER.sourceOffset]);
const MAX_ERROR_LENGTH = 1000;

/** The original key and bytes, untouched, plus headers naming the reason and where it came from. */
export function toDeadLetterRecord(dead: DeadLetter, topic: string, node: string): OutputRecord {
  const headers = passThroughHeaders(dead.source.headers, RESERVED);
  headers[HEADER.dlqReason] = dead.reason;
  headers[HEADER.dlqError] = dead.message.slice(0, MAX_ERROR_LENGTH);
  headers[HEADER.dlqNode] = node;
  headers[HEADER.sourceTopic] = dead.source.topic;
  headers[HEADER.sourcePartition] = String(dead.source.partition);
  headers[HEADER.sourceOffset] = dead.source.offset;
  return { topic, key: dead.source.key, value: dead.source.value, headers };
}
