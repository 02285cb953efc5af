import avro from 'avsc';
import fc from 'fast-check';
import type { PhysicalClock } from '../../../src/clock/physical-clock.js';
import { InMemoryStore } from '../../../src/engine/state-store.js';
import { stringCodec, type KeyValueStore } from '../../../src/model/store.js';
import type { Replay, ReplaySource, StoreSpec, TaskContext } from '../../../src/engine/task-processor.js';
import type { Headers, SourceRecord } from '../../../src/model/records.js';
import type { SchemaLookup } from '../../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../../../src/schema/usage-event.js';
import { frame } from '../../../src/schema/wire-format.js';

/** A fixed instant well inside the 48-bit millisecond range. */
export const T0 = 1_700_000_000_000;

/** A wall clock the test controls: set it, step it forwards or backwards. */
export class FakeClock implements PhysicalClock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

/** Runs `fn` and returns what it threw; fails the test if it did not throw. */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, none was thrown');
}

export function usageEvent(overrides: Partial<UsageEvent> = {}): UsageEvent {
  return {
    id: 'evt-1',
    source: 'api-gateway',
    type: 'api.request',
    subject: 'customer-42',
    time: T0,
    value: '12.50',
    dimensions: { region: 'eu-west-1', model: 'large' },
    ...overrides,
  };
}

/** Confluent-framed Avro bytes of `event`, written with `writer` (default: our own schema). */
export function framedEvent(schemaId: number, event: object, writer: avro.Type = usageEventType): Buffer {
  return frame(schemaId, writer.toBuffer(event));
}

let nextOffset = 0;

export function sourceRecord(fields: Partial<SourceRecord> & { value: Buffer | null }): SourceRecord {
  const headers: Headers = fields.headers ?? {};
  return {
    topic: 'usage-events',
    partition: 3,
    offset: String(nextOffset++),
    key: Buffer.from('customer-42'),
    timestamp: T0,
    ...fields,
    headers,
  };
}

/** A SchemaLookup backed by a Map: id -> writer type, or null for "the registry says no such id". */
export class MapSchemaLookup implements SchemaLookup {
  readonly types: Map<number, avro.Type | null>;
  constructor(entries: Iterable<[number, avro.Type | null]> = []) {
    this.types = new Map(entries);
  }
  writerType(schemaId: number): avro.Type | null | undefined {
    return this.types.get(schemaId);
  }
}

/**
 * Stands in for SchemaCatalog: `registry` is what the schema registry would answer; only ids
 * fetched by `prefetch` are visible to `writerType`, as with the real catalog.
 */
export class FakeCatalog implements SchemaLookup {
  private readonly fetched = new Map<number, avro.Type | null>();
  constructor(private readonly registry: ReadonlyMap<number, avro.Type>) {}

  writerType(schemaId: number): avro.Type | null | undefined {
    return this.fetched.get(schemaId);
  }

  prefetch(schemaIds: Iterable<number>): Promise<void> {
    for (const id of schemaIds) this.fetched.set(id, this.registry.get(id) ?? null);
    return Promise.resolve();
  }
}

/**
 * A TaskContext with real InMemoryStores (what the engine hands processors): meta plus
 * one per spec. `commit()` applies staged writes as a committed transaction would.
 */
export function taskContext(
  meta: InMemoryStore<string> = new InMemoryStore('meta', stringCodec),
  specs: readonly StoreSpec[] = [],
): TaskContext & { meta: InMemoryStore<string>; stores: Map<string, InMemoryStore<unknown>>; commit(): void } {
  const stores = new Map<string, InMemoryStore<unknown>>(specs.map((spec) => [spec.name, new InMemoryStore(spec.name, spec.codec)]));
  return {
    topic: 'usage-events',
    partition: 3,
    meta,
    stores,
    store<V>(name: string): KeyValueStore<V> {
      const store = stores.get(name);
      if (!store) throw new Error(`no store named ${name}`);
      return store as KeyValueStore<V>;
    },
    commit() {
      meta.commit();
      for (const store of stores.values()) store.commit();
    },
  };
}

/** Header value as a string, whether kafkajs gave a Buffer or a string. */
export function headerText(value: Buffer | string | undefined): string | undefined {
  return value === undefined ? undefined : value.toString();
}

// ---- fast-check arbitraries -------------------------------------------------------------

const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Full Unicode text (whole graphemes, so it survives UTF-8 encoding). */
export const anyText = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'grapheme', minLength, maxLength });

/** Plain decimal strings built from an integer part (up to 38 digits) and an optional fraction. */
export const anyDecimal: fc.Arbitrary<string> = fc
  .tuple(
    fc.boolean(),
    fc.oneof(fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 0n, max: 10n ** 38n - 1n })),
    fc.option(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 38 }), { nil: undefined }),
  )
  .map(([negative, int, fraction]) => `${negative ? '-' : ''}${int}${fraction === undefined ? '' : `.${fraction}`}`);

/**
 * Dimension maps. `__proto__` is left out on purpose: avsc decodes Avro maps into plain `{}`
 * objects, where assigning a string to `__proto__` is a silent no-op, so such a dimension is
 * dropped on decode. Known and reported; not what these round-trip properties are about.
 */
export const anyDimensions: fc.Arbitrary<Record<string, string>> = fc
  .dictionary(
    anyText(1, 20).filter((k) => k !== '__proto__'),
    anyText(0, 30),
    { maxKeys: 12 },
  )
  .map((d) => ({ ...d }));

export const anyUsageEvent: fc.Arbitrary<UsageEvent> = fc.record({
  id: anyText(1, 40),
  source: anyText(1, 40),
  type: anyText(1, 40),
  subject: anyText(1, 40),
  time: fc.integer({ min: 0, max: MAX_TIME }),
  value: anyDecimal,
  dimensions: anyDimensions,
});

/** v0 of the UsageEvent schema: before `value` and `dimensions` were added (both have defaults). */
export const olderUsageEventType = avro.Type.forSchema({
  type: 'record',
  name: 'UsageEvent',
  namespace: 'dev.ordo.v1',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'source', type: 'string' },
    { name: 'type', type: 'string' },
    { name: 'subject', type: 'string' },
    { name: 'time', type: 'long' },
  ],
});

/**
 * Topics in memory, as a task's partition of them: what a batch's outputs append (with
 * offsets, and their timestamps or `now`), and a Replay over them for `onRestored`.
 */
export class MemoryTopics implements Replay {
  readonly topics = new Map<string, SourceRecord[]>();
  replayed = 0;

  append(records: readonly { topic: string; key: Buffer | string | null; value: Buffer | string | null; headers: Record<string, Buffer | string>; timestamp?: number }[], now: number): void {
    for (const r of records) {
      const log = this.topics.get(r.topic) ?? [];
      this.topics.set(r.topic, log);
      const bytes = (v: Buffer | string | null): Buffer | null => (v === null ? null : typeof v === 'string' ? Buffer.from(v) : v);
      log.push({ topic: r.topic, partition: 3, offset: String(log.length), key: bytes(r.key), value: bytes(r.value), headers: { ...r.headers }, timestamp: r.timestamp ?? now });
    }
  }

  async read(sources: readonly ReplaySource[]): Promise<number> {
    let n = 0;
    for (const source of sources) {
      const log = this.topics.get(source.topic) ?? [];
      const { offset, timestamp } = source.from;
      let start = offset ?? BigInt(log.length);
      if (timestamp !== undefined) {
        const at = log.findIndex((r) => r.timestamp >= timestamp);
        const found = BigInt(at < 0 ? log.length : at);
        if (found < start) start = found;
      }
      for (const record of log) {
        const o = BigInt(record.offset);
        if (o < start || (source.to !== undefined && o >= source.to)) continue;
        source.onRecord(record);
        n += 1;
      }
    }
    this.replayed += n;
    return Promise.resolve(n);
  }
}
