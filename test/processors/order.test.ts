import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatServiceTime, makeServiceTime, millisOf } from '../../src/clock/service-time.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { stringCodec } from '../../src/model/store.js';
import { heldPositionsCodec } from '../../src/processors/held-positions.js';
import { type BufferedEvent, HELD_KEY, type HeldPosition, type OrderItem, type OrderResult, OrderStep, bufferedCodec, replayOrdered } from '../../src/processors/order.js';
import { type LatePolicy } from '../../src/model/reasons.js';
import { readProducerSeq } from '../../src/processors/decode.js';
import type { SourceRecord } from '../../src/model/records.js';
import { T0 } from '../support/unit/fixtures.js';

/** An order step with its three stores; `commit` makes the staged writes state (a committed batch). */
function harness(settings: { reorderWindowMs?: number; maxBuffered?: number; latePolicy?: LatePolicy } = {}) {
  const stores = {
    buffer: new InMemoryStore<HeldPosition[]>('reorder', heldPositionsCodec),
    sequences: new InMemoryStore<string>('sequences', stringCodec),
    meta: new InMemoryStore<string>('meta', stringCodec),
  };
  const make = () => new OrderStep({ reorderWindowMs: settings.reorderWindowMs ?? 1_000, maxBuffered: settings.maxBuffered ?? 10_000, latePolicy: settings.latePolicy ?? 'flag' });
  let step = make();
  const h = {
    stores,
    get step() {
      return step;
    },
    run(items: OrderItem[], idleNow?: number): OrderResult {
      const result = step.run(items, stores, idleNow);
      for (const s of Object.values(stores)) s.commit();
      return result;
    },
    /**
     * A crash after the last commit: a fresh step restored from the committed stores (through
     * their codecs), its held events read back at their positions (as from the input topic).
     */
    crash(): void {
      for (const s of Object.values(stores)) s.rollback();
      const restored = {
        buffer: new InMemoryStore<HeldPosition[]>('reorder', heldPositionsCodec),
        sequences: new InMemoryStore<string>('sequences', stringCodec),
        meta: new InMemoryStore<string>('meta', stringCodec),
      };
      for (const [k, v] of stores.buffer.entries()) restored.buffer.restore(k, heldPositionsCodec.encode(v));
      for (const [k, v] of stores.sequences.entries()) restored.sequences.restore(k, Buffer.from(v));
      for (const [k, v] of stores.meta.entries()) restored.meta.restore(k, Buffer.from(v));
      Object.assign(stores, restored);
      step = make();
      const held = (stores.buffer.get(HELD_KEY) ?? []).map((p) => {
        const it = created.get(p.offset.toString())!;
        expect(p.stamp).toEqual(it.stamp);
        return { subject: it.subject, time: it.orderKey.time, node: it.orderKey.node, offset: p.offset, record: structuredClone(it.record), producer: it.producer, stamp: p.stamp };
      });
      step.restore(held, stores.meta);
    },
  };
  return h;
}

let offset = 0;
/** Every item made, by input offset: what the "input topic" holds for a restore. */
const created = new Map<string, OrderItem>();
function item(subject: string, ms: number, options: { node?: string; counter?: number; headers?: Record<string, string> } = {}): OrderItem {
  const source: SourceRecord = { topic: 'in', partition: 0, offset: String(offset++), key: Buffer.from(subject), value: Buffer.from(`v${offset}`), headers: options.headers ?? {}, timestamp: T0 };
  const node = options.node ?? 'svc';
  const time = makeServiceTime(ms, options.counter ?? 0);
  // As EncodeStep writes an event with an upstream time context.
  const headers = { ...options.headers, 'service-time': 'x', 'source-offset': source.offset, 'origin-service-time': formatServiceTime(time), 'origin-service-node': node, 'ordo-origin': 'context' };
  const it: OrderItem = {
    subject,
    orderKey: { time, node },
    stamp: { time: makeServiceTime(T0 + offset, 0), node: 'ordo-1' },
    record: { topic: 'ordered', key: subject, value: source.value, headers },
    source,
    producer: readProducerSeq(source.headers, { time: 0n, node }),
  };
  created.set(source.offset, it);
  return it;
}

/** An emitted record as a reader of the ordered topic gets it back. */
function asRead(record: OrderResult['emitted'][number], at: number): SourceRecord {
  return { topic: 'ordered', partition: 0, offset: String(at), key: Buffer.from(String(record.key)), value: null, headers: { ...record.headers }, timestamp: T0 };
}

const seqOf = (r: { headers: Record<string, Buffer | string> }) => Number(r.headers['ordo-seq']);
const offsetOf = (r: { headers: Record<string, Buffer | string> }) => String(r.headers['source-offset']);

describe('OrderStep', () => {
  it('holds events until the watermark passes their key by the window, then emits them in order with ordo-seq 1, 2, 3', () => {
    const h = harness({ reorderWindowMs: 1_000 });
    const b = item('c', T0 + 200);
    const a = item('c', T0 + 100);
    expect(h.run([b]).emitted).toEqual([]);
    expect(h.run([a]).emitted).toEqual([]);
    expect(h.step.buffered).toBe(2);
    const tick = item('other', T0 + 1_150); // watermark T0+1150: only a (T0+100) is due
    const first = h.run([tick]);
    expect(first.emitted.map(offsetOf)).toEqual([a.source.offset]);
    const rest = h.run([], T0 + 5_000); // idle: the wall clock moves the watermark
    expect(rest.emitted.map(offsetOf)).toEqual([b.source.offset, tick.source.offset]);
    expect([...first.emitted, ...rest.emitted].filter((r) => r.key === 'c').map(seqOf)).toEqual([1, 2]);
    expect(h.step.buffered).toBe(0);
    expect(h.stores.buffer.size).toBe(0);
  });

  it('keeps the held positions as one entry, written only when the held set changes', () => {
    const h = harness({ reorderWindowMs: 1_000 });
    h.step.run([item('c', T0 + 200), item('c', T0 + 100)], h.stores);
    const written = h.stores.buffer.changes();
    expect(written.map((e) => e.key)).toEqual([HELD_KEY]);
    expect(heldPositionsCodec.decode(written[0]!.value!).map((p) => p.offset)).toHaveLength(2);
    for (const s of Object.values(h.stores)) s.commit();
    h.step.run([], h.stores, T0 + 150); // idle, nothing due
    expect(h.stores.buffer.changes()).toEqual([]);
    h.step.run([], h.stores, T0 + 10_000); // everything leaves: the entry is deleted
    expect(h.stores.buffer.changes()).toEqual([{ key: HELD_KEY, value: null }]);
  });

  it('never writes an event that arrives and leaves in the same batch to the buffer store', () => {
    const h = harness({ reorderWindowMs: 0 });
    const result = h.step.run([item('c', T0 + 5), item('c', T0 + 1), item('d', T0 + 3)], h.stores);
    expect(result.emitted.map((r) => r.key)).toEqual(['c', 'd', 'c']);
    expect(h.stores.buffer.changes()).toEqual([]);
  });

  it('flags an event below the last emitted key of its subject as late, in arrival position, with the next seq', () => {
    const h = harness({ reorderWindowMs: 0 });
    h.run([item('c', T0 + 500)]);
    const late = item('c', T0 + 100);
    const result = h.run([late, item('c', T0 + 600)]);
    expect(result.violations).toEqual(['late']);
    expect(result.emitted.map((r) => [offsetOf(r), seqOf(r), r.headers['ordo-late']])).toEqual([
      [late.source.offset, 2, 'true'],
      [String(offset - 1), 3, undefined],
    ]);
  });

  it('routes a late event to the late topic under policy route, without a seq', () => {
    const h = harness({ reorderWindowMs: 0, latePolicy: 'route' });
    h.run([item('c', T0 + 500)]);
    const late = item('c', T0 + 100);
    const result = h.run([late]);
    expect(result.emitted).toEqual([]);
    expect(result.late).toEqual([{ source: late.source, reason: 'out-of-order', seenAt: millisOf(late.stamp.time), detail: expect.stringContaining('below') }]);
    expect(result.violations).toEqual(['late']);
    expect(seqOf(h.run([item('c', T0 + 700)]).emitted[0]!)).toBe(2);
  });

  it('counts a duplicate order key (same time and node) for a subject, buffered or emitted, and emits both', () => {
    const h = harness({ reorderWindowMs: 0 });
    const first = h.run([item('c', T0, { node: 'n1' }), item('c', T0, { node: 'n1' }), item('c', T0, { node: 'n2' })]);
    expect(first.violations).toEqual(['duplicate-key']);
    expect(first.emitted.map(seqOf)).toEqual([1, 2, 3]);
    const again = h.run([item('c', T0, { node: 'n2' })]);
    expect(again.violations).toEqual(['duplicate-key']);
    expect(again.emitted.map(seqOf)).toEqual([4]);
    expect(h.run([item('d', T0, { node: 'n1' })]).violations).toEqual([]); // another subject: not a duplicate
  });

  it('checks producer-seq per (subject, producer) in emission order: gaps and regressions', () => {
    const h = harness({ reorderWindowMs: 1_000 });
    const p = (ms: number, seq: number, subject = 'c') => item(subject, ms, { headers: { 'producer-id': 'svc-a', 'producer-seq': String(seq) } });
    // Arrival order 2, 1 is restored by the buffer: no violation.
    h.run([p(T0 + 20, 2), p(T0 + 10, 1)]);
    expect(h.run([], T0 + 10_000).violations).toEqual([]);
    // 4 after 2 is a gap; then 4 again (a new key) is a regression; the other subject has its own count.
    const result = h.run([p(T0 + 30, 4), p(T0 + 40, 4), p(T0 + 50, 9, 'd')], T0 + 20_000);
    expect(result.violations).toEqual(['sequence-gap', 'sequence-regression']);
  });

  it('at the bound emits the oldest early and counts it; never holds more than the bound', () => {
    const h = harness({ reorderWindowMs: 60_000, maxBuffered: 3 });
    const result = h.run([item('a', T0 + 4), item('b', T0 + 1), item('c', T0 + 3), item('d', T0 + 2), item('e', T0 + 5)]);
    expect(result.forced).toBe(2);
    expect(result.emitted.map((r) => r.key)).toEqual(['b', 'd']);
    expect(h.step.buffered).toBe(3);
  });

  it('keeps what it holds across a crash: the restored buffer emits each event exactly once', () => {
    const h = harness({ reorderWindowMs: 1_000 });
    const held = [item('c', T0 + 30), item('c', T0 + 10), item('d', T0 + 20)];
    h.run(held);
    h.step.run([item('c', T0 + 5)], h.stores); // a batch that never commits
    h.crash();
    expect(h.step.buffered).toBe(3);
    const out = h.run([], T0 + 10_000);
    expect(out.emitted.map(offsetOf)).toEqual([held[1]!, held[2]!, held[0]!].map((i) => i.source.offset));
    expect(out.emitted.filter((r) => r.key === 'c').map(seqOf)).toEqual([1, 2]);
  });

  it('marks each emitted record with what the partition promises after it: the least key still to come, else the frontier', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 1_000 }), (offsets, window) => {
        const h = harness({ reorderWindowMs: window });
        const out = h.run(offsets.map((ms, i) => item(`s${i % 4}`, T0 + ms)));
        const marks = out.emitted.map((r) => Number(r.headers['ordo-watermark']));
        for (let i = 0; i < marks.length; i++) {
          expect(marks[i]).toBeLessThanOrEqual(h.step.frontier);
          for (let j = i + 1; j < marks.length; j++) expect(marks[i]).toBeLessThanOrEqual(out.emittedOriginMs[j]!);
        }
        if (marks.length > 0) expect(marks[marks.length - 1]).toBe(h.step.frontier);
      }),
    );
  });

  it('round-trips buffered events through the store codec', () => {
    fc.assert(
      fc.property(
        fc.record({
          subject: fc.string(),
          time: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          node: fc.string(),
          offset: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
          producer: fc.option(fc.record({ id: fc.string(), seq: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }) }), { nil: undefined }),
          key: fc.option(fc.oneof(fc.string(), fc.uint8Array().map((a) => Buffer.from(a))), { nil: null }),
          value: fc.option(fc.uint8Array().map((a) => Buffer.from(a)), { nil: null }),
          headers: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.uint8Array().map((a) => Buffer.from(a)))),
        }),
        (r) => {
          const event: BufferedEvent = { subject: r.subject, time: r.time, node: r.node, offset: r.offset, producer: r.producer, record: { topic: 't', key: r.key, value: r.value, headers: r.headers } };
          expect(bufferedCodec.decode(bufferedCodec.encode(event))).toEqual(event);
        },
      ),
    );
  });

  /**
   * Random subjects, keys, arrival disorder and batching, with crashes in between. Every
   * event comes out exactly once; per subject `ordo-seq` is 1..n; the non-late events of a
   * subject are in key order; late violations are exactly the flagged events; and events
   * that arrive within the window of the watermark are never late.
   */
  it('property: exactly once, gapless seq, per-subject order, late == flagged, under any batching and crashes', () => {
    const event = fc.record({ subject: fc.constantFrom('a', 'b', 'c'), delay: fc.integer({ min: 0, max: 3_000 }), gap: fc.integer({ min: 0, max: 400 }), node: fc.constantFrom('n1', 'n2') });
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.boolean(), { maxLength: 20 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.integer({ min: 1, max: 40 }),
        (events, sizes, crashes, window, bound) => {
          const h = harness({ reorderWindowMs: window, maxBuffered: bound });
          // Origin times grow; arrival order is origin + delay (a service that was slow to send).
          let t = T0;
          const items = events.map((e, i) => {
            t += e.gap;
            const it = item(e.subject, t, { node: e.node, counter: i });
            return { it, arrival: t + e.delay };
          });
          items.sort((x, y) => x.arrival - y.arrival);
          const arrivals = items.map((x) => x.it);
          const out: OrderResult[] = [];
          let i = 0;
          let b = 0;
          while (i < arrivals.length) {
            const size = sizes[b % sizes.length]!;
            out.push(h.run(arrivals.slice(i, i + size)));
            if (crashes[b % Math.max(1, crashes.length)]) h.crash();
            i += size;
            b += 1;
          }
          out.push(h.run([], t + 1_000_000));
          const emitted = out.flatMap((r) => r.emitted);
          // The sequences store is what replaying the ordered output gives, from scratch or
          // from a snapshot taken a batch early (the replay overlaps it).
          const replayed = new InMemoryStore<string>('sequences', stringCodec);
          emitted.forEach((r, k) => replayOrdered(asRead(r, k), replayed));
          const overlap = Math.floor(emitted.length / 2);
          emitted.slice(overlap).forEach((r, k) => replayOrdered(asRead(r, overlap + k), replayed));
          replayed.commit();
          expect(new Map(replayed.entries())).toEqual(new Map(h.stores.sequences.entries()));
          const violations = out.flatMap((r) => r.violations);
          // Exactly once.
          expect(emitted.map(offsetOf).sort()).toEqual(arrivals.map((a) => a.source.offset).sort());
          expect(h.step.buffered).toBe(0);
          // Gapless per subject; per-subject order of the non-late; late count == flagged.
          const bySubject = new Map<string, typeof emitted>();
          for (const r of emitted) bySubject.set(String(r.key), [...(bySubject.get(String(r.key)) ?? []), r]);
          const byOffset = new Map(arrivals.map((a) => [a.source.offset, a]));
          for (const records of bySubject.values()) {
            expect(records.map(seqOf)).toEqual(records.map((_, k) => k + 1));
            const keys = records.filter((r) => r.headers['ordo-late'] === undefined).map((r) => byOffset.get(offsetOf(r))!.orderKey.time);
            for (let k = 1; k < keys.length; k++) expect(keys[k]! >= keys[k - 1]!).toBe(true);
          }
          const flagged = emitted.filter((r) => r.headers['ordo-late'] === 'true').length;
          expect(violations.filter((v) => v === 'late')).toHaveLength(flagged);
          const forced = out.reduce((n, r) => n + r.forced, 0);
          if (forced === 0 && events.every((e) => e.delay < window)) expect(flagged).toBe(0);
          for (const r of emitted) expect(millisOf(byOffset.get(offsetOf(r))!.orderKey.time)).toBeGreaterThanOrEqual(T0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
