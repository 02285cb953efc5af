import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { millisOf, parseServiceTime } from '../../src/clock/service-time.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import { stringCodec } from '../../src/model/store.js';
import { META_CLOCK_HWM, PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import { RETENTION_HEADER, RetentionSweeper } from '../../src/retention/retention-sweep.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { windowStart } from '../../src/usage/windows.js';
import { FakeCatalog, FakeClock, MemoryTopics, T0, framedEvent, taskContext, usageEvent } from '../support/unit/fixtures.js';

const INPUT_ID = 1;
const OUTPUT_ID = 10;
const LATENESS = 60_000;
const SPEND: Meter = { slug: 'spend', description: undefined, eventTypes: ['api.request'], aggregation: 'SUM', valueProperty: { kind: 'value' }, groupBy: {}, windows: ['MINUTE', 'HOUR'] };
const TOPICS = { ordered: 'ordered', dlq: 'dlq', late: 'late', aggregates: 'aggregates', input: 'usage-events' };

/** The real pipeline chain of one task with MINUTE=1s retention, over in-memory stores and topics (its batches commit; a crash drops what is staged and the processor). */
class Harness {
  readonly physical = new FakeClock(T0);
  readonly topics = new MemoryTopics();
  readonly context = taskContext(new InMemoryStore('meta', stringCodec), pipelineStores({ aggregatesTopic: TOPICS.aggregates, allowedLatenessMs: LATENESS, orderedTopic: TOPICS.ordered, lateTopic: TOPICS.late }));
  processor = this.make();
  private offset = 0;

  make(): PipelineProcessor {
    const clock = new HybridClock({ node: 'n0', physical: this.physical, maxSkewMs: 500 });
    const retentionSweeper = new RetentionSweeper({
      policy: { MINUTE: 1_000 },
      allowedLatenessMs: LATENESS,
      maxFutureMs: 300_000,
      maxSkewMs: 500,
      sweepBatch: 100,
      aggregatesTopic: TOPICS.aggregates,
      // The aggregates topic as the task wrote it, between the offsets of two timestamps.
      read: async (_partition, range, visit) => {
        await Promise.resolve();
        for (const r of this.of(TOPICS.aggregates)) if (r.timestamp >= range.fromMs && r.timestamp < range.toMs) visit(r.key!.toString(), r.value, r.timestamp);
      },
    });
    return new PipelineProcessor({
      clock,
      orderedTopic: TOPICS.ordered,
      dlqTopic: TOPICS.dlq,
      lateTopic: TOPICS.late,
      aggregatesTopic: TOPICS.aggregates,
      outputSchemaId: OUTPUT_ID,
      aggregateSchemaId: 11,
      catalog: new FakeCatalog(new Map([[INPUT_ID, usageEventType], [OUTPUT_ID, usageEventType]])) as unknown as SchemaCatalog,
      meters: new MeterCatalog([SPEND]),
      dedupeWindowMs: 86_400_000,
      allowedLatenessMs: LATENESS,
      maxFutureMs: 300_000,
      reorderWindowMs: 0,
      reorderMaxEvents: 10_000,
      latePolicy: 'flag',
      watermarksTopic: 'watermarks',
      watermarkIntervalMs: 0,
      retentionSweeper,
    });
  }

  async send(events: UsageEvent[]): Promise<OutputRecord[]> {
    const records: SourceRecord[] = events.map((e) => ({ topic: TOPICS.input, partition: 3, offset: String(this.offset++), key: Buffer.from(e.subject), value: framedEvent(INPUT_ID, e), headers: {}, timestamp: this.physical.ms }));
    this.topics.append(records.map((r) => ({ ...r, headers: {} })), this.physical.ms);
    await this.processor.prepare(records);
    return this.commit(this.processor.process(records, this.context).outputs);
  }

  /** Idle ticks at `ms` (the read a round starts finishes between them). */
  async idleAt(ms: number): Promise<OutputRecord[]> {
    this.physical.ms = ms;
    const out: OutputRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const result = this.processor.punctuate(this.context);
      out.push(...(result === undefined ? [] : this.commit(result.outputs)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  async crash(): Promise<void> {
    for (const store of [this.context.meta, ...this.context.stores.values()]) store.rollback();
    this.processor = this.make();
    await this.processor.onRestored(this.context, this.topics);
  }

  private commit(outputs: OutputRecord[]): OutputRecord[] {
    this.context.commit();
    this.topics.append(outputs, this.physical.ms);
    return outputs;
  }

  of(topic: string): SourceRecord[] {
    return this.topics.topics.get(topic) ?? [];
  }
}

describe('the pipeline with window retention', () => {
  it('writes aggregates with their batch\'s stamp as timestamp, tombstones expired windows at their expiry with the clock\'s high-water mark, once, across a crash', async () => {
    const h = new Harness();
    const minute = windowStart(T0, 'MINUTE');
    h.physical.ms = minute + 5_000;
    const sent = await h.send([1, 2, 3].map((i) => usageEvent({ id: `e-${i}`, subject: `s${i}`, type: 'api.request', time: minute - 1_000 * i, value: String(i), dimensions: {} })));
    const aggregates = sent.filter((o) => o.topic === TOPICS.aggregates);
    expect(aggregates).toHaveLength(6); // a MINUTE and an HOUR window per subject
    const stamp = millisOf(parseServiceTime(h.context.meta.get(META_CLOCK_HWM)!));
    for (const o of aggregates) expect(o.timestamp).toBe(stamp);

    // The previous minute's windows expire at its end + the lateness + 1 s.
    const expiry = minute + LATENESS + 1_000;
    expect(await h.idleAt(expiry - 1)).toEqual([]);
    const tombstones = (await h.idleAt(expiry)).filter((o) => o.topic === TOPICS.aggregates);
    expect(tombstones.map((o) => [(JSON.parse(o.key as string) as unknown[])[3], o.value, o.headers[RETENTION_HEADER]])).toEqual([
      ['MINUTE', null, 'expired'],
      ['MINUTE', null, 'expired'],
      ['MINUTE', null, 'expired'],
    ]);
    for (const o of tombstones) expect(o.timestamp).toBeGreaterThanOrEqual(expiry);
    // The partition's clock high-water mark went with them: a new owner's clock starts above the expiry.
    expect(millisOf(parseServiceTime(h.context.meta.get(META_CLOCK_HWM)!))).toBeGreaterThanOrEqual(expiry);

    // A crash, a restore, time going on: nothing is tombstoned twice; a late event for the window is late.
    await h.crash();
    expect((await h.idleAt(expiry + 10_000)).filter((o) => o.topic === TOPICS.aggregates)).toEqual([]);
    const late = await h.send([usageEvent({ id: 'e-late', subject: 's1', type: 'api.request', time: minute - 500, value: '9', dimensions: {} })]);
    expect(late.filter((o) => o.topic === TOPICS.aggregates)).toEqual([]);
    expect(late.filter((o) => o.topic === TOPICS.late)).toHaveLength(1);
    expect(await h.idleAt(expiry + 3_600_000 + LATENESS + 1_000)).toEqual([]); // HOUR windows: kept for ever
  });
});
