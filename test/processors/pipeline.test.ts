import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime, makeServiceTime, parseServiceTime } from '../../src/clock/service-time.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import { tailKey } from '../../src/engine/task-processor.js';
import { OrdoError } from '../../src/errors.js';
import { aggregateCodec } from '../../src/processors/aggregate.js';
import { META_ORDER_WATERMARK } from '../../src/processors/order.js';
import { META_CLOCK_HWM, PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import { type AggregatePart, type UsageAggregate, combine } from '../../src/usage/aggregation.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventType } from '../../src/schema/usage-event.js';
import { frame, unframe } from '../../src/schema/wire-format.js';
import { FakeCatalog, FakeClock, MemoryTopics, T0, olderUsageEventType, anyUsageEvent, catchError, framedEvent, sourceRecord, taskContext, usageEvent } from '../support/unit/fixtures.js';

const INPUT_ID = 1;
const OLDER_ID = 2;
const MISSING_ID = 3;
const OUTPUT_ID = 10;
const AGGREGATE_ID = 11;

const olderType = olderUsageEventType;

function pipeline(physical = new FakeClock(T0), nodeId = 'ordo-0', options: { meters?: Meter[]; reorderWindowMs?: number } = {}) {
  const catalog = new FakeCatalog(
    new Map([
      [INPUT_ID, usageEventType],
      [OLDER_ID, olderType],
      [OUTPUT_ID, usageEventType],
    ]),
  );
  const processor = new PipelineProcessor({
    clock: new HybridClock({ node: nodeId, physical, maxSkewMs: 500 }),
    orderedTopic: 'usage-events-ordered',
    dlqTopic: 'usage-events-dlq',
    lateTopic: 'usage-events-late',
    aggregatesTopic: 'usage-aggregates',
    outputSchemaId: OUTPUT_ID,
    aggregateSchemaId: AGGREGATE_ID,
    catalog: catalog as unknown as SchemaCatalog,
    meters: new MeterCatalog(options.meters ?? []),
    dedupeWindowMs: 86_400_000,
    allowedLatenessMs: 35 * 86_400_000,
    maxFutureMs: 300_000,
    reorderWindowMs: options.reorderWindowMs ?? 0,
    reorderMaxEvents: 10_000,
    latePolicy: 'flag',
    watermarksTopic: 'usage-events-watermarks',
    watermarkIntervalMs: 1_000,
  });
  return { processor, physical, catalog };
}

let eventSeq = 0;
/** A usage event with an id of its own (the pipeline drops repeats of an id). */
function freshEvent(): UsageEvent {
  return usageEvent({ id: `evt-${++eventSeq}` });
}

/** The pipeline's own stores, as the engine would hand them over. */
function pipelineContext(meta?: InMemoryStore<string>) {
  return taskContext(meta, pipelineStores({ aggregatesTopic: 'usage-aggregates', allowedLatenessMs: 35 * 86_400_000, orderedTopic: 'usage-events-ordered', lateTopic: 'usage-events-late' }));
}

async function run(processor: PipelineProcessor, records: SourceRecord[], context = pipelineContext()) {
  await processor.prepare(records);
  return { ...processor.process(records, context), context };
}

function eventOf(out: OutputRecord): UsageEvent {
  const { schemaId, body } = unframe(out.value as Buffer);
  expect(schemaId).toBe(OUTPUT_ID);
  return usageEventType.fromBuffer(body) as UsageEvent;
}

function stampOf(out: OutputRecord): bigint {
  return parseServiceTime(String(out.headers['service-time']));
}

describe('PipelineProcessor', () => {
  it('declares its dedupe, aggregate and unique-member stores', () => {
    expect(pipeline().processor.stores.map((s) => s.name)).toEqual(['dedupe', 'aggregates', 'unique', 'reorder', 'sequences', 'contributions']);
  });

  it('sends a mixed batch to the ordered topic and the DLQ', async () => {
    const { processor } = pipeline();
    const upstream = makeServiceTime(T0 - 1_000, 4);
    const records = [
      sourceRecord({ offset: '100', value: framedEvent(INPUT_ID, usageEvent({ id: 'plain', subject: 'c1' })), headers: { traceparent: 'tp-1' } }),
      sourceRecord({ offset: '101', value: Buffer.from('not avro') }),
      sourceRecord({ offset: '102', value: framedEvent(INPUT_ID, usageEvent({ id: 'ctx', subject: 'c2' })), headers: { 'service-time': formatServiceTime(upstream), 'service-node': 'billing' } }),
      sourceRecord({ offset: '103', value: framedEvent(MISSING_ID, usageEvent()) }),
      sourceRecord({ offset: '104', value: framedEvent(INPUT_ID, usageEvent({ id: 'skewed' })), headers: { 'service-time': formatServiceTime(makeServiceTime(T0 + 60_000, 0)) } }),
      sourceRecord({ offset: '105', value: framedEvent(INPUT_ID, usageEvent({ value: 'NaN' })) }),
      sourceRecord({ offset: '106', value: framedEvent(OLDER_ID, { id: 'old', source: 's', type: 't', subject: 'c3', time: T0 }, olderType) }),
      sourceRecord({ offset: '107', value: framedEvent(INPUT_ID, freshEvent()), headers: { 'service-time': 'garbage' } }),
    ];
    const { outputs, report, context } = await run(processor, records);

    const ordered = outputs.filter((o) => o.topic === 'usage-events-ordered');
    const dlq = outputs.filter((o) => o.topic === 'usage-events-dlq');
    expect(ordered.length + dlq.length).toBe(outputs.length);

    // Emitted in order-key order: c2's origin time (T0 - 1 s) comes before the stamps at T0.
    expect(ordered.map((o) => [o.key, eventOf(o).id])).toEqual([
      ['c2', 'ctx'],
      ['c1', 'plain'],
      ['c3', 'old'],
    ]);
    expect(eventOf(ordered[2]!).value).toBe('1');
    const stamps = ordered.map(stampOf);
    // Stamped again as they leave the reorder buffer: increasing in output order, after
    // the three arrival stamps T0+0..2 (and above the origin time of c2).
    expect(stamps).toEqual([makeServiceTime(T0, 3), makeServiceTime(T0, 4), makeServiceTime(T0, 5)]);
    // Without a context, the order key is the arrival stamp (T0, 0): carried as origin-service-*.
    expect(ordered[1]!.headers).toEqual({
      traceparent: 'tp-1',
      'service-time': formatServiceTime(stamps[1]!),
      'service-node': 'ordo-0',
      'origin-service-time': formatServiceTime(makeServiceTime(T0, 0)),
      'origin-service-node': 'ordo-0',
      'ordo-origin': 'arrival',
      'ordo-seq': '1',
      'ordo-watermark': String(T0),
    });
    expect(ordered[0]!.headers).toEqual({
      'service-time': formatServiceTime(stamps[0]!),
      'service-node': 'ordo-0',
      'origin-service-time': formatServiceTime(upstream),
      'origin-service-node': 'billing',
      'ordo-origin': 'context',
      'ordo-seq': '1',
      'ordo-watermark': String(T0), // the frontier when they left: watermark T0 - window 0
    });

    expect(dlq.map((o) => [o.headers['ordo-source-offset'], o.headers['ordo-dlq-reason']])).toEqual([
      ['101', 'undecodable'],
      ['103', 'unknown-schema'],
      ['105', 'invalid-value'],
      ['107', 'bad-service-time'],
      ['104', 'clock-skew'],
    ]);
    for (const o of dlq) {
      const source = records.find((r) => r.offset === o.headers['ordo-source-offset'])!;
      expect(o.key).toBe(source.key);
      expect(o.value).toBe(source.value);
      expect(o.headers['ordo-dlq-node']).toBe('ordo-0');
      expect(o.headers['ordo-source-topic']).toBe('usage-events');
      expect(o.headers['ordo-source-partition']).toBe('3');
    }

    expect(report.deadLetters.map((d) => d.reason).sort()).toEqual(['bad-service-time', 'clock-skew', 'invalid-value', 'undecodable', 'unknown-schema']);
    expect(report.clockSkewRejected).toBe(1);
    expect(report.clockSkewsMs).toEqual([0, 60_000]);
    // The high-water mark is staged in meta (committed with the batch by the engine).
    expect(context.meta.get(META_CLOCK_HWM)).toBe(formatServiceTime(makeServiceTime(T0, 5)));
    expect(context.meta.changes()).toEqual([
      { key: META_ORDER_WATERMARK, value: Buffer.from(String(T0)) },
      { key: META_CLOCK_HWM, value: Buffer.from(formatServiceTime(makeServiceTime(T0, 5))) },
    ]);
  });

  it('needs prepare: a batch whose schemas were not prefetched throws instead of dead-lettering', () => {
    const { processor } = pipeline();
    const error = catchError(() => processor.process([sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) })], pipelineContext()));
    expect(error).toBeInstanceOf(OrdoError);
  });

  it('does not touch the clock high-water mark for a batch of only dead letters', async () => {
    const { processor } = pipeline();
    const meta = new InMemoryStore('meta', stringCodec);
    meta.restore(META_CLOCK_HWM, Buffer.from(formatServiceTime(5n)));
    const { outputs, context } = await run(processor, [sourceRecord({ value: null })], pipelineContext(meta));
    expect(outputs.map((o) => o.topic)).toEqual(['usage-events-dlq']);
    expect(context.meta.changes()).toEqual([]);
    expect(context.meta.get(META_CLOCK_HWM)).toBe(formatServiceTime(5n));
  });

  it('keeps stamps increasing across batches while the wall clock steps backwards', async () => {
    const { processor, physical } = pipeline();
    const context = pipelineContext();
    const batch = () => [sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) }), sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) })];
    const first = (await run(processor, batch(), context)).outputs.map(stampOf);
    physical.ms = T0 - 10_000;
    const second = (await run(processor, batch(), context)).outputs.map(stampOf);
    const all = [...first, ...second];
    for (let i = 1; i < all.length; i++) expect(all[i]! > all[i - 1]!).toBe(true);
    expect(context.meta.get(META_CLOCK_HWM)).toBe(formatServiceTime(all[all.length - 1]!));
  });

  it('on restore adopts a clock-hwm far ahead of its wall clock: every later stamp is greater (failover)', async () => {
    const { processor } = pipeline(new FakeClock(T0));
    const hwm = makeServiceTime(T0 + 3_600_000, 0xfffe); // a previous owner's clock ran an hour ahead
    const meta = new InMemoryStore('meta', stringCodec);
    meta.restore(META_CLOCK_HWM, Buffer.from(formatServiceTime(hwm)));
    const context = pipelineContext(meta);
    await processor.onRestored(context, new MemoryTopics());
    expect(processor.clock.last).toBe(hwm);
    const { outputs } = await run(
      processor,
      [
        sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) }),
        sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()), headers: { 'service-time': formatServiceTime(makeServiceTime(T0, 0)) } }),
        sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) }),
      ],
      context,
    );
    // Arrival stamps hwm+1..3, emission stamps hwm+4..6; all above the previous owner's.
    expect(outputs.map(stampOf)).toEqual([hwm + 4n, hwm + 5n, hwm + 6n]);
  });

  it('on restore without a clock-hwm starts from physical time', async () => {
    const { processor } = pipeline();
    const context = pipelineContext();
    await processor.onRestored(context, new MemoryTopics());
    expect(processor.clock.last).toBe(0n);
    const { outputs } = await run(processor, [sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) })], context);
    expect(outputs.map(stampOf)).toEqual([makeServiceTime(T0, 1)]); // seen at (T0, 0), emitted at (T0, 1)
  });

  it('hands over across owners through the meta changelog: the new owner never goes backwards (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(anyUsageEvent, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: -86_400_000, max: 86_400_000 }),
        fc.integer({ min: 1, max: 8 }),
        async (events, newOwnerOffsetMs, secondBatch) => {
          // Owner A processes a batch and its meta changes are "committed" to a changelog.
          const a = pipeline(new FakeClock(T0), 'node-a');
          const aMeta = new InMemoryStore('meta', stringCodec);
          const aOut = (await run(a.processor, events.map((e) => sourceRecord({ value: framedEvent(INPUT_ID, e) })), pipelineContext(aMeta))).outputs;
          const changelog = aMeta.changes();
          aMeta.commit();
          const aMax = aOut.map(stampOf).reduce((x, y) => (y > x ? y : x));

          // Owner B restores that changelog; its wall clock may be far behind or ahead.
          const b = pipeline(new FakeClock(T0 + newOwnerOffsetMs), 'node-b');
          const bMeta = new InMemoryStore('meta', stringCodec);
          for (const entry of changelog) bMeta.restore(entry.key, entry.value);
          const bContext = pipelineContext(bMeta);
          await b.processor.onRestored(bContext, new MemoryTopics());
          const bOut = (await run(b.processor, Array.from({ length: secondBatch }, () => sourceRecord({ value: framedEvent(INPUT_ID, freshEvent()) })), bContext)).outputs;
          for (const out of bOut) expect(stampOf(out) > aMax).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });
});

const METERED = { description: undefined, eventTypes: ['api.request'], valueProperty: { kind: 'value' as const }, groupBy: {}, windows: ['DAY' as const] };
const LAST: Meter = { ...METERED, slug: 'last', aggregation: 'LATEST' };
const SPEND: Meter = { ...METERED, slug: 'spend', aggregation: 'SUM' };

function aggregatesIn(outputs: readonly OutputRecord[]): UsageAggregate[] {
  return outputs.filter((o) => o.topic === 'usage-aggregates').map((o) => aggregateCodec.decode(unframe(o.value as Buffer).body));
}

/** The order key as a consumer of the ordered topic reads it (docs/hybrid-time.md#order-key). */
function consumerOrderKey(out: OutputRecord): { time: bigint; node: string } {
  const origin = out.headers['origin-service-time'];
  if (origin !== undefined) return { time: parseServiceTime(String(origin)), node: String(out.headers['origin-service-node'] ?? '') };
  return { time: stampOf(out), node: String(out.headers['service-node']) };
}

describe('PipelineProcessor with meters', () => {
  it('dead-letters an event whose own value is not a plain decimal as invalid-value, and counts the corrected re-send (regression)', async () => {
    const { processor } = pipeline(new FakeClock(T0), 'ordo-0', { meters: [SPEND] });
    const context = pipelineContext();
    const bad = await run(processor, [sourceRecord({ value: framedEvent(INPUT_ID, usageEvent({ id: 'resent', value: '1e3' })) })], context);
    context.commit();
    expect(bad.outputs.map((o) => [o.topic, o.headers['ordo-dlq-reason']])).toEqual([['usage-events-dlq', 'invalid-value']]);
    expect(String(bad.outputs[0]!.headers['ordo-dlq-error'])).toContain('value "1e3" is not a plain decimal');
    expect(bad.report.deadLetters.map((d) => d.reason)).toEqual(['invalid-value']);

    // The dead letter claimed nothing: the same (source, id) with a good value is counted.
    const good = await run(processor, [sourceRecord({ value: framedEvent(INPUT_ID, usageEvent({ id: 'resent', value: '2.50' })) })], context);
    expect(good.report.duplicates).toBe(0);
    expect(good.outputs.filter((o) => o.topic === 'usage-events-ordered').map((o) => eventOf(o).value)).toEqual(['2.50']);
    expect(aggregatesIn(good.outputs).map((a) => [a.meter, a.value])).toEqual([['spend', '2.5']]);
  });

  it('LATEST across subjects is the last event by order key on the ordered topic, with or without time contexts (property)', async () => {
    const step = fc.record({
      advanceMs: fc.integer({ min: 0, max: 700 }),
      tick: fc.boolean(),
      events: fc.array(
        fc.record({
          subject: fc.constantFrom('c1', 'c2', 'c3'),
          // ms before the wall clock of the upstream time context (negative: ahead, within the skew bound); null: none
          contextAgoMs: fc.option(fc.integer({ min: -500, max: 3_000 }), { nil: undefined }),
          contextNode: fc.constantFrom('svc-a', 'svc-b'),
          value: fc.integer({ min: -1_000, max: 1_000 }).map(String),
        }),
        { maxLength: 6 },
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const physical = new FakeClock(T0);
        const { processor } = pipeline(physical, 'ordo-0', { meters: [LAST], reorderWindowMs: 1_000 });
        const context = pipelineContext();
        const outputs: OutputRecord[] = [];
        let n = 0;
        for (const s of steps) {
          physical.ms += s.advanceMs;
          const records = s.events.map((e) => {
            const headers: Record<string, string> = {};
            if (e.contextAgoMs !== undefined) {
              // Each context time is distinct (its counter), so no two events share an order key.
              headers['service-time'] = formatServiceTime(makeServiceTime(physical.ms - e.contextAgoMs, n));
              headers['service-node'] = e.contextNode;
            }
            const event = usageEvent({ id: `p-${n++}`, subject: e.subject, value: e.value, time: T0 - 60_000 });
            return sourceRecord({ key: Buffer.from(e.subject), value: framedEvent(INPUT_ID, event), headers });
          });
          if (records.length > 0) outputs.push(...(await run(processor, records, context)).outputs);
          context.commit();
          if (s.tick) outputs.push(...(processor.punctuate(context)?.outputs ?? []));
          context.commit();
        }
        physical.ms += 60_000; // everything held is due
        outputs.push(...(processor.punctuate(context)?.outputs ?? []));

        const ordered = outputs.filter((o) => o.topic === 'usage-events-ordered');
        expect(ordered).toHaveLength(n);
        const latest = new Map<string, UsageAggregate>(); // per subject: the last version
        for (const a of aggregatesIn(outputs)) latest.set(a.subject, a);
        if (latest.size === 0) return;
        const across = [...latest.values()].reduce<AggregatePart>((a, b) => combine(a, b), [...latest.values()][0]!);
        const after = (a: OutputRecord, b: OutputRecord): boolean => {
          const [x, y] = [consumerOrderKey(a), consumerOrderKey(b)];
          return x.time !== y.time ? x.time > y.time : x.node > y.node;
        };
        const last = ordered.reduce((a, b) => (after(b, a) ? b : a));
        expect(across.value).toBe(eventOf(last).value);
        expect([across.lastServiceTime, across.lastServiceNode]).toEqual([formatServiceTime(consumerOrderKey(last).time), consumerOrderKey(last).node]);
        for (const [subject, aggregate] of latest) {
          const own = ordered.filter((o) => o.key === subject).reduce((a, b) => (after(b, a) ? b : a));
          expect(aggregate.value).toBe(eventOf(own).value);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('pipelineStores', () => {
  const DAY = 86_400_000;
  const [dedupe, aggregates, unique] = pipelineStores({ aggregatesTopic: 'usage-aggregates', allowedLatenessMs: 2 * DAY, orderedTopic: 'usage-events-ordered', lateTopic: 'usage-events-late' });

  it('restores the aggregates store from the aggregates topic itself, and only windows that can still change', () => {
    expect(dedupe?.changelog).toBeUndefined();
    expect(unique?.changelog).toBeUndefined();
    const changelog = aggregates?.changelog;
    expect(changelog?.topic).toBe('usage-aggregates');
    const body = Buffer.from([1, 2, 3]);
    expect(changelog?.payload(frame(77, body))).toEqual(body);
    const now = T0 + 10 * DAY;
    expect(changelog?.keep('k', { windowEnd: now - 2 * DAY + 1 }, now)).toBe(true);
    expect(changelog?.keep('k', { windowEnd: now - 2 * DAY }, now)).toBe(false);
  });
});

describe('PipelineProcessor restore: each fact written once', () => {
  const ORDERED = 'usage-events-ordered';
  const LATE = 'usage-events-late';

  /** A fresh owner's context: the committed stores with a changelog, copied through their codecs; the dedupe store empty (rebuilt). */
  function restoredContext(processor: PipelineProcessor, from: ReturnType<typeof pipelineContext>, sequences: 'snapshot' | 'none', tail: number) {
    const meta = new InMemoryStore('meta', stringCodec);
    // The tail offset and the sequences snapshot are written in one transaction: both or neither.
    for (const [k, v] of from.meta.entries()) if (k !== tailKey('sequences')) meta.restore(k, Buffer.from(v));
    const context = pipelineContext(meta);
    for (const spec of processor.stores) {
      if (spec.rebuilt || (spec.name === 'sequences' && sequences === 'none')) continue;
      for (const [k, v] of from.stores.get(spec.name)!.entries()) context.stores.get(spec.name)!.restore(k, spec.codec.encode(v));
    }
    if (sequences === 'snapshot') meta.restore(tailKey('sequences'), Buffer.from(JSON.stringify({ [ORDERED]: String(tail) })));
    return context;
  }

  it("an idle partition's tick that only publishes its frontier records no clock-hwm (it stamped nothing)", async () => {
    const physical = new FakeClock(T0);
    const { processor } = pipeline(physical);
    const context = pipelineContext();
    await processor.onRestored(context, new MemoryTopics());
    physical.ms += 5_000;
    const tick = processor.punctuate(context);
    expect(tick?.outputs.map((o) => o.topic)).toEqual(['usage-events-watermarks']);
    expect(context.meta.get(META_CLOCK_HWM)).toBeUndefined();
  });

  it('reads nothing back for a partition that never stamped an event (a clock-hwm of 0, as idle ticks committed before this was fixed)', async () => {
    const meta = new InMemoryStore('meta', stringCodec);
    meta.restore(META_CLOCK_HWM, Buffer.from(formatServiceTime(0n)));
    const replay = { read: () => Promise.reject(new Error('nothing to replay')) };
    await pipeline().processor.onRestored(pipelineContext(meta), replay);
  });

  it('property: across crashes every distinct event leaves once, repeats stay dropped, ordo-seq stays gapless', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ id: fc.integer({ min: 0, max: 20 }), subject: fc.constantFrom('a', 'b', 'c'), back: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }), advance: fc.integer({ min: 0, max: 700 }) }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.constantFrom('none', 'snapshot', 'no-snapshot'), { maxLength: 10 }),
        fc.constantFrom(0, 1_000),
        async (events, sizes, crashes, window) => {
          const physical = new FakeClock(T0);
          const topics = new MemoryTopics();
          const input = events.map((e, i) =>
            sourceRecord({
              offset: String(i),
              key: Buffer.from(e.subject),
              value: framedEvent(INPUT_ID, usageEvent({ id: `e${e.id}`, subject: e.subject })),
              headers: e.back === undefined ? {} : { 'service-time': formatServiceTime(makeServiceTime(T0 - e.back, 0)), 'service-node': 'up' },
            }),
          );
          topics.topics.set('usage-events', input);
          let p = pipeline(physical, 'ordo-0', { reorderWindowMs: window }).processor;
          let context = pipelineContext();
          const commit = (outputs: readonly OutputRecord[]): void => {
            context.commit();
            topics.append(outputs, physical.ms);
          };
          let lastBatchOrdered = 0;
          for (let i = 0, b = 0; i < input.length; b++) {
            const size = sizes[b % sizes.length]!;
            physical.ms += events[i]!.advance;
            const { outputs } = await run(p, input.slice(i, i + size), context);
            commit(outputs);
            lastBatchOrdered = outputs.filter((o) => o.topic === ORDERED).length;
            i += size;
            const crash = crashes[b % Math.max(1, crashes.length)] ?? 'none';
            if (crash === 'none') continue;
            // A snapshot taken a batch ago: the replay overlaps it by the last batch.
            const orderedEnd = topics.topics.get(ORDERED)?.length ?? 0;
            const fresh = pipeline(physical, 'ordo-0', { reorderWindowMs: window }).processor;
            context = restoredContext(fresh, context, crash === 'snapshot' ? 'snapshot' : 'none', orderedEnd - lastBatchOrdered);
            await fresh.onRestored(context, topics);
            context.commit();
            p = fresh;
          }
          physical.ms += 10_000_000;
          commit(p.punctuate(context)?.outputs ?? []);

          const ordered = topics.topics.get(ORDERED) ?? [];
          const late = topics.topics.get(LATE) ?? [];
          const ids = [...ordered, ...late].map((r) => (usageEventType.fromBuffer(unframe(r.value).body) as UsageEvent).id);
          expect(ids.sort()).toEqual([...new Set(events.map((e) => `e${e.id}`))].sort());
          const bySubject = new Map<string, number[]>();
          for (const r of ordered) bySubject.set(String(r.key), [...(bySubject.get(String(r.key)) ?? []), Number(r.headers['ordo-seq'])]);
          for (const seqs of bySubject.values()) expect(seqs).toEqual(seqs.map((_, k) => k + 1));
          expect(topics.topics.get('usage-events-dlq')).toBeUndefined();
        },
      ),
      { numRuns: 150 },
    );
  });
});
