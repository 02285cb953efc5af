import { BadRecordError, type DeadLetterReason, OrdoError } from '../errors.js';
import type { SchemaLookup } from '../schema/schema-catalog.js';
import { type UsageEvent, usageEventType, validateUsageEvent } from '../schema/usage-event.js';
import { ResolverCache } from '../schema/resolvers.js';
import { HEADER_SIZE, MAGIC_BYTE, frame, unframe } from '../schema/wire-format.js';
import { readTimeContext } from '../clock/time-context.js';
import type { DecodedEvent, HeaderValue, ProducerSeq, SourceRecord, StepResult, TimeContext } from '../model/records.js';

/** The strict time-context reader lives in src/clock/time-context.ts (the client SDK shares it). */
export { readTimeContext };

/** Schema ids in a batch, so the engine can prefetch writer schemas before the pure step. */
export function schemaIdsOf(records: readonly SourceRecord[]): number[] {
  const ids = new Set<number>();
  for (const record of records) {
    const value = record.value;
    if (value && value.length >= HEADER_SIZE && value[0] === MAGIC_BYTE) ids.add(value.readUInt32BE(1));
  }
  return [...ids];
}

/**
 * Decodes Confluent-framed Avro UsageEvents against our reader schema (schema evolution
 * through avsc resolvers), validates them and reads the upstream time context and
 * producer sequence headers.
 * Pure: every writer schema must already be in `schemas`.
 */
export class DecodeStep {
  private readonly resolvers = new ResolverCache(usageEventType);

  constructor(private readonly schemas: SchemaLookup) {}

  run(records: readonly SourceRecord[]): StepResult<DecodedEvent> {
    const items: DecodedEvent[] = [];
    const dead: StepResult<DecodedEvent>['dead'] = [];
    for (const source of records) {
      try {
        const event = this.decodeValue(source.value);
        const context = readTimeContext(source.headers);
        items.push({ source, event, context, producer: readProducerSeq(source.headers, context) });
      } catch (error) {
        if (!(error instanceof BadRecordError)) throw error;
        dead.push({ source, reason: error.reason, message: error.message });
      }
    }
    return { items, dead };
  }

  private decodeValue(value: Buffer | null): UsageEvent {
    const { schemaId, body } = unframe(value);
    const writer = this.schemas.writerType(schemaId);
    if (writer === undefined) throw new OrdoError(`schema id ${schemaId} was not prefetched`); // engine bug, not data
    if (writer === null) throw new BadRecordError('unknown-schema', `schema id ${schemaId} is not in the schema registry`);
    const resolver = this.resolvers.resolverFor(writer);
    if (resolver instanceof Error) {
      throw new BadRecordError('incompatible-schema', `schema id ${schemaId} cannot be read as UsageEvent: ${resolver.message}`);
    }
    let event: UsageEvent;
    try {
      // Trailing bytes are checked: a body longer than its schema says is not this event.
      event = usageEventType.fromBuffer(body, resolver, false) as UsageEvent;
    } catch (cause) {
      throw new BadRecordError('undecodable', `Avro body does not decode with schema id ${schemaId}: ${(cause as Error).message}`, { cause });
    }
    if (body.includes(PROTO) && droppedProtoKey(body, event)) {
      throw new BadRecordError('invalid-event', 'dimension name "__proto__" is reserved');
    }
    validateUsageEvent(event);
    return event;
  }
}

const PROTO = Buffer.from('__proto__');

/**
 * avsc decodes maps into plain objects, where a `__proto__` key is silently dropped. If
 * the body mentions `__proto__` more often than the decoded strings do, a dimension of
 * that name was lost: the record is rejected rather than counted without it.
 */
function droppedProtoKey(body: Buffer, event: UsageEvent): boolean {
  const strings = [event.id, event.source, event.type, event.subject, event.value, ...Object.keys(event.dimensions), ...Object.values(event.dimensions)];
  const decoded = strings.reduce((n, s) => n + occurrences(Buffer.from(s), PROTO), 0);
  return occurrences(body, PROTO) > decoded;
}

function occurrences(haystack: Buffer, needle: Buffer): number {
  let count = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) count += 1;
  return count;
}

export const PRODUCER_ID_HEADER = 'producer-id';
export const PRODUCER_SEQ_HEADER = 'producer-seq';
const SEQ_PATTERN = /^\d{1,19}$/;
const MAX_SEQ = (1n << 63n) - 1n;

/**
 * The producer sequence an upstream service sent, if any. `producer-seq` is a decimal
 * integer counted per (producer, subject); the producer is `producer-id`, else the node of
 * the time context. A malformed value makes the record `invalid-event`.
 */
export function readProducerSeq(headers: Readonly<Record<string, HeaderValue>>, context: TimeContext | undefined): ProducerSeq | undefined {
  const raw = lastText(headers[PRODUCER_SEQ_HEADER]);
  if (raw === undefined) return undefined;
  if (!SEQ_PATTERN.test(raw) || BigInt(raw) > MAX_SEQ) {
    throw new BadRecordError('invalid-event', `${PRODUCER_SEQ_HEADER} header "${raw.slice(0, 40)}" is not a decimal integer between 0 and 2^63-1`);
  }
  const id = lastText(headers[PRODUCER_ID_HEADER]) ?? context?.node ?? '';
  return { id, seq: BigInt(raw) };
}

function lastText(value: HeaderValue): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.toString();
}

/** Stateless for its one writer type: made once. */
const ownWriterDecode = new DecodeStep({ writerType: () => usageEventType });

/**
 * What the pipeline would say of this event with these headers, before a byte is written
 * (`ordo events produce`, the ingest role): undefined if it decodes and validates, else the
 * dead-letter reason and message it would get. The same decode step over the encoded record,
 * so a producer and the pipeline agree by construction.
 */
export function pipelineVerdict(event: UsageEvent, headers: Readonly<Record<string, string>>): { reason: DeadLetterReason; message: string } | undefined {
  const checked = checkAsPipeline(event, headers);
  return checked.ok ? undefined : checked;
}

/** pipelineVerdict, also giving the Avro body it checked (unframed): a writer frames it with its schema id instead of encoding again. */
export function checkAsPipeline(event: UsageEvent, headers: Readonly<Record<string, string>>): { ok: true; body: Buffer } | { ok: false; reason: DeadLetterReason; message: string } {
  const body = usageEventType.toBuffer(event);
  const record: SourceRecord = { topic: '', partition: 0, offset: '0', key: null, value: frame(0, body), headers: { ...headers }, timestamp: 0 };
  const dead = ownWriterDecode.run([record]).dead[0];
  return dead === undefined ? { ok: true, body } : { ok: false, reason: dead.reason, message: dead.message };
}
