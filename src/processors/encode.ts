import { formatServiceTime, millisOf } from '../clock/service-time.js';
import { usageEventType } from '../schema/usage-event.js';
import { frame } from '../schema/wire-format.js';
import { HEADER, type Headers, type OutputRecord, type StampedEvent, setHeader } from '../model/records.js';

/** Headers Ordo owns on output: never passed through from input, always set from the stamp. */
const RESERVED = new Set<string>([
  HEADER.serviceTime,
  HEADER.serviceNode,
  HEADER.originServiceTime,
  HEADER.originServiceNode,
  HEADER.origin,
  HEADER.seq,
  HEADER.late,
  HEADER.watermark,
  HEADER.globalSeq,
]);

/**
 * Encodes stamped events as Confluent-framed Avro with the output schema id, keyed by
 * subject. Input headers pass through (traceparent included); Ordo's stamp becomes
 * `service-time`/`service-node`, the order key `origin-service-*`.
 */
export class EncodeStep {
  constructor(
    private readonly topic: string,
    private readonly schemaId: number,
  ) {}

  run(events: readonly StampedEvent[]): OutputRecord[] {
    return events.map((e) => {
      const headers = passThroughHeaders(e.source.headers, RESERVED);
      headers[HEADER.serviceTime] = formatServiceTime(e.stamp.time);
      headers[HEADER.serviceNode] = e.stamp.node;
      // The order key, on every record: the input's context, else Ordo's arrival stamp. Ordo's
      // own `service-time` is taken again as the event leaves the reorder buffer, so it is
      // not the order key; aggregates (LATEST) and the merge follow this one.
      headers[HEADER.originServiceTime] = formatServiceTime(e.orderKey.time);
      if (e.orderKey.node !== '') headers[HEADER.originServiceNode] = e.orderKey.node;
      // So a consumer can still tell whether the upstream passed a time context.
      headers[HEADER.origin] = e.context === undefined ? 'arrival' : 'context';
      // The timestamp is when Ordo saw the event: its dedupe claim, which a restored task reads back.
      return { topic: this.topic, key: e.event.subject, value: frame(this.schemaId, usageEventType.toBuffer(e.event)), headers, timestamp: millisOf(e.stamp.time) };
    });
  }
}

/** Copies headers except `reserved`; repeated headers keep their last value (kafkajs writes one per key). */
export function passThroughHeaders(input: Headers, reserved: ReadonlySet<string>): Record<string, Buffer | string> {
  const out: Record<string, Buffer | string> = {};
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined || reserved.has(name)) continue;
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    if (last !== undefined) setHeader(out, name, last);
  }
  return out;
}
