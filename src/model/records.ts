import type { DeadLetterReason } from '../errors.js';
import type { UsageEvent } from '../schema/usage-event.js';
import { SERVICE_NODE_HEADER, SERVICE_TIME_HEADER, type Headers, type TimeContext } from './headers.js';

// The time context's shapes and header names live in ./headers.ts: the client SDK shares them without the schema types.
export type { HeaderValue, Headers, TimeContext } from './headers.js';

/** One input record as read from a partition. Offsets stay strings (Kafka offsets are int64). */
export interface SourceRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
  /** Record timestamp, ms since the epoch, as Kafka gave it. */
  timestamp: number;
}

/** A record to write, always to the task's own partition of `topic` unless `partition` is set. */
export interface OutputRecord {
  topic: string;
  key: Buffer | string | null;
  value: Buffer | string | null;
  headers: Record<string, Buffer | string>;
  partition?: number;
  /** Record timestamp (ms); default: when it is sent. */
  timestamp?: number;
}

/** A record that cannot be processed, with the reason that goes into the DLQ headers. */
export interface DeadLetter {
  source: SourceRecord;
  reason: DeadLetterReason;
  message: string;
}

/** An upstream producer's own per-subject sequence number (headers `producer-id`, `producer-seq`). */
export interface ProducerSeq {
  id: string;
  seq: bigint;
}

export interface DecodedEvent {
  source: SourceRecord;
  event: UsageEvent;
  context: TimeContext | undefined;
  /** The upstream producer's sequence, when it sent `producer-seq`. */
  producer?: ProducerSeq;
}

export interface StampedEvent extends DecodedEvent {
  /**
   * Ordo's stamp when it saw the event (dedupe window, lateness). The ordered output's
   * `service-time` is restamped as the event leaves the reorder buffer (OrderStep).
   */
  stamp: { time: bigint; node: string };
  /** Origin service time if the input had one, else the stamp: what downstream order follows. */
  orderKey: { time: bigint; node: string };
}

/** A step's result: what goes on, and what goes to the dead-letter topic. */
export interface StepResult<T> {
  items: T[];
  dead: DeadLetter[];
}

/**
 * Sets `name` as an own property even when it is `__proto__` (a header name anyone may
 * send): plain assignment would change the object's prototype instead of adding a header.
 */
export function setHeader<V>(headers: Record<string, V>, name: string, value: V): void {
  Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
}

export const HEADER = {
  serviceTime: SERVICE_TIME_HEADER,
  serviceNode: SERVICE_NODE_HEADER,
  originServiceTime: 'origin-service-time',
  originServiceNode: 'origin-service-node',
  /**
   * Where `origin-service-*` (the order key) came from: `context` (the upstream service's
   * time context) or `arrival` (no context was passed; Ordo's stamp on arrival).
   */
  origin: 'ordo-origin',
  seq: 'ordo-seq',
  /** `true` on an ordered event emitted after its slot (late policy `flag`). */
  late: 'ordo-late',
  /**
   * On ordered output (ms): records after this one on the partition have order keys from
   * this millisecond on, unless they reached Ordo later than the reorder window allows.
   * What the `merge` role's low watermark is made of (OrderStep.promise).
   */
  watermark: 'ordo-watermark',
  /** On the global topic: a gapless sequence over the whole stream. */
  globalSeq: 'ordo-global-seq',
  traceparent: 'traceparent',
  dlqReason: 'ordo-dlq-reason',
  dlqError: 'ordo-dlq-error',
  /** The node that wrote a DLQ or late record. */
  dlqNode: 'ordo-dlq-node',
  lateReason: 'ordo-late-reason',
  lateDetail: 'ordo-late-detail',
  sourceTopic: 'ordo-source-topic',
  sourcePartition: 'ordo-source-partition',
  sourceOffset: 'ordo-source-offset',
} as const;
