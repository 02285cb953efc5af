import { createHash } from 'node:crypto';
import { millisOf, parseServiceTimeHeader, formatServiceTime, makeServiceTime } from '../clock/service-time.js';
import type { TrailKey } from '../config/config.js';
import { HEADER, type HeaderValue, type Headers, type SourceRecord } from '../model/records.js';
import { TRACEPARENT } from '../model/headers.js';
import type { UsageEvent } from '../schema/usage-event.js';
import { keyPrefix, windowKey } from '../usage/aggregation.js';
import type { MeterCatalog } from '../usage/meters.js';
import { windowStart } from '../usage/windows.js';

/**
 * The pure half of receipts: what one record of the ordered, DLQ, late or duplicates topic
 * says about events (`toReceipts`), and under which keys the index keeps it. Nothing here
 * reads Kafka or lmdb; src/receipts/receipt-index.ts stores the entries.
 */

/** Which of the pipeline's outputs a record was read from. */
export type ReceiptTopic = 'ordered' | 'dlq' | 'late' | 'duplicates';

export type CorrectionKind = 'void' | 'amend';

/** Headers a correction carries on input and on its ordered output (owner: corrections). */
export const CORRECTION_HEADER = { kind: 'ordo-correction', source: 'ordo-corrects-source', id: 'ordo-corrects-id' } as const;

export interface Position {
  partition: number;
  offset: string;
}

/** An event's order key: origin service time (16 hex) else Ordo's stamp, then node. */
export interface OrderKey {
  time: string;
  node: string;
}

/** One fact about one event, as the index keeps it (JSON in lmdb). */
export type Receipt =
  | {
      kind: 'accepted';
      source: string;
      id: string;
      subject: string;
      type: string;
      seq: string | undefined;
      serviceTime: string | undefined;
      serviceNode: string | undefined;
      orderKey: OrderKey;
      position: Position;
      /** Record timestamp (ms): when Ordo emitted it. */
      at: number;
      aggregates: string[];
      /** Set when this accepted event is itself a correction. */
      corrects?: { kind: CorrectionKind; source: string; id: string };
    }
  | { kind: 'dead-lettered'; source: string | undefined; id: string | undefined; subject: string | undefined; type: string | undefined; reason: string; error: string; position: Position; input: Position | undefined; at: number }
  | { kind: 'late'; source: string; id: string; subject: string; type: string; reason: string; detail: string; position: Position; input: Position | undefined; at: number }
  /** A re-send the pipeline dropped: where it was on the input, when it was seen; position on the duplicates topic. */
  | { kind: 'duplicate'; source: string; id: string; input: Position; seenAt: number; position: Position; at: number }
  /** The original of an accepted correction: voided or amended by (source, id) at position on the ordered topic. */
  | { kind: 'corrected'; source: string; id: string; correction: CorrectionKind; by: { source: string; id: string }; position: Position; at: number };

export type Outcome = 'accepted' | 'duplicate' | 'dead-lettered' | 'late';

/** One event of a trail, in causal order by orderKey. */
export interface TrailEvent {
  source: string;
  id: string;
  subject: string;
  type: string;
  outcome: Exclude<Outcome, 'duplicate'>;
  orderKey: OrderKey;
  at: number;
  topic: ReceiptTopic;
  position: Position;
}

/** What a record adds to the index: receipts (each under its event key) and at most one trail event. */
export interface IndexEntries {
  receipts: { key: string; receipt: Receipt }[];
  trail: { id: string; event: TrailEvent } | undefined;
}

export interface EntryContext {
  /** The record's value as a UsageEvent, or undefined if it does not decode. */
  decode(value: Buffer | null): UsageEvent | undefined;
  meters: MeterCatalog;
  trailKey: TrailKey;
}

/**
 * Index keys are hashes: a (source, id) pair may be longer than lmdb's key limit, and a fixed
 * length keeps every lookup one short B-tree descent. 128 bits: no collision in practice,
 * and each receipt keeps its source and id, so a lookup checks them anyway.
 */
export function eventKey(source: string, id: string): string {
  return `e:${hash(`${source.length}:${source}${id}`)}`;
}

/** A dead letter whose value does not decode is indexed by its DLQ position only. */
export function letterKey(position: Position): string {
  return `d:${position.partition}:${position.offset}`;
}

export function trailKeyOf(id: string): string {
  return `t:${hash(id)}`;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

/** The receipts and trail event one record gives. A record that says nothing indexable gives none. */
export function toEntries(topic: ReceiptTopic, record: SourceRecord, context: EntryContext): IndexEntries {
  const position: Position = { partition: record.partition, offset: record.offset };
  const at = record.timestamp;
  if (topic === 'duplicates') return { receipts: duplicates(record, position), trail: undefined };
  const event = context.decode(record.value);
  if (topic === 'ordered') {
    if (event === undefined) return { receipts: [], trail: undefined };
    const orderKey = orderKeyOf(record.headers, HEADER.originServiceTime, HEADER.originServiceNode) ?? orderKeyOf(record.headers, HEADER.serviceTime, HEADER.serviceNode) ?? stampOf(at);
    const corrects = correctionOf(record.headers);
    const receipt: Receipt = {
      kind: 'accepted',
      source: event.source,
      id: event.id,
      subject: event.subject,
      type: event.type,
      seq: text(record.headers[HEADER.seq]),
      serviceTime: text(record.headers[HEADER.serviceTime]),
      serviceNode: text(record.headers[HEADER.serviceNode]),
      orderKey,
      position,
      at,
      aggregates: aggregatesTouched(event, context.meters),
      ...(corrects !== undefined ? { corrects } : {}),
    };
    const receipts: IndexEntries['receipts'] = [{ key: eventKey(event.source, event.id), receipt }];
    if (corrects !== undefined) {
      receipts.push({
        key: eventKey(corrects.source, corrects.id),
        receipt: { kind: 'corrected', source: corrects.source, id: corrects.id, correction: corrects.kind, by: { source: event.source, id: event.id }, position, at },
      });
    }
    return { receipts, trail: trailOf(event, record, context.trailKey, 'accepted', topic, orderKey, position) };
  }
  const input = inputPosition(record.headers);
  // A side output carries the input's headers: the upstream's time context if it sent one, else when it was written.
  const orderKey = orderKeyOf(record.headers, HEADER.serviceTime, HEADER.serviceNode) ?? stampOf(at);
  if (topic === 'late') {
    if (event === undefined) return { receipts: [], trail: undefined };
    const receipt: Receipt = {
      kind: 'late',
      source: event.source,
      id: event.id,
      subject: event.subject,
      type: event.type,
      reason: text(record.headers[HEADER.lateReason]) ?? 'unknown',
      detail: text(record.headers[HEADER.lateDetail]) ?? '',
      position,
      input,
      at,
    };
    return { receipts: [{ key: eventKey(event.source, event.id), receipt }], trail: trailOf(event, record, context.trailKey, 'late', topic, orderKey, position) };
  }
  const receipt: Receipt = {
    kind: 'dead-lettered',
    source: event?.source,
    id: event?.id,
    subject: event?.subject,
    type: event?.type,
    reason: text(record.headers[HEADER.dlqReason]) ?? 'unknown',
    error: text(record.headers[HEADER.dlqError]) ?? '',
    position,
    input,
    at,
  };
  if (event === undefined) return { receipts: [{ key: letterKey(position), receipt }], trail: undefined };
  return {
    receipts: [{ key: eventKey(event.source, event.id), receipt }],
    trail: trailOf(event, record, context.trailKey, 'dead-lettered', topic, orderKey, position),
  };
}

/** The aggregate keys an accepted event updated: each meter of its type, each window the meter keeps. */
export function aggregatesTouched(event: UsageEvent, meters: MeterCatalog): string[] {
  const keys: string[] = [];
  for (const meter of meters.forEventType(event.type)) {
    // As AggregateStep.readMeter: a group-by dimension the event lacks is left out of the key.
    const groupBy: Record<string, string> = {};
    for (const [name, dimension] of Object.entries(meter.groupBy)) {
      if (Object.hasOwn(event.dimensions, dimension)) groupBy[name] = event.dimensions[dimension] as string;
    }
    const prefix = keyPrefix(meter.slug, event.subject, groupBy);
    for (const size of meter.windows) keys.push(windowKey(prefix, size, new Date(windowStart(event.time, size)).toISOString()));
  }
  return keys;
}

/** The correlation id of an event per the configured key, or undefined. */
export function correlationId(event: UsageEvent, headers: Headers, key: TrailKey): string | undefined {
  if (key.kind === 'dimension') {
    const value = Object.hasOwn(event.dimensions, key.name) ? event.dimensions[key.name] : undefined;
    return value === undefined || value === '' ? undefined : value;
  }
  if (key.kind === 'header') {
    const value = text(headers[key.name.toLowerCase()]);
    return value === undefined || value === '' ? undefined : value;
  }
  const traceparent = text(headers[HEADER.traceparent]);
  if (traceparent === undefined || !TRACEPARENT.test(traceparent)) return undefined;
  return traceparent.split('-')[1];
}

function trailOf(event: UsageEvent, record: SourceRecord, key: TrailKey, outcome: TrailEvent['outcome'], topic: ReceiptTopic, orderKey: OrderKey, position: Position): IndexEntries['trail'] {
  const id = correlationId(event, record.headers, key);
  if (id === undefined) return undefined;
  return { id, event: { source: event.source, id: event.id, subject: event.subject, type: event.type, outcome, orderKey, at: record.timestamp, topic, position } };
}

/** The duplicates record (contract): `{"duplicates":[{"source","id","partition","offset","seenAt"}]}`; malformed items are skipped. */
function duplicates(record: SourceRecord, position: Position): IndexEntries['receipts'] {
  if (record.value === null) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(record.value.toString('utf8'));
  } catch {
    return [];
  }
  const items = (parsed as { duplicates?: unknown } | null)?.duplicates;
  if (!Array.isArray(items)) return [];
  const receipts: IndexEntries['receipts'] = [];
  for (const item of items as Record<string, unknown>[]) {
    const { source, id, partition, offset, seenAt } = item ?? {};
    if (typeof source !== 'string' || typeof id !== 'string' || typeof partition !== 'number' || typeof offset !== 'string' || typeof seenAt !== 'number') continue;
    receipts.push({ key: eventKey(source, id), receipt: { kind: 'duplicate', source, id, input: { partition, offset }, seenAt, position, at: record.timestamp } });
  }
  return receipts;
}

function correctionOf(headers: Headers): { kind: CorrectionKind; source: string; id: string } | undefined {
  const kind = text(headers[CORRECTION_HEADER.kind]);
  const source = text(headers[CORRECTION_HEADER.source]);
  const id = text(headers[CORRECTION_HEADER.id]);
  if ((kind !== 'void' && kind !== 'amend') || source === undefined || id === undefined) return undefined;
  return { kind, source, id };
}

function stampOf(at: number): OrderKey {
  return { time: formatServiceTime(makeServiceTime(Math.min(Math.max(0, Math.trunc(at)), 2 ** 48 - 1), 0)), node: '' };
}

function orderKeyOf(headers: Headers, timeHeader: string, nodeHeader: string): OrderKey | undefined {
  let time: bigint | undefined;
  try {
    time = parseServiceTimeHeader(headers[timeHeader]);
  } catch {
    return undefined;
  }
  if (time === undefined) return undefined;
  return { time: formatServiceTime(time), node: text(headers[nodeHeader]) ?? '' };
}

function inputPosition(headers: Headers): Position | undefined {
  const partition = Number(text(headers[HEADER.sourcePartition]));
  const offset = text(headers[HEADER.sourceOffset]);
  return Number.isInteger(partition) && offset !== undefined ? { partition, offset } : undefined;
}

/** A header as text (the last of a repeated one). */
export function text(value: HeaderValue): string | undefined {
  if (value === undefined) return undefined;
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  if (last === undefined) return undefined;
  return typeof last === 'string' ? last : last.toString('utf8');
}

/** Milliseconds of a 16-hex service time. */
export function serviceMillis(time: string): number {
  return millisOf(BigInt(`0x${time}`));
}
