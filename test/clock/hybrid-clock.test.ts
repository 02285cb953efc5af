import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRecordError, ClockSkewError } from '../../src/errors.js';
import {
  DEFAULT_MAX_SKEW_MS,
  HybridClock,
  MAX_COUNTER,
  MAX_MILLIS,
  MAX_SERVICE_TIME,
  counterOf,
  makeServiceTime,
  millisOf,
  systemClock,
  type PhysicalClock,
  type ServiceTime,
} from '../../src/clock/index.js';

const T0 = 1_700_000_000_000;

/** A wall clock the test controls: set, step forwards, step backwards. */
class FakeClock implements PhysicalClock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

function clockAt(ms: number, options: { maxSkewMs?: number; initial?: ServiceTime; node?: string } = {}) {
  const physical = new FakeClock(ms);
  const clock = new HybridClock({ physical, ...options, node: options.node ?? 'n1' });
  return { physical, clock };
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

/**
 * Independent reference: the paper's rules on separate (l, c) numbers, with
 * counter overflow carried into l. The clock must match it value for value.
 */
class ReferenceHlc {
  constructor(
    private l: number,
    private c: number,
    private readonly maxSkewMs: number,
  ) {}

  get value(): ServiceTime {
    return makeServiceTime(this.l, this.c);
  }

  send(pt: number): ServiceTime {
    const l = Math.max(this.l, pt);
    this.c = l === this.l ? this.c + 1 : 0;
    this.l = l;
    this.carry();
    return this.value;
  }

  /** undefined = rejected for skew, state untouched. */
  receive(m: ServiceTime, pt: number): ServiceTime | undefined {
    const lm = millisOf(m);
    const cm = counterOf(m);
    if (lm - pt > this.maxSkewMs) return undefined;
    const l = Math.max(this.l, lm, pt);
    if (l === this.l && l === lm) this.c = Math.max(this.c, cm) + 1;
    else if (l === this.l) this.c += 1;
    else if (l === lm) this.c = cm + 1;
    else this.c = 0;
    this.l = l;
    this.carry();
    return this.value;
  }

  witness(t: ServiceTime): void {
    if (t > this.value) {
      this.l = millisOf(t);
      this.c = counterOf(t);
    }
  }

  private carry(): void {
    if (this.c > MAX_COUNTER) {
      this.l += 1;
      this.c = 0;
    }
  }
}

describe('HybridClock basics', () => {
  it('exposes node, default skew and last = 0n before any event', () => {
    const { clock } = clockAt(T0, { node: 'worker-7' });
    expect(clock.node).toBe('worker-7');
    expect(clock.maxSkewMs).toBe(DEFAULT_MAX_SKEW_MS);
    expect(DEFAULT_MAX_SKEW_MS).toBe(500);
    expect(clock.last).toBe(0n);
  });

  it('takes physical time with counter 0, counts within a millisecond, resets when pt moves', () => {
    const { physical, clock } = clockAt(T0);
    expect(clock.now()).toBe(makeServiceTime(T0, 0));
    expect(clock.now()).toBe(makeServiceTime(T0, 1));
    expect(clock.now()).toBe(makeServiceTime(T0, 2));
    expect(clock.last).toBe(makeServiceTime(T0, 2));
    physical.ms = T0 + 1;
    expect(clock.now()).toBe(makeServiceTime(T0 + 1, 0));
    physical.ms = T0 + 5_000;
    expect(clock.now()).toBe(makeServiceTime(T0 + 5_000, 0));
  });

  it('keeps counting from its state when the wall clock steps backwards', () => {
    const { physical, clock } = clockAt(T0);
    clock.now();
    clock.now();
    physical.ms = T0 - 60_000;
    expect(clock.now()).toBe(makeServiceTime(T0, 2));
    expect(clock.now()).toBe(makeServiceTime(T0, 3));
    physical.ms = T0; // back to where it was: still not ahead of l
    expect(clock.now()).toBe(makeServiceTime(T0, 4));
    physical.ms = T0 + 1;
    expect(clock.now()).toBe(makeServiceTime(T0 + 1, 0));
  });

  it('uses the system clock by default', () => {
    const clock = new HybridClock({ node: 'n' });
    const before = Date.now();
    const t = clock.now();
    const after = Date.now();
    expect(millisOf(t)).toBeGreaterThanOrEqual(before);
    expect(millisOf(t)).toBeLessThanOrEqual(after);
    const sys = systemClock.now();
    expect(sys).toBeGreaterThanOrEqual(after);
    expect(Number.isInteger(sys)).toBe(true);
  });

  it('truncates a sub-millisecond physical clock instead of resetting the counter', () => {
    const { physical, clock } = clockAt(T0 + 0.2);
    expect(clock.now()).toBe(makeServiceTime(T0, 0));
    physical.ms = T0 + 0.9;
    expect(clock.now()).toBe(makeServiceTime(T0, 1));
    physical.ms = T0 + 1.1;
    expect(clock.now()).toBe(makeServiceTime(T0 + 1, 0));
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, MAX_MILLIS + 1])(
    'rejects a physical clock reading of %s with RangeError and keeps its state',
    (reading) => {
      const { physical, clock } = clockAt(T0);
      const t = clock.now();
      physical.ms = reading;
      expect(() => clock.now()).toThrow(RangeError);
      expect(() => clock.receive(t)).toThrow(RangeError);
      expect(clock.last).toBe(t);
    },
  );

  it('starts from the initial value', () => {
    const initial = makeServiceTime(T0 + 10_000, 9);
    const { clock } = clockAt(T0, { initial });
    expect(clock.last).toBe(initial);
    expect(clock.now()).toBe(initial + 1n);
  });

  it.each([
    ['empty node', { node: '' }],
    ['negative maxSkewMs', { node: 'n', maxSkewMs: -1 }],
    ['NaN maxSkewMs', { node: 'n', maxSkewMs: Number.NaN }],
    ['negative initial', { node: 'n', initial: -1n }],
    ['initial above uint64', { node: 'n', initial: MAX_SERVICE_TIME + 1n }],
  ])('constructor rejects %s with RangeError', (_label, options) => {
    expect(() => new HybridClock(options)).toThrow(RangeError);
  });

  it('rejects out-of-range arguments to receive and witness with RangeError', () => {
    const { clock } = clockAt(T0);
    expect(() => clock.receive(-1n)).toThrow(RangeError);
    expect(() => clock.receive(MAX_SERVICE_TIME + 1n)).toThrow(RangeError);
    expect(() => clock.witness(-1n)).toThrow(RangeError);
    expect(() => clock.witness(MAX_SERVICE_TIME + 1n)).toThrow(RangeError);
    expect(clock.last).toBe(0n);
  });
});

describe('HybridClock receive', () => {
  it('returns more than a remote time from the past and than its own last', () => {
    const { clock } = clockAt(T0);
    clock.now();
    clock.now();
    expect(clock.receive(makeServiceTime(T0 - 100, 500))).toBe(makeServiceTime(T0, 2));
  });

  it('adopts a remote time ahead of it within the skew bound, then counts from it', () => {
    const { clock } = clockAt(T0, { maxSkewMs: 500 });
    clock.now();
    const remote = makeServiceTime(T0 + 300, 7);
    expect(clock.receive(remote)).toBe(remote + 1n);
    expect(clock.now()).toBe(remote + 2n);
  });

  it('uses max(c, c_m) + 1 when l, l_m and pt are equal', () => {
    const { clock } = clockAt(T0);
    clock.now(); // (T0, 0)
    expect(clock.receive(makeServiceTime(T0, 40))).toBe(makeServiceTime(T0, 41));
    expect(clock.receive(makeServiceTime(T0, 3))).toBe(makeServiceTime(T0, 42));
  });

  it('takes pt with counter 0 when physical time is ahead of both', () => {
    const { physical, clock } = clockAt(T0);
    clock.now();
    physical.ms = T0 + 10;
    expect(clock.receive(makeServiceTime(T0 + 5, 99))).toBe(makeServiceTime(T0 + 10, 0));
  });

  it('carries a received counter of 0xffff into the millisecond field', () => {
    const { clock } = clockAt(T0);
    expect(clock.receive(makeServiceTime(T0 + 1, MAX_COUNTER))).toBe(makeServiceTime(T0 + 2, 0));
  });

  it('accepts exactly pt + maxSkewMs and rejects pt + maxSkewMs + 1 (default 500)', () => {
    const { clock } = clockAt(T0);
    const tooFar = makeServiceTime(T0 + 501, 0);
    const error = catchError(() => clock.receive(tooFar));
    expect(error).toBeInstanceOf(ClockSkewError);
    expect(error).toBeInstanceOf(BadRecordError);
    expect((error as ClockSkewError).reason).toBe('clock-skew');
    expect((error as ClockSkewError).skewMs).toBe(501);
    expect((error as ClockSkewError).message).toContain('max 500 ms');
    expect(clock.last).toBe(0n);

    const edge = makeServiceTime(T0 + 500, MAX_COUNTER - 1);
    expect(clock.receive(edge)).toBe(edge + 1n);
  });

  it('leaves the state unchanged after a skew rejection', () => {
    const a = clockAt(T0, { maxSkewMs: 20 });
    const b = clockAt(T0, { maxSkewMs: 20 });
    for (const { clock } of [a, b]) {
      clock.now();
      clock.receive(makeServiceTime(T0 + 15, 3));
    }
    const lastBefore = a.clock.last;
    expect(() => a.clock.receive(makeServiceTime(T0 + 21, 0))).toThrow(ClockSkewError);
    expect(a.clock.last).toBe(lastBefore);
    expect(a.clock.now()).toBe(b.clock.now());
  });

  it('with maxSkewMs 0 rejects any remote time in a later millisecond than pt', () => {
    const { clock } = clockAt(T0, { maxSkewMs: 0 });
    expect(clock.receive(makeServiceTime(T0, MAX_COUNTER - 1))).toBe(makeServiceTime(T0, MAX_COUNTER));
    expect(() => clock.receive(makeServiceTime(T0 + 1, 0))).toThrow(ClockSkewError);
  });
});

describe('HybridClock counter overflow and exhaustion', () => {
  it('70,000 now() calls at a frozen pt carry into millis and stay strictly increasing', () => {
    const { clock } = clockAt(T0);
    const start = makeServiceTime(T0, 0);
    let previous = -1n;
    for (let i = 0; i < 70_000; i++) {
      const t = clock.now();
      if (t <= previous) expect.fail(`call ${i}: ${t} <= ${previous}`);
      if (t !== start + BigInt(i)) expect.fail(`call ${i}: ${t} !== start + ${i}`);
      previous = t;
    }
    expect(previous).toBe(makeServiceTime(T0 + 1, 70_000 - 1 - 65_536));
    expect(millisOf(previous)).toBe(T0 + 1);
  });

  it('after a carry, pt equal to the carried millis keeps counting; pt beyond it resets', () => {
    const { physical, clock } = clockAt(T0);
    for (let i = 0; i <= MAX_COUNTER; i++) clock.now();
    expect(clock.last).toBe(makeServiceTime(T0, MAX_COUNTER));
    expect(clock.now()).toBe(makeServiceTime(T0 + 1, 0));
    physical.ms = T0 + 1;
    expect(clock.now()).toBe(makeServiceTime(T0 + 1, 1));
    physical.ms = T0 + 2;
    expect(clock.now()).toBe(makeServiceTime(T0 + 2, 0));
  });

  it('throws RangeError instead of wrapping past 2^64 - 1, keeping its state', () => {
    const { clock } = clockAt(T0);
    clock.witness(MAX_SERVICE_TIME - 1n);
    expect(clock.now()).toBe(MAX_SERVICE_TIME);
    expect(() => clock.now()).toThrow(RangeError);
    expect(() => clock.receive(makeServiceTime(T0, 0))).toThrow(RangeError);
    expect(clock.last).toBe(MAX_SERVICE_TIME);
  });

  it('throws RangeError when a carry would leave the 48-bit millisecond field', () => {
    const { clock } = clockAt(T0, { initial: makeServiceTime(MAX_MILLIS, MAX_COUNTER - 1) });
    expect(clock.now()).toBe(MAX_SERVICE_TIME);
    expect(() => clock.now()).toThrow(RangeError);
  });
});

describe('HybridClock witness', () => {
  it('makes the next now() and receive() greater than a time far ahead of pt, without a skew check', () => {
    const { clock } = clockAt(T0, { maxSkewMs: 500 });
    clock.now();
    const adopted = makeServiceTime(T0 + 3_600_000, 12);
    clock.witness(adopted);
    expect(clock.last).toBe(adopted);
    expect(clock.now()).toBe(adopted + 1n);
    expect(clock.receive(makeServiceTime(T0, 0))).toBe(adopted + 2n);
  });

  it('never lowers the state', () => {
    const { clock } = clockAt(T0);
    const t = clock.now();
    clock.witness(makeServiceTime(T0 - 1, 0));
    clock.witness(t);
    expect(clock.last).toBe(t);
    expect(clock.now()).toBe(t + 1n);
  });

  it('property: after witness(t), now() > t and receive() > t for any t', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: MAX_SERVICE_TIME - 2n }),
        fc.integer({ min: -1_000_000, max: 1_000_000 }),
        (t, ptOffset) => {
          const { clock } = clockAt(T0 + ptOffset);
          clock.witness(t);
          const a = clock.now();
          expect(a).toBeGreaterThan(t);
          const b = clock.receive(makeServiceTime(T0 + ptOffset, 0));
          expect(b).toBeGreaterThan(a);
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------
// Simulated network: several nodes with independently drifting wall clocks
// (including steps backwards and jumps), a bag of in-flight messages that the
// network delivers in any order, late, or more than once.

type Action =
  | { kind: 'tick'; node: number; delta: number }
  | { kind: 'now'; node: number }
  | { kind: 'send'; node: number; to: number }
  | { kind: 'deliver'; pick: number; keep: boolean }
  | { kind: 'inject'; node: number; fromSkew: boolean; ahead: number; counter: number }
  | { kind: 'witness'; node: number; ahead: number; counter: number };

interface Stats {
  accepted: number;
  rejected: number;
  duplicates: number;
  backwards: number;
  resets: number;
  carries: number;
}

const nodeIndex = fc.nat(3);
const delta = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 2, arbitrary: fc.integer({ min: -50, max: 50 }) },
  { weight: 1, arbitrary: fc.integer({ min: -5_000, max: 5_000 }) },
);
const counter = fc.oneof(fc.constantFrom(0, MAX_COUNTER - 1, MAX_COUNTER), fc.integer({ min: 0, max: MAX_COUNTER }));

const networkAction: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), node: nodeIndex, delta }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('now' as const), node: nodeIndex }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('send' as const), node: nodeIndex, to: nodeIndex }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), keep: fc.boolean() }) },
);

const faultAction: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: networkAction },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.record({
        kind: fc.constant('inject' as const),
        node: nodeIndex,
        fromSkew: fc.constant(true),
        ahead: fc.integer({ min: -2, max: 2 }),
        counter,
      }),
      fc.record({
        kind: fc.constant('inject' as const),
        node: nodeIndex,
        fromSkew: fc.constant(false),
        ahead: fc.integer({ min: -3_000, max: 3_000 }),
        counter,
      }),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('witness' as const),
      node: nodeIndex,
      ahead: fc.integer({ min: -2_000, max: 3_600_000 }),
      counter,
    }),
  },
);

const scenario = (action: fc.Arbitrary<Action>) =>
  fc.record({
    offsets: fc.array(fc.integer({ min: -1_000, max: 1_000 }), { minLength: 2, maxLength: 4 }),
    maxSkewMs: fc.constantFrom(0, 1, 50, 500),
    actions: fc.array(action, { maxLength: 300, size: 'max' }),
  });

interface Message {
  time: ServiceTime;
  to: number;
}

/**
 * Runs a schedule and checks, at every event, the clock against the
 * reference model and the HLC invariants. `ceiling` additionally checks
 * that no node's millis exceed its highest physical reading + maxSkewMs
 * (only true without witness/inject, which may legitimately exceed it).
 */
function runScenario(
  input: { offsets: number[]; maxSkewMs: number; actions: Action[] },
  ceiling: boolean,
  stats: Stats,
): void {
  const { offsets, maxSkewMs, actions } = input;
  const n = offsets.length;
  const physical = offsets.map((offset) => new FakeClock(T0 + offset));
  const clocks = physical.map((p, i) => new HybridClock({ node: `node-${i}`, physical: p, maxSkewMs }));
  const models = offsets.map(() => new ReferenceHlc(0, 0, maxSkewMs));
  // Everything a node's next result must exceed: its own results, accepted remotes, witnessed times.
  const mustExceed = offsets.map(() => -1n);
  const maxPt = offsets.map(() => Number.NEGATIVE_INFINITY);
  const bag: Message[] = [];

  const issued = (i: number, result: ServiceTime, expected: ServiceTime | undefined, before: ServiceTime, pt: number) => {
    expect(result).toBe(expected);
    expect(result).toBeGreaterThan(mustExceed[i]!); // strict monotonicity + causality
    expect(millisOf(result)).toBeGreaterThanOrEqual(pt); // l >= pt
    expect(clocks[i]!.last).toBe(result);
    if (ceiling) expect(millisOf(result)).toBeLessThanOrEqual(maxPt[i]! + maxSkewMs);
    // Counter 0 above pt only arises from a counter overflow carried into millis.
    if (counterOf(result) === 0 && millisOf(result) > pt && result > before) stats.carries++;
    mustExceed[i] = result;
  };

  const receiveAt = (i: number, remote: ServiceTime) => {
    const clock = clocks[i]!;
    const pt = physical[i]!.ms;
    maxPt[i] = Math.max(maxPt[i]!, pt);
    const before = clock.last;
    const expected = models[i]!.receive(remote, pt);
    const skew = millisOf(remote) - pt;
    if (skew > maxSkewMs) {
      const error = catchError(() => clock.receive(remote));
      expect(error).toBeInstanceOf(ClockSkewError);
      expect((error as ClockSkewError).skewMs).toBe(skew);
      expect((error as ClockSkewError).reason).toBe('clock-skew');
      expect(expected).toBeUndefined();
      expect(clock.last).toBe(before); // unchanged; the model comparison checks the next results too
      stats.rejected++;
      return;
    }
    const result = clock.receive(remote);
    stats.accepted++;
    expect(result).toBeGreaterThan(remote);
    expect(millisOf(result)).toBeLessThanOrEqual(Math.max(millisOf(before + 1n), millisOf(remote + 1n), pt));
    if (pt > Math.max(millisOf(before), millisOf(remote))) {
      expect(result).toBe(makeServiceTime(pt, 0));
      stats.resets++;
    }
    issued(i, result, expected, before, pt);
    // Causality: later results at this node must exceed the received time (implied by result > remote).
  };

  const localEvent = (i: number): ServiceTime => {
    const clock = clocks[i]!;
    const pt = physical[i]!.ms;
    maxPt[i] = Math.max(maxPt[i]!, pt);
    const before = clock.last;
    const result = clock.now();
    if (pt > millisOf(before)) {
      expect(result).toBe(makeServiceTime(pt, 0)); // counter resets when pt moves ahead
      stats.resets++;
    }
    issued(i, result, models[i]!.send(pt), before, pt);
    return result;
  };

  for (const action of actions) {
    switch (action.kind) {
      case 'tick': {
        const p = physical[action.node % n]!;
        p.ms += action.delta;
        if (action.delta < 0) stats.backwards++;
        break;
      }
      case 'now':
        localEvent(action.node % n);
        break;
      case 'send':
        bag.push({ time: localEvent(action.node % n), to: action.to % n });
        break;
      case 'deliver': {
        if (bag.length === 0) break;
        const index = action.pick % bag.length;
        const message = bag[index]!;
        if (action.keep) stats.duplicates++;
        else bag.splice(index, 1);
        receiveAt(message.to, message.time);
        break;
      }
      case 'inject': {
        const i = action.node % n;
        const pt = physical[i]!.ms;
        const ms = Math.max(0, pt + action.ahead + (action.fromSkew ? maxSkewMs : 0));
        receiveAt(i, makeServiceTime(ms, action.counter));
        break;
      }
      case 'witness': {
        const i = action.node % n;
        const t = makeServiceTime(Math.max(0, physical[i]!.ms + action.ahead), action.counter);
        const before = clocks[i]!.last;
        clocks[i]!.witness(t);
        models[i]!.witness(t);
        expect(clocks[i]!.last).toBe(before > t ? before : t);
        if (t > mustExceed[i]!) mustExceed[i] = t;
        break;
      }
    }
  }
}

const emptyStats = (): Stats => ({ accepted: 0, rejected: 0, duplicates: 0, backwards: 0, resets: 0, carries: 0 });

describe('HybridClock in a simulated network', () => {
  it('nodes exchanging reordered, delayed and duplicated messages keep monotonicity, causality, l >= pt and the skew bound', () => {
    const stats = emptyStats();
    fc.assert(
      fc.property(scenario(networkAction), (input) => runScenario(input, true, stats)),
      { numRuns: 200 },
    );
    // The generated schedules must actually exercise the interesting paths.
    expect(stats.accepted).toBeGreaterThan(100);
    expect(stats.rejected).toBeGreaterThan(100);
    expect(stats.duplicates).toBeGreaterThan(10);
    expect(stats.backwards).toBeGreaterThan(10);
    expect(stats.resets).toBeGreaterThan(100);
  });

  it('also holds with injected remote times at the skew edge, 0xffff counters and failover witness', () => {
    const stats = emptyStats();
    fc.assert(
      fc.property(scenario(faultAction), (input) => runScenario(input, false, stats)),
      { numRuns: 200 },
    );
    expect(stats.accepted).toBeGreaterThan(100);
    expect(stats.rejected).toBeGreaterThan(100);
    expect(stats.carries).toBeGreaterThan(0);
  });

  it('a rejected receive leaves the clock exactly as if it had not happened', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('tick' as const), delta }),
      fc.record({ kind: fc.constant('now' as const) }),
      fc.record({ kind: fc.constant('receive' as const), ahead: fc.integer({ min: -1_000, max: 0 }), counter }),
    );
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 50 }),
        fc.constantFrom(0, 1, 500),
        fc.integer({ min: 1, max: 10_000_000 }),
        counter,
        (steps, maxSkewMs, excess, badCounter) => {
          const a = clockAt(T0, { maxSkewMs });
          const b = clockAt(T0, { maxSkewMs });
          for (const s of steps) {
            for (const { physical, clock } of [a, b]) {
              if (s.kind === 'tick') physical.ms += s.delta;
              else if (s.kind === 'now') clock.now();
              else clock.receive(makeServiceTime(Math.max(0, physical.ms + s.ahead), s.counter));
            }
          }
          const bad = makeServiceTime(a.physical.ms + maxSkewMs + excess, badCounter);
          const error = catchError(() => a.clock.receive(bad));
          expect(error).toBeInstanceOf(ClockSkewError);
          expect((error as ClockSkewError).skewMs).toBe(maxSkewMs + excess);
          expect(a.clock.last).toBe(b.clock.last);
          expect(a.clock.now()).toBe(b.clock.now());
        },
      ),
    );
  });
});
