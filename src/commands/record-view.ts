import { counterOf, millisOf, parseServiceTime } from '../clock/service-time.js';
import { BadRecordError } from '../errors.js';
import { DecodeStep } from '../processors/decode.js';
import { type HeaderValue, type SourceRecord, setHeader } from '../model/records.js';
import { ResolverCache } from '../schema/resolvers.js';
import type { SchemaLookup } from '../schema/schema-catalog.js';
import { usageEventType } from '../schema/usage-event.js';
import { unframe } from '../schema/wire-format.js';
import { usageAggregateType } from '../usage/aggregation.js';

/**
 * One record of any Ordo topic, decoded for people and scripts (`ordo events tail`):
 * UsageEvents (input, ordered, global; DLQ and late records that still decode) through
 * the pipeline's decode step, UsageAggregates through the api role's resolver, anything
 * else as text or base64, with the reason it did not decode.
 */
export interface RecordView {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: string | null;
  headers: Record<string, string>;
  /** What the value is: a decoded event or aggregate, text, base64 bytes, or null (tombstone). */
  kind: 'event' | 'aggregate' | 'avro' | 'text' | 'bytes' | 'null';
  value: unknown;
  schemaId?: number;
  /** Why the value is not a valid UsageEvent/UsageAggregate (as the pipeline would say it). */
  error?: string;
}

export class RecordDecoder {
  private readonly decode: DecodeStep;
  private readonly aggregates = new ResolverCache(usageAggregateType);

  constructor(private readonly schemas: SchemaLookup) {
    this.decode = new DecodeStep(schemas);
  }

  view(record: SourceRecord): RecordView {
    const base = {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: new Date(record.timestamp).toISOString(),
      key: record.key === null ? null : record.key.toString('utf8'),
      headers: headerText(record.headers),
    };
    if (record.value === null) return { ...base, kind: 'null', value: null };
    let framed;
    try {
      framed = unframe(record.value);
    } catch (error) {
      if (!(error instanceof BadRecordError)) throw error;
      return { ...base, ...raw(record.value), error: error.message };
    }
    const schemaId = framed.schemaId;
    const writer = this.schemas.writerType(schemaId);
    if (!writer) return { ...base, ...raw(record.value), schemaId, error: `schema id ${schemaId} is not in the schema registry` };
    if (writer.name === usageAggregateType.name) {
      const resolver = this.aggregates.resolverFor(writer);
      try {
        if (resolver instanceof Error) throw resolver;
        return { ...base, kind: 'aggregate', value: usageAggregateType.fromBuffer(framed.body, resolver), schemaId };
      } catch (error) {
        return { ...base, ...raw(record.value), schemaId, error: `not a UsageAggregate: ${(error as Error).message}` };
      }
    }
    if (writer.name === usageEventType.name) {
      const { items, dead } = this.decode.run([record]);
      if (items[0]) return { ...base, kind: 'event', value: items[0].event, schemaId };
      // Not valid as the pipeline sees it (a DLQ record, say): still show what the bytes say.
      const error = dead[0]?.message ?? 'not a UsageEvent';
      try {
        return { ...base, kind: 'avro', value: writer.fromBuffer(framed.body), schemaId, error };
      } catch {
        return { ...base, ...raw(record.value), schemaId, error };
      }
    }
    try {
      return { ...base, kind: 'avro', value: writer.fromBuffer(framed.body), schemaId };
    } catch (error) {
      return { ...base, ...raw(record.value), schemaId, error: (error as Error).message };
    }
  }
}

function raw(value: Buffer): Pick<RecordView, 'kind' | 'value'> {
  const text = value.toString('utf8');
  // Printable UTF-8 (a watermark, a JSON mistake) as text; anything else as base64.
  if (Buffer.from(text, 'utf8').equals(value) && ![...text].some(isControl)) return { kind: 'text', value: text };
  return { kind: 'bytes', value: value.toString('base64') };
}

/** C0 controls other than tab, newline and carriage return, and DEL. */
function isControl(char: string): boolean {
  const code = char.charCodeAt(0);
  return (code < 0x20 && char !== '\t' && char !== '\n' && char !== '\r') || code === 0x7f;
}

function headerText(headers: Readonly<Record<string, HeaderValue>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = (Array.isArray(value) ? value : [value]).map((v) => v.toString()).join(',');
    setHeader(out, name, text);
  }
  return out;
}

/** One JSON line; bigint-free (offsets are strings). */
export function formatJson(view: RecordView): string {
  return JSON.stringify(view, jsonSafe);
}

const TIME_HEADERS = new Set(['service-time', 'origin-service-time']);

/** A few readable lines per record: where it is, its headers, its value. */
export function formatHuman(view: RecordView): string {
  const lines = [`${view.topic} [${view.partition}] @${view.offset}  ${view.timestamp}  key=${view.key ?? '(null)'}`];
  const headers = Object.entries(view.headers).map(([name, value]) => `${name}=${TIME_HEADERS.has(name) ? readableTime(value) : value}`);
  if (headers.length > 0) lines.push(`  headers: ${headers.join('  ')}`);
  lines.push(`  ${view.kind}: ${typeof view.value === 'string' ? view.value : JSON.stringify(view.value, jsonSafe)}`);
  if (view.error) lines.push(`  error: ${view.error}`);
  return lines.join('\n');
}

function readableTime(hex: string): string {
  try {
    const t = parseServiceTime(hex);
    return `${hex} (${new Date(millisOf(t)).toISOString()}+${counterOf(t)})`;
  } catch {
    return hex;
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
