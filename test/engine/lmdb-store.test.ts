import fc from 'fast-check';
import { type RootDatabase, open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { LmdbStore } from '../../src/engine/lmdb-store.js';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { type StoreCodec } from '../../src/model/store.js';
import { Sweeper } from '../../src/processors/sweep.js';
import { tempDirs } from '../support/temp-dirs.js';

interface Counter {
  n: number;
}
const counterCodec: StoreCodec<Counter> = {
  encode: (v) => Buffer.from(JSON.stringify(v)),
  decode: (b) => JSON.parse(b.toString('utf8')) as Counter,
};

const tempDir = tempDirs('ordo-lmdb-');

function openStore(path: string, cacheEntries?: number): { env: RootDatabase; store: LmdbStore<Counter> } {
  const env = open({ path, maxDbs: 4 });
  return { env, store: new LmdbStore('s', counterCodec, env.openDB<Buffer, Buffer>('store:s', { encoding: 'binary', keyEncoding: 'binary' }), cacheEntries) };
}

/** Keys near lmdb's limits: long ones are stored hashed, and one looks like a hashed key. */
const KEYS = ['a', 'b', 'c', '', 'ü-ñ', '\u0000#x', 'k'.repeat(1_899), 'k'.repeat(1_901), 'long-'.repeat(2_000)];

type Op =
  | { op: 'put'; key: string; n: number }
  | { op: 'delete'; key: string }
  | { op: 'commit' }
  | { op: 'rollback' }
  | { op: 'restore'; key: string; n: number | null }
  | { op: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('put' as const), key: fc.constantFrom(...KEYS), n: fc.integer() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'commit' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'rollback' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('restore' as const), key: fc.constantFrom(...KEYS), n: fc.option(fc.integer(), { nil: null }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
);

function sortedEntries<V>(store: { entries(): IterableIterator<[string, V]> }): [string, V][] {
  return [...store.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

describe('LmdbStore', () => {
  it('behaves like InMemoryStore for any sequence of writes, commits, rollbacks and restores, and keeps the committed state across reopening', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), fc.constantFrom(0, 2, 10_000), async (ops, cacheEntries) => {
        const path = tempDir();
        const model = new InMemoryStore<Counter>('s', counterCodec);
        let { env, store } = openStore(path, cacheEntries);
        try {
          for (const o of ops) {
            switch (o.op) {
              case 'put':
                model.put(o.key, { n: o.n });
                store.put(o.key, { n: o.n });
                break;
              case 'delete':
                model.delete(o.key);
                store.delete(o.key);
                break;
              case 'commit':
                model.commit();
                store.commit();
                break;
              case 'rollback':
                model.rollback();
                store.rollback();
                break;
              case 'restore': {
                const bytes = o.n === null ? null : counterCodec.encode({ n: o.n });
                model.restore(o.key, bytes);
                store.restore(o.key, bytes);
                break;
              }
              case 'reopen':
                // A process ending: staged writes are gone, committed state stays.
                model.rollback();
                store.settle();
                await env.close();
                ({ env, store } = openStore(path, cacheEntries));
                break;
            }
            for (const key of KEYS) expect(store.get(key)).toEqual(model.get(key));
            expect(store.changes()).toEqual(model.changes());
          }
          expect(store.size).toBe(model.size);
          expect(sortedEntries(store)).toEqual(sortedEntries(model));
        } finally {
          await env.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('wipe drops committed, restored and staged entries', async () => {
    const { env, store } = openStore(tempDir());
    store.put('a', { n: 1 });
    store.commit();
    store.restore('b', counterCodec.encode({ n: 2 }));
    store.put('c', { n: 3 });
    store.wipe();
    expect([store.get('a'), store.get('b'), store.get('c'), store.size, store.changes()]).toEqual([undefined, undefined, undefined, 0, []]);
    await env.close();
  });

  it('lets an expiry sweep delete committed object values (a read decodes a fresh object each time)', async () => {
    const { env, store } = openStore(tempDir(), 0);
    for (let i = 0; i < 5; i++) store.put(`k${i}`, { n: i });
    store.commit();
    store.put('k4', { n: 100 }); // rewritten in this batch: not expired any more
    const swept = new Sweeper<Counter>(0, (_key, value) => value.n < 10).run(store, 0);
    expect(swept).toBe(4);
    store.commit();
    expect(sortedEntries(store)).toEqual([['k4', { n: 100 }]]);
    await env.close();
  });
});
