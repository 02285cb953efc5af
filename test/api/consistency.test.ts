import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CommittedPosition, type ConsistencyOutcome, ConsistencyWaiter } from '../../src/api/consistency.js';
import { encodePositionMetadata } from '../../src/model/position-metadata.js';

const AGG = 'usage-aggregates';
const IN = 'usage-events';
const POLL = 50;

/** A pipeline and a read model whose positions the test moves by hand. */
class FakePositions {
  readonly committed = new Map<number, CommittedPosition>([
    [0, { offset: -1n, metadata: null }],
    [1, { offset: -1n, metadata: null }],
  ]);
  readonly applied = new Map<number, bigint>();
  readonly ends = new Map<number, bigint>();
  fetches = 0;
  endFetches = 0;
  failNext = 0;

  commit(partition: number, offset: bigint, aggregatesEnd?: bigint): void {
    const metadata = aggregatesEnd === undefined ? null : encodePositionMetadata({ ends: new Map([[AGG, aggregatesEnd]]) });
    this.committed.set(partition, { offset, metadata });
  }

  sources() {
    return {
      committed: () => {
        this.fetches += 1;
        if (this.failNext > 0) {
          this.failNext -= 1;
          return Promise.reject(new Error('broker away'));
        }
        return Promise.resolve(new Map(this.committed));
      },
      applied: () => new Map(this.applied),
      endOffsets: () => {
        this.endFetches += 1;
        return Promise.resolve(new Map(this.ends));
      },
    };
  }
}

function at(partition: number, offset: number) {
  return { topic: IN, partition, offset: String(offset) };
}

/** The outcome once settled, or 'pending'. */
function track(promise: Promise<ConsistencyOutcome>): () => ConsistencyOutcome | 'pending' {
  let outcome: ConsistencyOutcome | 'pending' = 'pending';
  void promise.then((o) => (outcome = o));
  return () => outcome;
}

describe('ConsistencyWaiter (read-your-writes)', () => {
  let fake: FakePositions;
  let waiter: ConsistencyWaiter;

  beforeEach(() => {
    vi.useFakeTimers();
    fake = new FakePositions();
    waiter = new ConsistencyWaiter({ aggregatesTopic: AGG, sources: fake.sources(), pollMs: POLL });
  });

  afterEach(() => {
    waiter.close();
    vi.useRealTimers();
  });

  it('answers once the pipeline committed past the offset AND the read model read the aggregates that commit wrote', async () => {
    const outcome = track(waiter.wait([at(0, 10)], 10_000));
    await vi.advanceTimersByTimeAsync(POLL * 2);
    expect(outcome()).toBe('pending');
    fake.commit(0, 10n, 100n); // position 10 = offset 10 not processed yet
    await vi.advanceTimersByTimeAsync(POLL * 2);
    expect(outcome()).toBe('pending');
    fake.commit(0, 11n, 120n);
    fake.applied.set(0, 119n);
    await vi.advanceTimersByTimeAsync(POLL * 2);
    expect(outcome()).toBe('pending');
    fake.applied.set(0, 120n);
    await vi.advanceTimersByTimeAsync(POLL);
    expect(outcome()).toEqual({ consistent: true });
  });

  it('past the bound answers what is still awaited, per partition and stage', async () => {
    fake.commit(1, 6n, 40n);
    fake.applied.set(1, 30n);
    fake.commit(0, 3n, 7n);
    const outcome = track(waiter.wait([at(0, 4), at(1, 5), at(1, 2)], 1_000));
    await vi.advanceTimersByTimeAsync(999);
    expect(outcome()).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome()).toEqual({
      consistent: false,
      awaiting: [
        { partition: 0, offset: '4', waitingFor: 'pipeline', committedOffset: '3', aggregatesOffset: null, appliedOffset: '0' },
        { partition: 1, offset: '5', waitingFor: 'read-model', committedOffset: '6', aggregatesOffset: '40', appliedOffset: '30' },
      ],
    });
    expect(waiter.waiting).toBe(0);
  });

  it('polls the committed positions once per tick for every waiting request, and not at all when no one waits', async () => {
    const outcomes = Array.from({ length: 50 }, (_, i) => track(waiter.wait([at(i % 2, i)], 10_000)));
    await vi.advanceTimersByTimeAsync(POLL * 10);
    expect(fake.fetches).toBeGreaterThanOrEqual(10);
    expect(fake.fetches).toBeLessThanOrEqual(11);
    fake.commit(0, 100n, 5n);
    fake.commit(1, 100n, 5n);
    fake.applied.set(0, 5n).set(1, 5n);
    await vi.advanceTimersByTimeAsync(POLL * 2);
    expect(outcomes.map((o) => o())).toEqual(outcomes.map(() => ({ consistent: true })));
    const fetches = fake.fetches;
    await vi.advanceTimersByTimeAsync(POLL * 20);
    expect(fake.fetches).toBe(fetches);
  });

  it('a position committed without Ordo metadata waits for the aggregates end offsets seen after the commit', async () => {
    fake.commit(0, 9n);
    fake.ends.set(0, 55n);
    fake.applied.set(0, 54n);
    const outcome = track(waiter.wait([at(0, 8)], 10_000));
    await vi.advanceTimersByTimeAsync(POLL * 3);
    expect(outcome()).toBe('pending');
    expect(fake.endFetches).toBe(1); // the target is taken once
    fake.applied.set(0, 55n);
    await vi.advanceTimersByTimeAsync(POLL);
    expect(outcome()).toEqual({ consistent: true });
  });

  it('a partition the input topic does not have is answered at once', async () => {
    const outcome = track(waiter.wait([at(0, 1), at(7, 1)], 10_000));
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome()).toEqual({ consistent: false, unknownPartitions: [7] });
  });

  it('rides out failing fetches until the bound', async () => {
    fake.failNext = 3;
    fake.commit(0, 2n, 1n);
    fake.applied.set(0, 1n);
    const outcome = track(waiter.wait([at(0, 1)], 10_000));
    await vi.advanceTimersByTimeAsync(POLL * 2);
    expect(outcome()).toBe('pending');
    await vi.advanceTimersByTimeAsync(POLL * 3);
    expect(outcome()).toEqual({ consistent: true });
  });

  it('a failure retrying cannot fix (a missing ACL) ends every wait at once as unavailable', async () => {
    const fatal = new ConsistencyWaiter({
      aggregatesTopic: AGG,
      sources: { ...fake.sources(), committed: () => Promise.reject(new Error('GROUP_AUTHORIZATION_FAILED')) },
      pollMs: POLL,
      describeFatal: (error) => (error instanceof Error && error.message.includes('AUTHORIZATION') ? 'not authorized' : undefined),
    });
    const outcome = track(fatal.wait([at(0, 1)], 10_000));
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome()).toEqual({ consistent: false, unavailable: true });
    expect(fatal.waiting).toBe(0);
  });

  it('no positions: consistent at once; close() ends every wait', async () => {
    expect(await waiter.wait([], 10_000)).toEqual({ consistent: true });
    const outcome = track(waiter.wait([at(0, 1)], 10_000));
    waiter.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(outcome()).toEqual({ consistent: false, awaiting: [expect.objectContaining({ partition: 0, waitingFor: 'pipeline' })] });
  });
});
