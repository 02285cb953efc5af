// The schema id ledger against the real broker and registry: Ordo records which schema each
// registry id named when it first used it, and a worker refuses to decode (or to register)
// with an id that now names another schema, as after a registry that lost its storage.
import avro from 'avsc';
import type { Kafka, Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaConflictError } from '../../src/errors.js';
import { startApiRole } from '../../src/roles/api.js';
import { createPipelineWorker } from '../../src/roles/pipeline.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { sightingOf } from '../../src/schema/schema-ids.js';
import { usageEventSchema, usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { usageAggregateSchema } from '../../src/usage/aggregation.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { REGISTRY_URL, createTopics, deleteTopicsWithPrefix, produce, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { highWatermark } from '../support/workload.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { T0, usageEvent } from '../support/unit/fixtures.js';

/** A producer's own version of UsageEvent: one more field, which Ordo's reader ignores. */
const writerSchema = {
  ...(usageEventSchema as object),
  fields: [...(usageEventSchema as { fields: object[] }).fields, { name: 'ledgerTest', type: ['null', 'string'], default: null }],
} as avro.Schema;
const writerType = avro.Type.forSchema(writerSchema);
/** What a reset registry might hand out under a reused id. */
const stranger = avro.Type.forSchema({ type: 'record', name: 'Stranger', namespace: 'dev.example', fields: [{ name: 'n', type: 'long' }] });

describe('schema id ledger', () => {
  const kafka: Kafka = testKafka();
  let producer: Producer;
  const prefixes: string[] = [];

  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  async function setUp(): Promise<{ prefix: string; config: ReturnType<typeof testConfig>; writerId: number }> {
    const prefix = uniqueName('it-ledger');
    prefixes.push(prefix);
    const config = testConfig(prefix, { ORDO_TOPIC_PARTITIONS: '2' });
    await createTopics(kafka, [config.topics.input, config.topics.schemas], 2);
    const writerId = await new SchemaCatalog(REGISTRY_URL).register(`${config.topics.input}-value`, writerSchema);
    return { prefix, config, writerId };
  }

  /** Writes a sighting into the ledger topic as if a worker had recorded `type` under `id` earlier. */
  async function seed(topic: string, id: number, type: avro.Type): Promise<void> {
    await produce(producer, topic, [{ key: String(id), value: JSON.stringify(sightingOf(type, 'earlier-node', new Date('2026-11-01T00:00:00Z'))), partition: 0 }]);
  }

  it('records every id it uses, and a restarted worker accepts the same ids again', async () => {
    const { config, writerId } = await setUp();
    const events = Array.from({ length: 20 }, (_, i) => usageEvent({ id: `e-${i}`, subject: `s-${i % 3}`, time: T0 }));
    await produce(producer, config.topics.input, events.map((e) => ({ key: e.subject, value: frame(writerId, writerType.toBuffer({ ...e, ledgerTest: null })) })));
    const first = await startPipeline(config);
    await readAll(kafka, config.topics.ordered, events.length, { settleMs: 0 });
    await first.worker.stop();
    expect(first.worker.state).toBe('stopped');

    const ledger = await readAll(kafka, config.topics.schemas, 3, { settleMs: 500 });
    const recorded = new Map(ledger.map((m) => [Number(m.key!.toString()), JSON.parse(m.value!.toString()) as { sha256: string; node: string }]));
    expect(recorded.get(writerId)?.sha256).toBe(sightingOf(writerType, '').sha256);
    expect([...recorded.values()].filter((s) => s.sha256 === sightingOf(usageEventType, '').sha256)).toHaveLength(1); // the ordered topic's schema
    expect(recorded.size).toBe(3); // + the aggregates' schema

    const again = await startPipeline(config);
    await produce(producer, config.topics.input, [{ key: 'late', value: frame(writerId, writerType.toBuffer({ ...usageEvent({ id: 'after-restart', subject: 'late', time: T0 }), ledgerTest: null })) }]);
    await readAll(kafka, config.topics.ordered, events.length + 1, { settleMs: 0 });
    await again.worker.stop();
    expect(again.worker.state).toBe('stopped');
    expect(await readAll(kafka, config.topics.schemas, 3, { settleMs: 500 })).toHaveLength(3); // nothing new to record
  });

  it('stops with an error naming the id when an input schema id now names another schema: nothing decoded, nothing dead-lettered', async () => {
    const { config, writerId } = await setUp();
    await seed(config.topics.schemas, writerId, stranger);
    await produce(producer, config.topics.input, [0, 1, 2].map((i) => ({ key: 'k', value: frame(writerId, writerType.toBuffer({ ...usageEvent({ id: `x-${i}`, subject: 'k', time: T0 }), ledgerTest: null })) })));
    const { worker } = await startPipeline(config);
    expect(await worker.lifecycle.whenDone()).toBe('failed');
    expect(worker.error).toBeInstanceOf(SchemaConflictError);
    expect((worker.error as SchemaConflictError).schemaId).toBe(writerId);
    expect(worker.error?.message).toContain(`schema registry id ${writerId} now names a different schema`);
    expect(await highWatermark(kafka, config.topics.ordered)).toBe(0);
    expect(await highWatermark(kafka, config.topics.dlq)).toBe(0);
  });

  it("refuses to start when the registry answers Ordo's own schema with an id recorded for another schema", async () => {
    const { config } = await setUp();
    const orderedId = await new SchemaCatalog(REGISTRY_URL).register(`${config.topics.ordered}-value`, usageEventSchema);
    await seed(config.topics.schemas, orderedId, stranger);
    const error = await createPipelineWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SchemaConflictError);
    expect((error as SchemaConflictError).schemaId).toBe(orderedId);
  });

  it('the api role fails rather than read aggregates framed with an id that now names another schema', async () => {
    const { config } = await setUp();
    const aggregateId = await new SchemaCatalog(REGISTRY_URL).register(`${config.topics.aggregates}-value`, usageAggregateSchema);
    await seed(config.topics.schemas, aggregateId, stranger);
    await createTopics(kafka, [config.topics.aggregates], 2);
    await produce(producer, config.topics.aggregates, [{ key: '["m","s",{},"DAY","2026-11-30T00:00:00.000Z"]', value: frame(aggregateId, Buffer.from([0])) }]);
    const api = await startApiRole({ ...config, apiPort: 0 }, { logger: noopLogger, metrics: new OrdoMetrics() });
    expect(await api.done).toBe('failed');
    expect(api.readSide.store.size()).toBe(0);
  });
});
