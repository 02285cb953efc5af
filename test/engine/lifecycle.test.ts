import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Lifecycle, type LifecycleState } from '../../src/engine/lifecycle.js';

const STATES: LifecycleState[] = ['starting', 'restoring', 'running', 'draining', 'stopped', 'failed'];

/** The contract: starting -> restoring <-> running -> draining -> stopped; anything live may fail. */
const EXPECTED: Record<LifecycleState, LifecycleState[]> = {
  starting: ['restoring', 'running', 'draining', 'failed'],
  restoring: ['running', 'draining', 'failed'],
  running: ['restoring', 'draining', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** Drives a fresh lifecycle into `state` along allowed moves. */
function at(state: LifecycleState): Lifecycle {
  const path: Record<LifecycleState, LifecycleState[]> = {
    starting: [],
    restoring: ['restoring'],
    running: ['running'],
    draining: ['draining'],
    stopped: ['draining', 'stopped'],
    failed: ['failed'],
  };
  const lifecycle = new Lifecycle();
  for (const step of path[state]) expect(lifecycle.transition(step)).toBe(true);
  expect(lifecycle.state).toBe(state);
  return lifecycle;
}

describe('Lifecycle', () => {
  it('starts in starting with that as its history', () => {
    const lifecycle = new Lifecycle();
    expect(lifecycle.state).toBe('starting');
    expect(lifecycle.history).toEqual(['starting']);
    expect(lifecycle.done).toBe(false);
  });

  it('walks the normal life: starting -> restoring -> running -> restoring -> running -> draining -> stopped', () => {
    const lifecycle = new Lifecycle();
    const seen: [LifecycleState, LifecycleState][] = [];
    lifecycle.onChange((to, from) => seen.push([from, to]));
    for (const to of ['restoring', 'running', 'restoring', 'running', 'draining', 'stopped'] as const) {
      expect(lifecycle.transition(to)).toBe(true);
      expect(lifecycle.state).toBe(to);
    }
    expect(lifecycle.history).toEqual(['starting', 'restoring', 'running', 'restoring', 'running', 'draining', 'stopped']);
    expect(seen).toEqual([
      ['starting', 'restoring'],
      ['restoring', 'running'],
      ['running', 'restoring'],
      ['restoring', 'running'],
      ['running', 'draining'],
      ['draining', 'stopped'],
    ]);
    expect(lifecycle.done).toBe(true);
  });

  for (const from of STATES) {
    for (const to of STATES) {
      if (from === to) continue;
      const allowed = EXPECTED[from].includes(to);
      it(`${allowed ? 'allows' : 'forbids'} ${from} -> ${to}`, () => {
        const lifecycle = at(from);
        const history = [...lifecycle.history];
        let calls = 0;
        lifecycle.onChange(() => calls++);
        expect(lifecycle.transition(to)).toBe(allowed);
        expect(lifecycle.state).toBe(allowed ? to : from);
        expect(lifecycle.history).toEqual(allowed ? [...history, to] : history);
        expect(calls).toBe(allowed ? 1 : 0);
      });
    }
  }

  it.each(STATES)('treats %s -> itself as an accepted no-op without history or listener calls', (state) => {
    const lifecycle = at(state);
    const history = [...lifecycle.history];
    let calls = 0;
    lifecycle.onChange(() => calls++);
    expect(lifecycle.transition(state)).toBe(true);
    expect(lifecycle.state).toBe(state);
    expect(lifecycle.history).toEqual(history);
    expect(calls).toBe(0);
  });

  it('is done only in stopped or failed, and nothing leaves them', () => {
    for (const state of STATES) expect(at(state).done).toBe(state === 'stopped' || state === 'failed');
    for (const end of ['stopped', 'failed'] as const) {
      const lifecycle = at(end);
      for (const to of STATES) if (to !== end) expect(lifecycle.transition(to)).toBe(false);
      expect(lifecycle.state).toBe(end);
    }
  });

  it('tells every listener, in registration order, after the state changed', () => {
    const lifecycle = new Lifecycle();
    const log: string[] = [];
    lifecycle.onChange((to, from) => log.push(`first ${from}->${to} state=${lifecycle.state}`));
    lifecycle.onChange((to, from) => log.push(`second ${from}->${to}`));
    lifecycle.transition('running');
    expect(log).toEqual(['first starting->running state=running', 'second starting->running']);
  });

  it('history and listeners record exactly the accepted moves of any request sequence (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...STATES), { maxLength: 30 }), (requests) => {
        const lifecycle = new Lifecycle();
        const heard: LifecycleState[] = ['starting'];
        lifecycle.onChange((to, from) => {
          expect(from).toBe(heard[heard.length - 1]);
          heard.push(to);
        });
        let model: LifecycleState = 'starting';
        const expectedHistory: LifecycleState[] = ['starting'];
        for (const to of requests) {
          const ok = to === model || EXPECTED[model].includes(to);
          expect(lifecycle.transition(to)).toBe(ok);
          if (ok && to !== model) {
            model = to;
            expectedHistory.push(to);
          }
          expect(lifecycle.state).toBe(model);
        }
        expect(lifecycle.history).toEqual(expectedHistory);
        expect(heard).toEqual(expectedHistory);
      }),
    );
  });
});
