import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime } from '../../src/clock/service-time.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import { type HeldEvent, MergeStep, heldCodec, keyOf } from '../../src/processors/merge.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import { T0 } from '../support/unit/fixtures.js';

const GLOBAL = 'global';

function harness(partitions: number) {
  const stores = { held: new InMemoryStore<HeldEvent>('held', heldCodec), meta: new InMemoryStore<string>('merge-meta', stringCodec) };
  let step = new MergeStep(partitions, GLOBAL);
  const commit = <T>(result: T): T => {
    stores.held.commit();
    stores.meta.commit();
    return result;
  };
  return {
    stores,
    get step() {
      return step;
    },
    ordered: (records: SourceRecord[]) => commit(step.onOrdered(records, stores)),
    watermark: (p: number, ms: number) => commit(step.onWatermark(p, ms, stores)),
    /** A restart: fresh step and stores restored from what was committed (through the codecs). */
    crash() {
      const held = new InMemoryStore<HeldEvent>('held', heldCodec);
      const meta = new InMemoryStore<string>('merge-meta', stringCodec);
      for (const [k, v] of stores.held.entries()) held.restore(k, heldCodec.encode(v));
      for (const [k, v] of stores.meta.entries()) meta.restore(k, Buffer.from(v));
      Object.assign(stores, { held, meta });
      step = new MergeStep(partitions, GLOBAL);
      step.restore(stores.held, stores.meta);
    },
  };
}

function record(partition: number, offset: number, ms: number, mark: number | undefined, options: { origin?: boolean; node?: string; counter?: number } = {}): SourceRecord {
  const time = formatServiceTime(makeServiceTime(ms, options.counter ?? 0));
  const headers: Record<string, string> = options.origin
    ? { 'origin-service-time': time, 'origin-service-node': options.node ?? 'up', 'service-time': formatServiceTime(makeServiceTime(ms + 5, 0)), 'service-node': 'ordo' }
    : { 'service-time': time, 'service-node': options.node ?? 'ordo' };
  if (mark !== undefined) headers['ordo-watermark'] = String(mark);
  return { topic: 'ordered', partition, offset: String(offset), key: Buffer.from(`k${partition}`), value: Buffer.from(`${partition}/${offset}`), headers, timestamp: T0 };
}

const idOf = (r: OutputRecord) => String(r.value);
const keyOfOutput = (r: OutputRecord) => keyOf({ topic: 'x', partition: Number(String(r.value).split('/')[0]), offset: String(r.value).split('/')[1]!, key: null, value: null, headers: r.headers, timestamp: 0 })!;

describe('MergeStep', () => {
  it('reads the order key from origin-service-time (else service-time), with the node', () => {
    expect(keyOf(record(0, 1, T0, undefined, { origin: true, node: 'svc' }))).toEqual({ time: makeServiceTime(T0, 0), node: 'svc', partition: 0, offset: 1n });
    expect(keyOf(record(2, 7, T0, undefined))).toEqual({ time: makeServiceTime(T0, 0), node: 'ordo', partition: 2, offset: 7n });
    expect(keyOf({ ...record(0, 1, T0, undefined), headers: {} })).toBeUndefined();
  });

  it('holds events until every partition has passed them, then emits in total order with ordo-global-seq', () => {
    const h = harness(2);
    expect(h.ordered([record(0, 0, T0 + 30, T0 + 10), record(0, 1, T0 + 10, T0 + 10)]).emitted).toEqual([]); // partition 1 has said nothing
    const out = h.ordered([record(1, 0, T0 + 20, T0 + 40)]);
    // low watermark = min(T0+10, T0+40): nothing below T0+10 yet.
    expect(out.emitted).toEqual([]);
    const more = h.ordered([record(0, 2, T0 + 50, T0 + 35)]);
    expect(more.emitted.map(idOf)).toEqual(['0/1', '1/0', '0/0']);
    expect(more.emitted.map((r) => r.headers['ordo-global-seq'])).toEqual(['1', '2', '3']);
    expect(more.emitted.every((r) => r.topic === GLOBAL && r.partition === 0)).toBe(true);
  });

  it('moves on for a quiet partition through its published watermark', () => {
    const h = harness(2);
    h.ordered([record(0, 0, T0 + 5, T0 + 100)]);
    expect(h.step.held).toBe(1);
    expect(h.watermark(1, T0 + 50).emitted.map(idOf)).toEqual(['0/0']);
  });

  it('flags an event below what the global stream already passed, at once, never drops it', () => {
    const h = harness(1);
    h.ordered([record(0, 0, T0 + 10, T0 + 20), record(0, 1, T0 + 30, T0 + 40)]);
    const late = h.ordered([record(0, 2, T0 + 5, T0 + 40)]);
    expect(late.late).toBe(1);
    expect(late.emitted.map((r) => [idOf(r), r.headers['ordo-late'], r.headers['ordo-global-seq']])).toEqual([['0/2', 'true', '3']]);
  });

  it('puts a record without a service time aside (the engine dead-letters it)', () => {
    const h = harness(1);
    const bad = { ...record(0, 0, T0, T0), headers: { 'service-time': 'nonsense' } };
    expect(h.ordered([bad]).unreadable).toEqual([bad]);
  });

  /**
   * Random partitions whose records keep their watermark promise, interleaved in random
   * batches, with restarts and published watermarks in between: every record comes out
   * exactly once, ordo-global-seq is 1..n, and the stream is in total order with no late.
   */
  it('property: exactly once, gapless global seq, total order, under any interleaving and restarts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.record({ partition: fc.nat(3), gap: fc.integer({ min: 0, max: 50 }), jitter: fc.integer({ min: 0, max: 40 }), origin: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.oneof(fc.constant('crash'), fc.constant('watermark'), fc.constant('none')), { minLength: 1, maxLength: 10 }),
        (partitions, events, sizes, actions) => {
          // Per partition: keys with jitter; the mark on each record is the least key still to come.
          const perPartition: { ms: number; origin: boolean; node: string }[][] = Array.from({ length: partitions }, () => []);
          let t = T0;
          for (const [i, e] of events.entries()) {
            t += e.gap;
            perPartition[e.partition % partitions]!.push({ ms: t + e.jitter, origin: e.origin, node: `n${i % 3}` });
          }
          const queues = perPartition.map((list, p) => {
            const suffixMin = list.map((_, i) => Math.min(...list.slice(i).map((x) => x.ms)));
            return list.map((x, i) => record(p, i, x.ms, suffixMin[i], { origin: x.origin, node: x.node, counter: i }));
          });
          const h = harness(partitions);
          const out: OutputRecord[] = [];
          let lateCount = 0;
          let step = 0;
          while (queues.some((q) => q.length > 0)) {
            const p = step % partitions;
            const q = queues[p]!;
            const batch = q.splice(0, sizes[step % sizes.length]);
            if (batch.length > 0) {
              const r = h.ordered(batch);
              out.push(...r.emitted);
              lateCount += r.late;
            }
            const action = actions[step % actions.length];
            if (action === 'crash') h.crash();
            // A quiet partition publishes the least key it still has to send (its promise).
            if (action === 'watermark') {
              for (let x = 0; x < partitions; x++) {
                const next = queues[x]![0];
                if (next === undefined) continue;
                out.push(...h.watermark(x, Number(next.headers['ordo-watermark'])).emitted);
              }
            }
            step += 1;
          }
          for (let p = 0; p < partitions; p++) out.push(...h.watermark(p, Number.MAX_SAFE_INTEGER).emitted);
          const ids = out.map(idOf);
          expect([...ids].sort()).toEqual(perPartition.flatMap((list, p) => list.map((_, i) => `${p}/${i}`)).sort());
          expect(out.map((r) => Number(r.headers['ordo-global-seq']))).toEqual(out.map((_, i) => i + 1));
          expect(lateCount).toBe(0);
          for (let i = 1; i < out.length; i++) {
            const a = keyOfOutput(out[i - 1]!);
            const b = keyOfOutput(out[i]!);
            const ordered = a.time < b.time || (a.time === b.time && (a.node < b.node || (a.node === b.node && (a.partition < b.partition || (a.partition === b.partition && a.offset <= b.offset)))));
            expect(ordered, `${formatServiceTime(a.time)} ${a.node} then ${formatServiceTime(b.time)} ${b.node}`).toBe(true);
          }
          expect(h.step.held).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
