// What corrections cost the pipeline's processor, without Kafka (the chain alone, in memory):
// events/s with ORDO_CORRECTIONS on and off over the same events, and the heap the kept
// contributions take per event. Run: node --expose-gc --import tsx test/corrections/cost.ts [events]
// (docs/corrections.md quotes its figures).
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import type { SourceRecord } from '../../src/model/records.js';
import { stringCodec } from '../../src/model/store.js';
import { PipelineProcessor, pipelineStores } from '../../src/processors/pipeline.js';
import type { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { MeterCatalog } from '../../src/usage/meters.js';
import { CORRECTION_HEADER } from '../../src/corrections/correction.js';
import { TEST_METERS } from '../support/usage-workload.js';

const N = Number(process.argv[2] ?? 200_000);
const BATCH = 500;
const gc = (globalThis as { gc?: () => void }).gc;

class Catalog {
  prefetch(): Promise<void> {
    return Promise.resolve();
  }
  writerType(): typeof usageEventType {
    return usageEventType;
  }
}

function records(withCorrections: boolean): SourceRecord[] {
  const now = Date.now();
  const out: SourceRecord[] = [];
  for (let i = 0; i < N; i++) {
    const subject = `cust-${i % 500}`;
    const event = { id: `e${i}`, source: 'gw', type: i % 3 === 0 ? 'llm.completion' : 'api.request', subject, time: now - (i % 5_400_000), value: String((i % 977) / 10), dimensions: { region: ['eu', 'us'][i % 2]!, model: 'small', user: `u${i % 40}`, tokens: String(i % 5000) } };
    out.push({ topic: 'in', partition: 0, offset: String(out.length), key: Buffer.from(subject), value: frame(1, usageEventType.toBuffer(event)), headers: {}, timestamp: now });
    if (withCorrections && i % 25 === 24) {
      // 4 %: a void or an amend of the event 20 back.
      const kind = i % 50 === 49 ? 'void' : 'amend';
      const j = i - 20;
      const fix = { id: `fix${i}`, source: 'support', type: 'api.request', subject: `cust-${j % 500}`, time: now - 1000, value: '1.5', dimensions: { region: 'eu', model: 'small', user: 'u1', tokens: '3' } };
      out.push({ topic: 'in', partition: 0, offset: String(out.length), key: Buffer.from(fix.subject), value: frame(1, usageEventType.toBuffer(fix)), headers: { [CORRECTION_HEADER.kind]: kind, [CORRECTION_HEADER.source]: 'gw', [CORRECTION_HEADER.id]: `e${j}` }, timestamp: now });
    }
  }
  return out;
}

async function run(enabled: boolean, input: SourceRecord[]): Promise<{ perSecond: number; heapMB: number }> {
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const p = new PipelineProcessor({
    clock: new HybridClock({ node: 'cost', physical: { now: () => Date.now() }, maxSkewMs: 500 }),
    orderedTopic: 'o', dlqTopic: 'd', lateTopic: 'l', aggregatesTopic: 'a', watermarksTopic: 'w',
    outputSchemaId: 2, aggregateSchemaId: 3,
    catalog: new Catalog() as unknown as SchemaCatalog,
    meters: new MeterCatalog(TEST_METERS),
    dedupeWindowMs: 86_400_000, allowedLatenessMs: 7 * 86_400_000, maxFutureMs: 300_000,
    reorderWindowMs: 0, reorderMaxEvents: 10_000, latePolicy: 'flag', watermarkIntervalMs: 0,
    corrections: { enabled },
  });
  const meta = new InMemoryStore('meta', stringCodec);
  const stores = new Map(pipelineStores({ aggregatesTopic: 'a', allowedLatenessMs: 7 * 86_400_000, orderedTopic: 'o', lateTopic: 'l' }).map((s) => [s.name, new InMemoryStore(s.name, s.codec)]));
  const context = { topic: 'in', partition: 0, meta, store: <V>(name: string) => stores.get(name) as unknown as InMemoryStore<V> };
  const started = performance.now();
  for (let i = 0; i < input.length; i += BATCH) {
    p.process(input.slice(i, i + BATCH), context);
    meta.commit();
    for (const s of stores.values()) s.commit();
  }
  const seconds = (performance.now() - started) / 1000;
  gc?.();
  const heapMB = (process.memoryUsage().heapUsed - before) / 1e6;
  void p;
  await Promise.resolve();
  return { perSecond: Math.round(input.length / seconds), heapMB: Math.round(heapMB) };
}

const plain = records(false);
const mixed = records(true);
await run(true, plain.slice(0, 20_000)); // warm-up
// Alternated three times (the machine is shared): medians.
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
const offs: { perSecond: number; heapMB: number }[] = [];
const ons: { perSecond: number; heapMB: number }[] = [];
for (let i = 0; i < 3; i++) {
  offs.push(await run(false, plain));
  ons.push(await run(true, plain));
}
const onMixed = await run(true, mixed);
const off = { perSecond: median(offs.map((x) => x.perSecond)), heapMB: median(offs.map((x) => x.heapMB)) };
const on = { perSecond: median(ons.map((x) => x.perSecond)), heapMB: median(ons.map((x) => x.heapMB)) };
console.log(JSON.stringify({ events: N, batch: BATCH, off, on, ratios: ons.map((x, i) => +(x.perSecond / offs[i]!.perSecond).toFixed(2)), onWith4PercentCorrections: { ...onMixed, records: mixed.length }, ratio: +(on.perSecond / off.perSecond).toFixed(2), heapPerEventBytes: Math.round(((on.heapMB - off.heapMB) * 1e6) / N) }));
