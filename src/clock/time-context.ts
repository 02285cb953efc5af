/**
 * The time context a message carries: `service-time` (16 lowercase hex digits) and the
 * optional `service-node`. One strict reader for every way a context arrives (Kafka record
 * headers in the pipeline, HTTP headers at the ingest role and in the client SDK), so a
 * context refused in one place is refused in all of them (docs/hybrid-time.md, Headers).
 */
import { BadRecordError } from '../errors.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, type HeaderValue, type TimeContext } from '../model/headers.js';
import { parseServiceTimeHeader } from './service-time.js';

const NODE = /^[\x21-\x7e]{1,255}$/;

/**
 * Reads `service-time` / `service-node` from a header map (kafkajs record headers or
 * `node:http` request headers: names in lowercase). Absent: undefined. A node without a
 * time, several values of either header, a time that is not 16 lowercase hex digits or a
 * node that is not 1-255 printable ASCII characters: `BadRecordError` with reason
 * `bad-service-time` (its subclass `BadServiceTimeError` for the time itself).
 */
export function readTimeContext(headers: Readonly<Record<string, HeaderValue>>): TimeContext | undefined {
  const time = parseServiceTimeHeader(headers[SERVICE_TIME_HEADER]);
  const nodeHeader = headers[SERVICE_NODE_HEADER];
  const node = nodeHeader === undefined ? undefined : single(nodeHeader);
  if (node !== undefined && !NODE.test(node)) {
    throw new BadRecordError('bad-service-time', `service-node ${JSON.stringify(node.slice(0, 40))} is not 1-255 printable ASCII characters`);
  }
  if (time === undefined) {
    if (node !== undefined) throw new BadRecordError('bad-service-time', 'service-node header without a service-time header');
    return undefined;
  }
  return { time, node };
}

/** Whether `node` may be sent as `service-node`: 1-255 printable ASCII characters, no spaces. */
export function isServiceNode(node: string): boolean {
  return NODE.test(node);
}

function single(value: Exclude<HeaderValue, undefined>): string | undefined {
  if (Array.isArray(value)) {
    if (value.length === 0) return undefined; // like service-time: an empty list is no header
    if (value.length !== 1) throw new BadRecordError('bad-service-time', 'multiple service-node headers');
    value = value[0]!;
  }
  return typeof value === 'string' ? value : value.toString('utf8');
}
