import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Workload, WORKLOAD_DEFAULTS, activeShare, distinct, plan } from '../../src/capacity/capacity-model.js';
import type { CapacityConstants } from '../../src/capacity/constants.js';

/** Round figures, so the expectations can be worked out by hand. */
const C: CapacityConstants = {
  benchAggregatesPerEvent: 10,
  pipelineMicrosPerEvent: 200,
  stageMicrosPerEvent: { decode: 10, aggregate: 60, measure: 10, corrections: 30, order: 10, commit: 20 },
  meanTransactionMs: 200,
  diskBytes: { input: 300, ordered: 350, aggregate: 180, uniqueMember: 90 },
  diskBytesZstd: { ordered: 30, aggregate: 20, uniqueMember: 5 },
  metaRecordsPerEvent: 0.002,
  benchRecordsPerEvent: { ordered: 1, aggregates: 1.9, uniqueChangelog: 1 },
  heap: { aggregateInStore: 400, aggregateInReadModel: 700, dedupeId: 100, uniqueMember: 130, heldEvent: 1_800, contribution: 500 },
  apiStoreBytesPerAggregate: 250,
  apiStoreApplyRecordsPerSecond: 250_000,
  restoreRecordsPerSecond: 250_000,
  lmdbRestoreRecordsPerSecond: 200_000,
  mergeMicrosPerEvent: 50,
  mergeEventsPerSecond: 10_000,
  measuredAt: {},
};

const workload = (o: Partial<Workload> & Pick<Workload, 'eventsPerSecond' | 'subjects'>): Workload => ({ ...WORKLOAD_DEFAULTS, ...o });

describe('capacity model', () => {
  it('works out a small case by hand', () => {
    // 100 subjects at 1 ev/s each: every subject is in every window; one meter, HOUR only.
    const p = plan(workload({ eventsPerSecond: 100, subjects: 100, meters: 1, windows: ['HOUR'], corrections: false, merge: false, horizonMs: 10 * 3_600_000, partitions: 6 }), C);
    expect(p.aggregatesPerEvent).toBe(1);
    // Kept: 100 subjects x 10 hours (no retention: the horizon). Open: ceil(35 d / 1 h) + 1 = 841, capped at the 10 kept.
    expect(p.api.aggregates).toBeCloseTo(1_000, 6);
    expect(p.pipeline.openAggregates).toBeCloseTo(1_000, 6);
    // CPU: the per-aggregate steps are (60 + 10 + 30) / 200 of the process's 200 µs; 1 aggregate of 10: 200 x (0.5 + 0.5 / 10) = 110 µs.
    expect(p.pipeline.microsPerEvent).toBeCloseTo(110, 9);
    expect(p.pipeline.replicas).toBe(1);
    // Batch: 100/6 ev/s x 0.2 s = 3.33 events over 16.7 keys per partition.
    expect(p.batchEvents).toBeCloseTo(100 / 6 / 5, 9);
    expect(p.aggregateRecordsPerEvent).toBeCloseTo(distinct(100 / 30, 100 / 6) / (100 / 30), 9);
    expect(p.topics.find((t) => t.topic === 'usage-events')!.bytesPerSecond).toBe(30_000);
    expect(p.topics.find((t) => t.topic === 'usage-events-global')).toBeUndefined();
    // api restore: 1,000 aggregates over 2 replicas, read at 250k/s then applied at 250k/s: 125k/s.
    expect(p.api.restoreSeconds).toBeCloseTo(500 / 125_000, 9);
  });

  it('has the Poisson shares at their limits', () => {
    expect(activeShare(1, 1, 3_600)).toBeCloseTo(1, 9);
    expect(activeShare(1, 1e9, 1)).toBeCloseTo(1e-9, 15);
    expect(distinct(1e9, 25)).toBeCloseTo(25, 6);
    expect(distinct(1, 1e9)).toBeCloseTo(1, 6);
    expect(distinct(5, 0)).toBe(0);
  });

  it('retention bounds the windows kept, after the lateness', () => {
    const forever = plan(workload({ eventsPerSecond: 1_000, subjects: 1_000, windows: ['HOUR'] }), C);
    const kept = plan(workload({ eventsPerSecond: 1_000, subjects: 1_000, windows: ['HOUR'], retention: { HOUR: 2 * 86_400_000 } }), C);
    // 365 days of hours against 2 + 35 days of hours.
    expect(forever.api.aggregates / kept.api.aggregates).toBeCloseTo((365 * 24) / (37 * 24), 6);
  });

  it('flags too few partitions, a short ordered retention and a merge past its ceiling', () => {
    const p = plan(workload({ eventsPerSecond: 100_000, subjects: 1_000_000, partitions: 2, orderedRetentionMs: 3_600_000 }), C);
    expect(p.warnings.join('\n')).toMatch(/pipeline replicas are needed but only 2 partitions/);
    expect(p.warnings.join('\n')).toMatch(/ordered topic keeps 1 h but a restoring pipeline task replays/);
    expect(p.warnings.join('\n')).toMatch(/merge role would need 500 %/);
    expect(plan(workload({ eventsPerSecond: 100_000, subjects: 1_000_000, merge: false }), C).warnings.join('\n')).not.toMatch(/merge/);
  });

  it("warns when a pipeline replica's state outgrows its heap, naming the biggest part", () => {
    // 1,000 ev/s with corrections: 1,000 x (35 d + half a month) contributions x 500 B = about 2 TiB.
    const p = plan(workload({ eventsPerSecond: 1_000, subjects: 10_000 }), C);
    expect(p.warnings.join('\n')).toMatch(/a pipeline replica's state is \d+ GiB of heap, over 16 GiB, most of it contributions \(corrections\)/);
    const q = plan(workload({ eventsPerSecond: 1_000, subjects: 10_000, corrections: false, dedupeWindowMs: 3_600_000, allowedLatenessMs: 86_400_000 }), C);
    expect(q.warnings.join('\n')).not.toMatch(/state is/);
  });

  it('uses the aggregates topic bytes for the api store when lmdb is not measured, and says so', () => {
    const p = plan(workload({ eventsPerSecond: 1_000, subjects: 10_000 }), { ...C, apiStoreBytesPerAggregate: null });
    expect(p.api.storeBytesMeasured).toBe(false);
    expect(p.api.storeBytes).toBeCloseTo(p.api.aggregates * 180, 3);
  });

  const rates = fc.double({ min: 1, max: 1e6, noNaN: true });
  const subjects = fc.integer({ min: 1, max: 1e8 });

  it('more events never need fewer replicas, less memory or fewer bytes', () => {
    fc.assert(
      fc.property(rates, rates, subjects, fc.boolean(), (a, b, s, merge) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const p = plan(workload({ eventsPerSecond: lo, subjects: s, merge }), C);
        const q = plan(workload({ eventsPerSecond: hi, subjects: s, merge }), C);
        expect(q.pipeline.replicas).toBeGreaterThanOrEqual(p.pipeline.replicas);
        expect(q.api.replicas).toBeGreaterThanOrEqual(p.api.replicas);
        expect(q.partitions).toBeGreaterThanOrEqual(p.partitions);
        expect(q.pipeline.memoryBytes).toBeGreaterThanOrEqual(p.pipeline.memoryBytes * (1 - 1e-9));
        expect(q.storedBytes).toBeGreaterThanOrEqual(p.storedBytes * (1 - 1e-9));
        expect(q.api.aggregates).toBeGreaterThanOrEqual(p.api.aggregates * (1 - 1e-9));
        expect(q.merge.share).toBeGreaterThanOrEqual(p.merge.share);
      }),
    );
  });

  it('more subjects never mean fewer aggregates, less api store or fewer api replicas', () => {
    fc.assert(
      fc.property(rates, subjects, subjects, (r, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const p = plan(workload({ eventsPerSecond: r, subjects: lo }), C);
        const q = plan(workload({ eventsPerSecond: r, subjects: hi }), C);
        expect(q.api.aggregates).toBeGreaterThanOrEqual(p.api.aggregates * (1 - 1e-9));
        expect(q.api.storeBytes).toBeGreaterThanOrEqual(p.api.storeBytes * (1 - 1e-9));
        expect(q.api.replicas).toBeGreaterThanOrEqual(p.api.replicas);
        expect(q.pipeline.openAggregates).toBeGreaterThanOrEqual(p.pipeline.openAggregates * (1 - 1e-9));
      }),
    );
  });

  it('more replicas of the read side never hold more per replica, and every figure is finite', () => {
    fc.assert(
      fc.property(rates, subjects, fc.integer({ min: 1, max: 64 }), (r, s, min) => {
        const p = plan(workload({ eventsPerSecond: r, subjects: s, minApiReplicas: min, partitions: 64 }), C);
        const q = plan(workload({ eventsPerSecond: r, subjects: s, minApiReplicas: min + 1, partitions: 64 }), C);
        expect(q.api.storePerReplicaBytes).toBeLessThanOrEqual(p.api.storePerReplicaBytes * (1 + 1e-9));
        expect(q.api.restoreSeconds).toBeLessThanOrEqual(p.api.restoreSeconds * (1 + 1e-9));
        for (const v of [p.brokerWriteBytesPerSecond, p.storedBytes, p.pipeline.memoryPerReplicaBytes, p.pipeline.restoreSeconds, p.api.storePerReplicaBytes, p.aggregateRecordsPerEvent]) {
          expect(Number.isFinite(v) && v >= 0).toBe(true);
        }
        // Coalescing never writes more aggregate records than the event updates.
        expect(p.aggregateRecordsPerEvent).toBeLessThanOrEqual(p.aggregatesPerEvent * (1 + 1e-9));
      }),
    );
  });
});
