import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import { eventKey, toEntries } from '../../src/receipts/entries.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { usageEventType } from '../../src/schema/usage-event.js';
import { MeterCatalog } from '../../src/usage/meters.js';
import type { SourceRecord } from '../../src/model/records.js';
import { FakeCatalog, FakeClock, T0, framedEvent, sourceRecord, taskContext, usageEvent } from '../support/unit/fixtures.js';

const INPUT_ID = 1;
const DUPLICATES = 'usage-events-duplicates';

function pipeline(duplicatesTopic: string | null = DUPLICATES) {
  const settings = {
    clock: new HybridClock({ node: 'ordo-0', physical: new FakeClock(T0), maxSkewMs: 500 }),
    orderedTopic: 'usage-events-ordered',
    dlqTopic: 'usage-events-dlq',
    lateTopic: 'usage-events-late',
    aggregatesTopic: 'usage-aggregates',
    outputSchemaId: 10,
    aggregateSchemaId: 11,
    catalog: new FakeCatalog(new Map([[INPUT_ID, usageEventType], [10, usageEventType]])) as unknown as SchemaCatalog,
    meters: new MeterCatalog([]),
    dedupeWindowMs: 86_400_000,
    allowedLatenessMs: 86_400_000,
    maxFutureMs: 300_000,
    reorderWindowMs: 0,
    reorderMaxEvents: 100,
    latePolicy: 'flag' as const,
    watermarksTopic: 'usage-events-watermarks',
    watermarkIntervalMs: 0,
    ...(duplicatesTopic !== null ? { duplicatesTopic } : {}),
  };
  const processor = new PipelineProcessor(settings);
  const context = taskContext(undefined, pipelineStores(settings));
  const run = async (records: SourceRecord[]) => {
    await processor.prepare(records);
    const result = processor.process(records, context);
    context.commit();
    return result;
  };
  return { run };
}

const rec = (offset: string, id: string): SourceRecord => sourceRecord({ offset, partition: 3, value: framedEvent(INPUT_ID, usageEvent({ id })) });

describe('the duplicates record (written by the pipeline, read by receipts)', () => {
  it('one record per transaction lists every dropped re-send with its input position and stamp', async () => {
    const { run } = pipeline();
    const first = await run([rec('1', 'a'), rec('2', 'b')]);
    expect(first.outputs.filter((o) => o.topic === DUPLICATES)).toEqual([]);
    const second = await run([rec('3', 'a'), rec('4', 'c'), rec('5', 'b'), rec('6', 'c')]);
    const written = second.outputs.filter((o) => o.topic === DUPLICATES);
    expect(written).toHaveLength(1);
    expect(written[0]!.key).toBe('3'); // the task's input partition
    const value = JSON.parse(String(written[0]!.value)) as { duplicates: { source: string; id: string; partition: number; offset: string; seenAt: number }[] };
    expect(value.duplicates.map((d) => [d.id, d.partition, d.offset])).toEqual([
      ['a', 3, '3'],
      ['b', 3, '5'],
      ['c', 3, '6'],
    ]);
    expect(value.duplicates.every((d) => d.source === 'api-gateway' && d.seenAt >= T0)).toBe(true);
    expect(second.report.duplicates).toBe(3);

    // Receipts read it back as one duplicate receipt per dropped re-send.
    const record: SourceRecord = { topic: DUPLICATES, partition: 3, offset: '0', key: Buffer.from('3'), value: Buffer.from(String(written[0]!.value)), headers: {}, timestamp: T0 };
    const entries = toEntries('duplicates', record, { decode: () => undefined, meters: new MeterCatalog([]), trailKey: { kind: 'traceparent' } });
    expect(entries.receipts.map((r) => r.key)).toEqual([eventKey('api-gateway', 'a'), eventKey('api-gateway', 'b'), eventKey('api-gateway', 'c')]);
  });

  it('without a duplicates topic nothing is written for them', async () => {
    const { run } = pipeline(null);
    await run([rec('1', 'a')]);
    const again = await run([rec('2', 'a')]);
    expect(again.outputs.filter((o) => o.topic === DUPLICATES)).toEqual([]);
    expect(again.report.duplicates).toBe(1);
  });
});
