import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import { DeletionSet, newDeletion } from '../../src/deletion/deletions.js';
import { DeletionSweeper, aggregateSubject, sequenceSubject } from '../../src/deletion/sweep.js';
import { PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { unframe } from '../../src/schema/wire-format.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { FakeCatalog, FakeClock, MemoryTopics, T0, framedEvent, taskContext, usageEvent } from '../support/unit/fixtures.js';

const INPUT_ID = 1;
const OUTPUT_ID = 10;
const BASE = { description: undefined, eventTypes: ['api.request'], groupBy: { region: 'region' }, windows: ['HOUR' as const, 'DAY' as const] };
const SPEND: Meter = { ...BASE, slug: 'spend', aggregation: 'SUM', valueProperty: { kind: 'value' } };
const USERS: Meter = { ...BASE, slug: 'users', aggregation: 'UNIQUE_COUNT', valueProperty: { kind: 'dimension', name: 'model' } };
const TOPICS = { ordered: 'ordered', dlq: 'dlq', late: 'late', aggregates: 'aggregates', deletions: 'deletions', input: 'usage-events' };

/** The deletions a role follows: a set and its version. */
class View {
  readonly set = new DeletionSet('/');
  version = 0;
  delete(subject: string, children: boolean, at: number): string {
    const { key, value } = newDeletion(subject, children, '/', at, 'admin');
    this.set.apply(key, value);
    this.version += 1;
    return value.id;
  }
}

/**
 * One task of the real pipeline over in-memory stores and topics: batches commit (staged
 * writes applied, outputs appended); a crash drops what is staged and the processor, and a
 * new one restores from the committed stores and the topics, as the engine does.
 */
class Harness {
  readonly physical = new FakeClock(T0);
  readonly topics = new MemoryTopics();
  readonly context = taskContext(new InMemoryStore('meta', stringCodec), pipelineStores({ aggregatesTopic: TOPICS.aggregates, allowedLatenessMs: 3_600_000, orderedTopic: TOPICS.ordered, lateTopic: TOPICS.late }));
  processor!: PipelineProcessor;
  private nextOffset = 0;

  constructor(
    readonly view: View,
    readonly sweepBatch: number,
    readonly policy: 'dead-letter' | 'new-epoch' = 'dead-letter',
  ) {
    this.processor = this.make();
  }

  private make(): PipelineProcessor {
    const catalog = new FakeCatalog(new Map([[INPUT_ID, usageEventType], [OUTPUT_ID, usageEventType]]));
    const clock = new HybridClock({ node: 'n0', physical: this.physical, maxSkewMs: 500 });
    const sweeper = new DeletionSweeper({
      deletions: this.view,
      separator: '/',
      policy: this.policy,
      sweepBatch: this.sweepBatch,
      aggregatesTopic: TOPICS.aggregates,
      lateTopic: TOPICS.late,
      deletionsTopic: TOPICS.deletions,
      node: 'n0',
      // The aggregates topic as the task wrote it (latest record per key).
      scan: (_partition, keep) => Promise.resolve(new Map([...this.latest(TOPICS.aggregates)].filter(([k]) => keep(k)).map(([k, v]) => [k, v !== null]))),
      now: () => this.physical.ms,
    });
    return new PipelineProcessor({
      clock,
      orderedTopic: TOPICS.ordered,
      dlqTopic: TOPICS.dlq,
      lateTopic: TOPICS.late,
      aggregatesTopic: TOPICS.aggregates,
      outputSchemaId: OUTPUT_ID,
      aggregateSchemaId: 11,
      catalog: catalog as unknown as SchemaCatalog,
      meters: new MeterCatalog([SPEND, USERS]),
      dedupeWindowMs: 86_400_000,
      allowedLatenessMs: 3_600_000,
      maxFutureMs: 300_000,
      reorderWindowMs: 60_000,
      reorderMaxEvents: 10_000,
      latePolicy: 'flag',
      watermarksTopic: 'watermarks',
      watermarkIntervalMs: 0,
      sweeper,
    });
  }

  async send(events: UsageEvent[]): Promise<OutputRecord[]> {
    const records: SourceRecord[] = events.map((e) => ({ topic: TOPICS.input, partition: 3, offset: String(this.nextOffset++), key: Buffer.from(e.subject), value: framedEvent(INPUT_ID, e), headers: {}, timestamp: this.physical.ms }));
    this.topics.append(records.map((r) => ({ ...r, headers: {} })), this.physical.ms);
    await this.processor.prepare(records);
    return this.commit(this.processor.process(records, this.context).outputs);
  }

  tick(): OutputRecord[] {
    const result = this.processor.punctuate(this.context);
    return result === undefined ? [] : this.commit(result.outputs);
  }

  /** Drops staged writes and the processor; a new one restores from committed state. */
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

  latest(topic: string): Map<string, Buffer | null> {
    const out = new Map<string, Buffer | null>();
    for (const r of this.topics.topics.get(topic) ?? []) out.set(r.key!.toString(), r.value);
    return out;
  }

  of(topic: string): SourceRecord[] {
    return this.topics.topics.get(topic) ?? [];
  }

  /** Every state entry of the task that names `subject`. */
  stateOf(match: (subject: string) => boolean): string[] {
    const left: string[] = [];
    for (const [name, store] of this.context.stores) {
      for (const [key] of store.entries()) {
        const subject = name === 'sequences' ? sequenceSubject(key) : name === 'aggregates' || name === 'unique' ? aggregateSubject(key) : undefined;
        if (subject !== undefined && match(subject)) left.push(`${name}:${key}`);
      }
    }
    return left;
  }
}

const deleted = (s: string): boolean => s === 'acme' || s.startsWith('acme/');
let ids = 0;
const event = (subject: string, fields: Partial<UsageEvent> = {}): UsageEvent => usageEvent({ id: `e${++ids}`, subject, ...fields });

/** Ticks until the task writes its swept marker (letting the background scan finish between ticks). */
async function sweepToEnd(h: Harness, crashAt: ReadonlySet<number> = new Set()): Promise<number> {
  for (let step = 0; step < 500; step++) {
    if (crashAt.has(step)) await h.crash();
    const out = h.tick();
    if (out.some((o) => o.topic === TOPICS.deletions)) return step;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('the sweep did not finish');
}

async function workload(h: Harness): Promise<void> {
  // Older windows (final once the clock moves on: no longer in memory, only in the topic).
  await h.send([event('acme', { time: T0 - 3_000_000 }), event('acme/t1', { time: T0 - 3_000_000, dimensions: { region: 'us', model: 'm' } }), event('beta', { time: T0 - 3_000_000 })]);
  h.physical.ms = T0 + 3_000_000; // the hour of the first batch is final now: it leaves memory
  // Current windows, and events held in the reorder buffer (window 60 s; the clock stays near T0).
  await h.send([event('acme'), event('acme/t1', { dimensions: { region: 'eu', model: 'x' } }), event('acme/t1', { dimensions: { region: 'eu', model: 'y' } }), event('beta'), event('acmecorp')]);
}

describe('sequence and aggregate keys name their subject', () => {
  it('reads the subject back from any key the stores write', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (subject, producer) => {
        expect(sequenceSubject(`s|${subject}`)).toBe(subject);
        expect(sequenceSubject(`p|${subject.length}:${subject}|${producer}`)).toBe(subject);
        const key = JSON.stringify(['m', subject, { a: producer }, 'DAY', '2024-01-01T00:00:00.000Z']);
        expect(aggregateSubject(key)).toBe(subject);
        expect(aggregateSubject(`${key}\u0000${producer}`)).toBe(subject);
      }),
    );
    expect(sequenceSubject('x|y')).toBeUndefined();
    expect(aggregateSubject('not json')).toBeUndefined();
  });
});

describe('DeletionSweeper in the pipeline', () => {
  it('tombstones every aggregate of the subject and its children (final windows too), sends held events late, keeps the others, and dead-letters later events', async () => {
    const view = new View();
    const h = new Harness(view, 2);
    await workload(h);
    const before = h.latest(TOPICS.aggregates);
    const acmeKeys = [...before.keys()].filter((k) => deleted(aggregateSubject(k)!));
    expect(acmeKeys.length).toBeGreaterThan(4);
    expect(h.stateOf(deleted).length).toBeGreaterThan(0);
    const held = h.processor['order'].buffered;
    expect(held).toBe(5); // all of the second batch, within the reorder window
    // Final windows (the first batch's hour) left memory: some acme keys are only in the topic.
    const inMemory = new Set([...h.context.stores.get('aggregates')!.entries()].map(([k]) => k));
    expect(acmeKeys.some((k) => !inMemory.has(k))).toBe(true);

    const id = view.delete('acme', true, h.physical.ms);
    const steps = await sweepToEnd(h);
    expect(steps).toBeGreaterThan(2); // bounded: 2 entries per transaction

    const after = h.latest(TOPICS.aggregates);
    for (const key of acmeKeys) expect(after.get(key)).toBeNull();
    for (const [key, value] of before) if (!deleted(aggregateSubject(key)!)) expect(after.get(key)).toEqual(value);
    expect(h.stateOf(deleted)).toEqual([]);
    // Held events of acme and acme/t1 went to the late topic with the reason; the others stay held.
    const late = h.of(TOPICS.late).filter((r) => r.headers['ordo-late-reason'] === 'subject-deleted');
    expect(late.map((r) => r.key!.toString()).sort()).toEqual(['acme', 'acme/t1', 'acme/t1']);
    expect(h.processor['order'].buffered).toBe(held - 3);
    const marker = h.latest(TOPICS.deletions).get(`*swept/${id}/${TOPICS.input}/3`);
    expect(JSON.parse(marker!.toString())).toMatchObject({ id, late: 3 });

    // Later events: dead-lettered (default policy); the others counted.
    h.physical.ms += 1_000;
    const out = await h.send([event('acme/t2'), event('beta')]);
    const dlq = out.filter((o) => o.topic === TOPICS.dlq);
    expect(dlq.map((o) => [String(o.key), o.headers['ordo-dlq-reason']])).toEqual([['acme/t2', 'subject-deleted']]);
    expect(out.filter((o) => o.topic === TOPICS.aggregates).every((o) => aggregateSubject(String(o.key)) === 'beta')).toBe(true);
    expect(h.tick().filter((o) => o.topic === TOPICS.aggregates)).toEqual([]);
  });

  it('ends in the same state whatever step it crashes at (resumable)', async () => {
    const finalState = async (crashAt: Set<number>) => {
      const view = new View();
      const h = new Harness(view, 1);
      await workload(h);
      view.delete('acme', true, h.physical.ms);
      await sweepToEnd(h, crashAt);
      const live = [...h.latest(TOPICS.aggregates)].filter(([, v]) => v !== null).map(([k, v]) => [k, unframe(v).body.toString('base64')]);
      const late = h.of(TOPICS.late).map((r) => `${String(r.key)}@${String(r.headers['ordo-source-offset'])}`).sort();
      return { live: live.sort(), late, state: h.stateOf(deleted), held: h.processor['order'].buffered };
    };
    const reference = await finalState(new Set());
    expect(reference.state).toEqual([]);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 0, max: 25 }), { maxLength: 4 }), async (crashes) => {
        expect(await finalState(new Set(crashes))).toEqual(reference);
      }),
      { numRuns: 25 },
    );
  });

  it('new-epoch: counts later events once this task swept the subject, dead-letters them before', async () => {
    const view = new View();
    const h = new Harness(view, 1_000, 'new-epoch');
    await h.send([event('acme')]);
    view.delete('acme', false, h.physical.ms);
    h.physical.ms += 1_000;
    // Not swept yet on this task (the batch's own step runs after admission).
    const early = await h.send([event('acme')]);
    expect(early.filter((o) => o.topic === TOPICS.dlq).map((o) => String(o.headers['ordo-dlq-error']))).toEqual([expect.stringMatching(/replay this event once/)]);
    await sweepToEnd(h);
    h.physical.ms += 1_000;
    const later = await h.send([event('acme')]);
    expect(later.filter((o) => o.topic === TOPICS.dlq)).toEqual([]);
    expect(later.filter((o) => o.topic === TOPICS.aggregates).length).toBeGreaterThan(0);
  });

  it('dead-letters an event stamped before the deletion under either policy', async () => {
    const view = new View();
    const h = new Harness(view, 1_000, 'new-epoch');
    view.delete('acme', false, T0 + 10_000);
    const out = await h.send([event('acme')]);
    expect(out.filter((o) => o.topic === TOPICS.dlq).map((o) => String(o.headers['ordo-dlq-error']))).toEqual([expect.stringMatching(/reached Ordo before/)]);
  });
});

describe('DeletionSweeper scan failures', () => {
  it('a failed read of the aggregates topic is reported and read again; the sweep then finishes', async () => {
    const view = new View();
    const set = view.set;
    let failures = 1;
    const errors: unknown[] = [];
    const sweeper = new DeletionSweeper({
      deletions: view,
      separator: '/',
      policy: 'dead-letter',
      sweepBatch: 10,
      aggregatesTopic: 'aggregates',
      lateTopic: 'late',
      deletionsTopic: 'deletions',
      node: 'n0',
      scan: () => (failures-- > 0 ? Promise.reject(new Error('broker away')) : Promise.resolve(new Map([[JSON.stringify(['m', 'acme', {}, 'DAY', 'x']), true]]))),
      onScanError: (error) => errors.push(error),
      now: () => 1,
    });
    view.delete('acme', false, 0);
    expect(set.size).toBe(1);
    const stores = { meta: new InMemoryStore<string>('meta', stringCodec), aggregates: new InMemoryStore('a', { encode: () => Buffer.alloc(0), decode: () => ({}) as never }), unique: new InMemoryStore('u', { encode: () => Buffer.alloc(0), decode: () => 0 }), sequences: new InMemoryStore('s', stringCodec) };
    const held = { evict: () => [] };
    const outputs: OutputRecord[] = [];
    for (let i = 0; i < 10 && !outputs.some((o) => o.topic === 'deletions'); i++) {
      outputs.push(...(sweeper.step({ topic: 'in', partition: 0 }, stores, held)?.outputs ?? []));
      for (const store of Object.values(stores)) store.commit();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(errors).toHaveLength(1);
    expect(outputs.map((o) => [o.topic, o.value === null ? null : 'marker'])).toEqual([
      ['aggregates', null],
      ['deletions', 'marker'],
    ]);
  });
});
