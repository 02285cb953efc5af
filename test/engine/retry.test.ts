import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { KafkaJSProtocolError } from 'kafkajs';
import { ConfigError, FencedError, TransientError } from '../../src/errors.js';
import { Liveness } from '../../src/engine/liveness.js';
import { QUIET_RETRY_MS, RepeatedFailures, backoffMs, normalWhileStarting, retrying } from '../../src/engine/retry.js';
import { type RecordedLine, recordingLogger } from '../support/logs.js';

/** A logger that keeps its lines, and a clock the fake sleep moves. */
function harness(stuckAfterMs = 60_000) {
  const lines: RecordedLine[] = [];
  const log = recordingLogger(lines);
  let now = 1_000_000;
  const clock = () => now;
  const liveness = new Liveness(stuckAfterMs, clock);
  const sleep = (ms: number) => {
    now += ms;
    return Promise.resolve();
  };
  return { lines, log, liveness, now: clock, sleep, advance: (ms: number) => (now += ms) };
}

const require = createRequire(import.meta.url);
const { createErrorFromCode } = require('kafkajs/src/protocol/error') as { createErrorFromCode(code: number): Error };
const protocol = (code: number): Error => new KafkaJSProtocolError(createErrorFromCode(code));
const notLeader = () => protocol(6);

/** Fails with `errors` in turn, then returns 'done'. */
function failing(errors: Error[]): { action: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    action: () => {
      const error = errors[calls++];
      return error === undefined ? Promise.resolve('done') : Promise.reject(error);
    },
    calls: () => calls,
  };
}

describe('backoffMs', () => {
  it('doubles from 100 ms up to 5 s, within ±20 % jitter', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const base = Math.min(5_000, 100 * 2 ** (attempt - 1));
        const delay = backoffMs(attempt, () => r);
        return delay >= Math.floor(base * 0.8) && delay <= Math.ceil(base * 1.2);
      }),
    );
    expect(backoffMs(1, () => 0.5)).toBe(100);
    expect(backoffMs(4, () => 0.5)).toBe(800);
    expect(backoffMs(40, () => 0.5)).toBe(5_000);
  });
});

describe('retrying', () => {
  it('retries transient errors until the action succeeds, warning once and saying when it recovered', async () => {
    const h = harness();
    const { action, calls } = failing([new TransientError('registry away'), new TransientError('registry away'), new TransientError('registry away')]);
    const result = await retrying(action, { what: 'batch', meta: { partition: 2 }, log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now });
    expect(result).toEqual({ ok: true, value: 'done' });
    expect(calls()).toBe(4);
    expect(h.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['batch failed; retrying']);
    expect(h.lines.filter((l) => l.level === 'info').map((l) => [l.msg, l.meta?.attempts])).toEqual([['batch succeeded after retrying', 4]]);
    expect(h.liveness.stuck()).toBeUndefined();
  });

  it('keeps a condition normal on a fresh broker at debug level while it is short', async () => {
    const h = harness();
    const { action } = failing([notLeader(), notLeader(), notLeader()]);
    const result = await retrying(action, { what: 'task start', log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now });
    expect(result.ok).toBe(true);
    expect(h.lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });

  it('warns once about a normal condition that lasts longer than QUIET_RETRY_MS', async () => {
    const h = harness();
    const { action } = failing(Array.from({ length: 12 }, notLeader));
    const result = await retrying(action, { what: 'task start', log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now });
    expect(result.ok).toBe(true);
    const warns = h.lines.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]!.msg).toBe('task start failed; retrying');
    expect(h.lines.some((l) => l.level === 'info' && l.msg === 'task start succeeded after retrying')).toBe(true);
    expect(QUIET_RETRY_MS).toBeLessThan(60_000);
  });

  it('gives up (exhausted) once the failures have lasted stuckAfterMs, and reports the streak to /healthz meanwhile', async () => {
    const h = harness(10_000);
    let stuckSeen: string | undefined;
    let calls = 0;
    const result = await retrying(
      () => {
        calls += 1;
        if (calls === 3) {
          h.advance(20_000); // an attempt that hangs past the bound: /healthz sees it
          stuckSeen = h.liveness.stuck()?.what;
        }
        return Promise.reject(new TransientError('broker away'));
      },
      { what: 'merge batch', meta: { partition: 0 }, log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now },
    );
    expect(result.ok).toBe(false);
    expect(!result.ok && result.why).toBe('exhausted');
    expect(stuckSeen).toBe('merge batch (partition 0)');
    expect(h.liveness.stuck()).toBeUndefined(); // the loop ended: the role's failure is what counts now
  });

  it('ends at once on fenced and fatal errors, and when abandoned', async () => {
    const h = harness();
    const base = { what: 'batch', log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now };
    const fenced = failing([new FencedError('newer producer')]);
    expect(await retrying(fenced.action, base)).toMatchObject({ ok: false, why: 'fenced' });
    const fatal = failing([new ConfigError('ORDO_GROUP_ID', 'bad')]);
    expect(await retrying(fatal.action, base)).toMatchObject({ ok: false, why: 'fatal' });
    const bug = failing([new TypeError('x is undefined')]);
    expect(await retrying(bug.action, base)).toMatchObject({ ok: false, why: 'fatal' });
    const revoked = failing([new TransientError('away')]);
    expect(await retrying(revoked.action, { ...base, abandoned: () => true })).toEqual({ ok: false, why: 'abandoned' });
    expect(fenced.calls() + fatal.calls() + bug.calls() + revoked.calls()).toBe(4);
    expect(h.lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });

  it('runs recover after a failure and between after the backoff; a throwing between ends the loop', async () => {
    const h = harness();
    const order: string[] = [];
    const { action } = failing([new TransientError('away')]);
    await retrying(
      async () => {
        order.push('attempt');
        return action();
      },
      { what: 'batch', log: h.log, liveness: h.liveness, now: h.now, sleep: (ms) => (order.push('sleep'), h.sleep(ms)), recover: () => Promise.resolve(void order.push('recover')), between: () => Promise.resolve(void order.push('heartbeat')) },
    );
    expect(order).toEqual(['attempt', 'recover', 'sleep', 'heartbeat', 'attempt']);
    const rebalancing = new Error('The group is rebalancing');
    await expect(
      retrying(failing([new TransientError('away')]).action, { what: 'batch', log: h.log, liveness: h.liveness, sleep: h.sleep, now: h.now, between: () => Promise.reject(rebalancing) }),
    ).rejects.toBe(rebalancing);
    expect(h.liveness.stuck()).toBeUndefined();
  });
});

describe('RepeatedFailures (a periodic action whose next run is the retry)', () => {
  it('counts a streak across runs, resets on success, and is exhausted after stuckAfterMs', () => {
    const h = harness(10_000);
    const failures = new RepeatedFailures({ what: 'idle tick', meta: { partition: 1 }, log: h.log, liveness: h.liveness, now: h.now });
    expect(failures.failed(new TransientError('away'))).toMatchObject({ ok: true });
    h.advance(6_000);
    expect(failures.failed(new TransientError('away'))).toMatchObject({ ok: true });
    failures.succeeded();
    h.advance(6_000);
    expect(failures.failed(new TransientError('away'))).toMatchObject({ ok: true }); // a new streak
    h.advance(10_000);
    expect(failures.failed(new TransientError('away'))).toMatchObject({ ok: false, why: 'exhausted' });
    expect(h.lines.filter((l) => l.level === 'warn')).toHaveLength(2); // one per streak
    expect(failures.failed(new FencedError('newer'))).toMatchObject({ ok: false, why: 'fenced' });
  });

  it('close() ends an open streak without a verdict, so a partition whose ticks stopped is not reported stuck', () => {
    const h = harness(10_000);
    const failures = new RepeatedFailures({ what: 'idle tick', meta: { partition: 4 }, log: h.log, liveness: h.liveness, now: h.now });
    failures.failed(new TransientError('away'));
    h.advance(11_000);
    expect(h.liveness.stuck()).toEqual({ what: 'idle tick (partition 4)', forMs: 11_000 });
    failures.close();
    expect(h.liveness.stuck()).toBeUndefined();
    expect(h.lines.filter((l) => l.msg.includes('succeeded'))).toEqual([]);
  });
});

describe('normalWhileStarting', () => {
  it('recognises leader, coordinator and unknown-topic conditions, also as a cause', () => {
    for (const code of [3, 5, 6, 14, 15, 16, 27, 51]) expect(normalWhileStarting(protocol(code)), `code ${code}`).toBe(true);
    expect(normalWhileStarting(protocol(29))).toBe(false); // TOPIC_AUTHORIZATION_FAILED
    expect(normalWhileStarting(new TransientError('transaction failed', { cause: protocol(14) }))).toBe(true);
    expect(normalWhileStarting(new TransientError('registry away'))).toBe(false);
    expect(normalWhileStarting(new Error('ECONNREFUSED'))).toBe(false);
  });
});
