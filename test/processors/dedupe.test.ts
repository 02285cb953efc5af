import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeServiceTime } from '../../src/clock/service-time.js';
import { numberCodec } from '../../src/model/store.js';
import { DEDUPE_STORE, DedupeStep, dedupeKey } from '../../src/processors/dedupe.js';
import type { StampedEvent } from '../../src/model/records.js';
import { T0, sourceRecord, taskContext, usageEvent } from '../support/unit/fixtures.js';

const HOUR = 3_600_000;
const STORES = [{ name: DEDUPE_STORE, codec: numberCodec }];

function stamped(source: string, id: string, seenAt: number): StampedEvent {
  const time = makeServiceTime(seenAt, 0);
  return { source: sourceRecord({ value: null }), event: usageEvent({ source, id }), context: undefined, stamp: { time, node: 'n' }, orderKey: { time, node: 'n' } };
}

describe('DedupeStep', () => {
  it('passes the first of each (source, id) and drops repeats within the window, across batches', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom('1', '2', '3', '4')), { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(40), { maxLength: 5 }),
        (pairs, cuts) => {
          const step = new DedupeStep(24 * HOUR);
          const context = taskContext(undefined, STORES);
          const events = pairs.map(([source, id], i) => stamped(source, id, T0 + i));
          const passed: string[] = [];
          let duplicates = 0;
          let start = 0;
          for (const end of [...cuts.filter((c) => c > 0 && c < events.length).sort((a, b) => a - b), events.length]) {
            const result = step.run(events.slice(start, end), context.store(DEDUPE_STORE));
            start = end;
            passed.push(...result.fresh.map((e) => `${e.event.source}/${e.event.id}`));
            duplicates += result.duplicates;
            context.commit();
          }
          const firsts = [...new Set(pairs.map(([s, i]) => `${s}/${i}`))];
          expect(passed).toEqual(firsts);
          expect(duplicates).toBe(pairs.length - firsts.length);
        },
      ),
    );
  });

  it('claims nothing until the batch commits: a rolled-back batch leaves the id free for the retry', () => {
    const step = new DedupeStep(24 * HOUR);
    const context = taskContext(undefined, STORES);
    const store = context.stores.get(DEDUPE_STORE);
    expect(step.run([stamped('a', '1', T0)], context.store(DEDUPE_STORE)).fresh).toHaveLength(1);
    store?.rollback(); // the transaction failed
    const retry = step.run([stamped('a', '1', T0 + 5)], context.store(DEDUPE_STORE));
    expect(retry.fresh).toHaveLength(1);
    expect(retry.duplicates).toBe(0);
  });

  it('accepts an id again once the window has passed, and expires old ids from the store', () => {
    const step = new DedupeStep(HOUR);
    const context = taskContext(undefined, STORES);
    step.run([stamped('a', '1', T0), stamped('a', '2', T0)], context.store(DEDUPE_STORE));
    context.commit();
    expect(step.run([stamped('a', '1', T0 + HOUR - 1)], context.store(DEDUPE_STORE)).duplicates).toBe(1);
    context.commit();
    // The store is swept at most once a minute of stamp time.
    const after = step.run([stamped('a', '1', T0 + HOUR + 61_000)], context.store(DEDUPE_STORE));
    expect(after.fresh).toHaveLength(1);
    expect(after.expired).toBe(1); // a/2 expired; a/1 was claimed again in this batch and is kept
    context.commit();
    expect(context.store(DEDUPE_STORE).get(dedupeKey('a', '1'))).toBe(T0 + HOUR + 61_000);
    expect(context.store(DEDUPE_STORE).get(dedupeKey('a', '2'))).toBeUndefined();
  });

  it('keys (source, id) pairs so that no two pairs collide', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (s1, i1, s2, i2) => {
        fc.pre(s1 !== s2 || i1 !== i2);
        expect(dedupeKey(s1, i1)).not.toBe(dedupeKey(s2, i2));
      }),
    );
  });
});
