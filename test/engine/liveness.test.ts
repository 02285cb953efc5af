import { describe, expect, it } from 'vitest';
import { Lifecycle } from '../../src/engine/lifecycle.js';
import { Liveness } from '../../src/engine/liveness.js';

describe('Liveness', () => {
  it('is stuck only while a streak is open past its bound, and names the longest one', () => {
    let now = 0;
    const liveness = new Liveness(1_000, () => now);
    const batch = liveness.streak('batch (partition 1)');
    now = 500;
    const start = liveness.streak('task start (partition 2)');
    now = 1_000;
    expect(liveness.stuck()).toBeUndefined(); // exactly at the bound: not yet
    now = 1_400;
    expect(liveness.stuck()).toEqual({ what: 'batch (partition 1)', forMs: 1_400 });
    batch.close();
    expect(liveness.stuck()).toBeUndefined(); // the other streak is 900 ms old
    now = 1_600;
    expect(liveness.stuck()).toEqual({ what: 'task start (partition 2)', forMs: 1_100 });
    start.close();
    start.close(); // closing twice is harmless
    expect(liveness.stuck()).toBeUndefined();
  });

  it('treats draining as a streak bounded by the grace plus stuckAfterMs, ended by stopped or failed', () => {
    let now = 0;
    const liveness = new Liveness(1_000, () => now);
    const lifecycle = new Lifecycle();
    liveness.watchDrain(lifecycle, 30_000);
    lifecycle.transition('running');
    now = 100_000;
    expect(liveness.stuck()).toBeUndefined(); // running for long is fine
    lifecycle.transition('draining');
    now += 31_000;
    expect(liveness.stuck()).toBeUndefined();
    now += 1_000;
    expect(liveness.stuck()).toEqual({ what: 'draining', forMs: 32_000 });
    lifecycle.transition('failed');
    expect(liveness.stuck()).toBeUndefined();
  });
});
