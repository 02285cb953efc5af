import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BadRecordError,
  BadServiceTimeError,
  ClockSkewError,
  HybridClock,
  MAX_SERVICE_TIME,
  formatServiceTime,
  formatTimeContext,
  makeServiceTime,
  parseServiceTime,
  readTimeContext,
  receiveTimeContext,
  sendTimeContext,
} from '../../src/client/index.js';

const T0 = 1_800_000_000_000;
const serviceTime = fc.bigInt({ min: 0n, max: MAX_SERVICE_TIME });
const node = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 255 });

function clockAt(ms: number, nodeId = 'svc-a'): { clock: HybridClock; physical: { ms: number; now(): number } } {
  const physical = { ms, now: () => physical.ms };
  return { clock: new HybridClock({ node: nodeId, physical }), physical };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('time-context header codecs', () => {
  it('round-trips any stamp through formatTimeContext and readTimeContext, as record headers and as fetch Headers', () => {
    fc.assert(
      fc.property(serviceTime, node, (time, id) => {
        const headers = formatTimeContext({ time, node: id });
        expect(headers['service-time']).toMatch(/^[0-9a-f]{16}$/);
        expect(readTimeContext(headers)).toEqual({ time, node: id });
        expect(parseServiceTime(headers['service-time'])).toBe(time);
        // A clock whose physical time is the stamp's millisecond accepts it (skew 0).
        const { clock } = clockAt(Number(time >> 16n));
        if (time < MAX_SERVICE_TIME) {
          expect(receiveTimeContext(clock, new Headers(Object.entries(headers)))).toEqual({ time, node: id });
          expect(clock.last).toBe(time + 1n);
        }
      }),
    );
  });

  it('string order of formatted times is numeric order', () => {
    fc.assert(
      fc.property(serviceTime, serviceTime, (a, b) => {
        const [x, y] = [formatServiceTime(a), formatServiceTime(b)];
        expect(x < y).toBe(a < b);
      }),
    );
  });

  it('refuses to format a node id no receiver accepts', () => {
    expect(() => formatTimeContext({ time: 1n, node: 'has space' })).toThrow(RangeError);
    expect(() => formatTimeContext({ time: 1n, node: '' })).toThrow(RangeError);
    expect(() => formatTimeContext({ time: 1n, node: 'x'.repeat(256) })).toThrow(RangeError);
    expect(() => sendTimeContext(new HybridClock({ node: 'é' }))).toThrow(RangeError);
  });

  it('sendTimeContext issues strictly increasing stamps of the clock', () => {
    const { clock, physical } = clockAt(T0);
    const seen: bigint[] = [];
    for (let i = 0; i < 50; i += 1) {
      if (i % 7 === 0) physical.ms += i % 2 === 0 ? 5 : -1_000; // the wall clock steps both ways
      const headers = sendTimeContext(clock);
      expect(headers['service-node']).toBe('svc-a');
      seen.push(parseServiceTime(headers['service-time']));
    }
    for (let i = 1; i < seen.length; i += 1) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
  });
});

describe('receiveTimeContext', () => {
  it('moves the clock above the received time, from node:http, fetch and kafkajs header shapes', () => {
    const remote = makeServiceTime(T0 + 200, 7);
    for (const headers of [
      { 'service-time': formatServiceTime(remote), 'service-node': 'b' },
      new Headers({ 'service-time': formatServiceTime(remote) }),
      { 'service-time': Buffer.from(formatServiceTime(remote)), 'service-node': [Buffer.from('b')] },
    ]) {
      const { clock } = clockAt(T0);
      expect(receiveTimeContext(clock, headers)?.time).toBe(remote);
      expect(clock.last).toBe(remote + 1n);
      expect(clock.now()).toBeGreaterThan(remote);
    }
  });

  it('leaves the clock alone without a context', () => {
    const { clock } = clockAt(T0);
    expect(receiveTimeContext(clock, {})).toBeUndefined();
    expect(receiveTimeContext(clock, new Headers())).toBeUndefined();
    expect(clock.last).toBe(0n);
  });

  it('is strict: malformed, repeated (fetch joins them with ", ") or node-only contexts throw bad-service-time and change nothing', () => {
    const good = formatServiceTime(makeServiceTime(T0, 1));
    const cases = [
      { 'service-time': good.toUpperCase() },
      { 'service-time': `0x${good.slice(2)}` },
      { 'service-time': ` ${good}` },
      { 'service-time': good.slice(1) },
      { 'service-time': [good, good] },
      { 'service-node': 'b' },
      { 'service-time': good, 'service-node': 'two words' },
      new Headers([
        ['service-time', good],
        ['service-time', good],
      ]),
    ];
    for (const headers of cases) {
      const { clock } = clockAt(T0);
      const error = thrown(() => receiveTimeContext(clock, headers));
      expect(error).toBeInstanceOf(BadRecordError);
      expect((error as BadRecordError).reason).toBe('bad-service-time');
      expect(clock.last).toBe(0n);
    }
    expect(thrown(() => receiveTimeContext(clockAt(T0).clock, { 'service-time': 'nope' }))).toBeInstanceOf(BadServiceTimeError);
  });

  it('refuses a time beyond the skew bound with clock-skew and keeps the clock, and accepts one exactly at it', () => {
    const { clock } = clockAt(T0);
    const ahead = formatServiceTime(makeServiceTime(T0 + 501, 0));
    const error = thrown(() => receiveTimeContext(clock, { 'service-time': ahead }));
    expect(error).toBeInstanceOf(ClockSkewError);
    expect((error as ClockSkewError).reason).toBe('clock-skew');
    expect(clock.last).toBe(0n);
    expect(receiveTimeContext(clock, { 'service-time': formatServiceTime(makeServiceTime(T0 + 500, 0)) })).toBeDefined();
    expect(clock.last).toBe(makeServiceTime(T0 + 500, 1));
  });
});
