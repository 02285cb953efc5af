import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CORRECTION_HEADER, type CorrectionKind } from '../../src/corrections/correction.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import type { SourceRecord } from '../../src/model/records.js';
import { FakeClock, MemoryTopics, T0 } from '../support/unit/fixtures.js';
import { AGGREGATES, ORDERED, commitTo, correctionHeaders, decodeEvent, eventRecord, expectAggregatesEqual, header, lastAggregates, oracle, pipeline, pipelineContext, restoredContext } from './harness.js';

const VALUES = ['1', '2.5', '-3', '10', '0.1', '7', '0'];
const SOURCE = 'svc';

/** A workload: originals, and per original an optional amend and an optional void (either order gives one final state). */
const anyWorkload = fc
  .array(
    fc.record({
      subject: fc.constantFrom('a', 'b'),
      back: fc.integer({ min: 0, max: 3 * 3_600_000 }),
      value: fc.constantFrom(...VALUES),
      user: fc.integer({ min: 0, max: 3 }),
      region: fc.constantFrom('eu', 'us'),
      amend: fc.option(fc.record({ back: fc.integer({ min: 0, max: 3 * 3_600_000 }), value: fc.constantFrom(...VALUES), user: fc.integer({ min: 0, max: 3 }), region: fc.constantFrom('eu', 'us'), unmetered: fc.boolean() }), { nil: undefined, freq: 2 }),
      void: fc.boolean(),
      resend: fc.boolean(),
    }),
    { minLength: 1, maxLength: 25 },
  )
  .chain((originals) => {
    const n = originals.length + originals.filter((o) => o.amend).length + originals.filter((o) => o.void).length;
    return fc.tuple(
      fc.constant(originals),
      fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.boolean(), { maxLength: 8 }),
      fc.constantFrom(0, 1_000),
    );
  });

describe('corrections: any arrival order folds to the oracle that applies them', () => {
  it('property: events, voids and amends (some before their originals, some re-sent), in random batches with crashes, end as the oracle for every aggregation', async () => {
    await fc.assert(
      fc.asyncProperty(anyWorkload, async ([originals, order, sizes, crashes, window]) => {
        const physical = new FakeClock(T0);
        const topics = new MemoryTopics();
        const records: SourceRecord[] = [];
        const applied = new Map<string, { kind: CorrectionKind; event: UsageEvent }[]>();
        originals.forEach((o, i) => {
          const id = `e${i}`;
          const original: UsageEvent = { id, source: SOURCE, type: 'use', subject: o.subject, time: T0 - o.back, value: o.value, dimensions: { user: `u${o.user}`, region: o.region } };
          records.push(eventRecord(original));
          const list: { kind: CorrectionKind; event: UsageEvent }[] = [];
          if (o.amend) {
            const a = o.amend;
            const amend: UsageEvent = { id: `amend-${i}`, source: 'corrections', type: a.unmetered ? 'other' : 'use', subject: o.subject, time: T0 - a.back, value: a.value, dimensions: { user: `u${a.user}`, region: a.region } };
            records.push(eventRecord(amend, correctionHeaders('amend', SOURCE, id)));
            list.push({ kind: 'amend', event: amend });
          }
          if (o.void) {
            const v: UsageEvent = { id: `void-${i}`, source: 'corrections', type: 'void', subject: o.subject, time: T0, value: '0', dimensions: {} };
            records.push(eventRecord(v, correctionHeaders('void', SOURCE, id)));
            list.push({ kind: 'void', event: v });
          }
          applied.set(id, list);
        });
        const arriving = order.map((k) => records[k]!);
        // Re-sends of corrections: deduplicated by their own id.
        originals.forEach((o, i) => {
          if (o.resend && o.void) arriving.push(records.find((r) => decodeEvent(r).id === `void-${i}`)!);
        });
        // The input partition: offsets in arrival order (a restore reads held events back from it).
        const arrivals = arriving.map((r, k) => ({ ...r, offset: String(k) }));
        topics.topics.set('usage-events', arrivals);

        let p = pipeline(physical, { reorderWindowMs: window });
        let context = pipelineContext();
        await p.onRestored(context, topics);
        context.commit();
        for (let i = 0, b = 0; i < arrivals.length; b++) {
          const batch = arrivals.slice(i, i + sizes[b % sizes.length]!);
          i += batch.length;
          physical.ms += 50;
          await p.prepare(batch);
          commitTo(topics, context, p.process(batch, context).outputs, physical.ms);
          if (crashes[b % Math.max(1, crashes.length)] === true) {
            const fresh = pipeline(physical, { reorderWindowMs: window });
            context = restoredContext(fresh, context);
            await fresh.onRestored(context, topics);
            context.commit();
            p = fresh;
          }
        }
        physical.ms += 60_000;
        commitTo(topics, context, p.punctuate(context)?.outputs ?? [], physical.ms);

        // Only an amend that arrives after its original's void is refused (the void wins either way).
        const dlq = topics.topics.get('usage-events-dlq') ?? [];
        for (const d of dlq) {
          expect(header(d, 'ordo-dlq-reason')).toBe('invalid-correction');
          expect(header(d, 'ordo-dlq-error')).toMatch(/^amend of .* which was already voided by/);
        }
        expect(topics.topics.get('usage-events-late') ?? []).toEqual([]);
        expectAggregatesEqual(lastAggregates(topics), oracle(topics, applied));
        // Every correction is on the ordered topic once, after its original, and re-sends are not.
        const ordered = topics.topics.get(ORDERED) ?? [];
        const at = new Map(ordered.map((r, k) => [decodeEvent(r).id, k]));
        expect(ordered.length).toBe(records.length - dlq.length);
        for (const r of ordered) {
          const target = header(r, CORRECTION_HEADER.id);
          if (target !== undefined) expect(at.get(target)!).toBeLessThan(at.get(decodeEvent(r).id)!);
        }
        // Each applied correction counted once per window it changed.
        const corrected = [...lastAggregates(topics).values()].reduce((n, a) => n + a.corrections, 0);
        expect(corrected).toBeGreaterThanOrEqual([...applied.values()].filter((l) => l.length > 0).length > 0 ? 1 : 0);
        expect(topics.topics.get(AGGREGATES)?.length ?? 0).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });
});
