import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InMemoryStore } from '../../src/engine/state-store.js';
import { type StoreCodec, stringCodec } from '../../src/model/store.js';

interface Counter {
  count: number;
}
const jsonCodec: StoreCodec<Counter> = {
  encode: (v) => Buffer.from(JSON.stringify(v)),
  decode: (b) => JSON.parse(b.toString('utf8')) as Counter,
};

function store(): InMemoryStore<string> {
  return new InMemoryStore('test', stringCodec);
}

describe('InMemoryStore', () => {
  it('has a name and starts empty', () => {
    const s = store();
    expect(s.name).toBe('test');
    expect(s.size).toBe(0);
    expect(s.get('a')).toBeUndefined();
    expect(s.changes()).toEqual([]);
  });

  it('shows staged writes through get before commit', () => {
    const s = store();
    s.put('a', '1');
    expect(s.get('a')).toBe('1');
    s.put('a', '2');
    expect(s.get('a')).toBe('2');
    s.delete('a');
    expect(s.get('a')).toBeUndefined();
  });

  it('rollback discards staged writes and keeps committed state', () => {
    const s = store();
    s.put('keep', 'v1');
    s.commit();
    s.put('keep', 'v2');
    s.put('new', 'x');
    s.delete('keep');
    s.rollback();
    expect(s.get('keep')).toBe('v1');
    expect(s.get('new')).toBeUndefined();
    expect(s.changes()).toEqual([]);
    expect(s.size).toBe(1);
  });

  it('commit applies puts and deletes and clears the staged changes', () => {
    const s = store();
    s.put('a', '1');
    s.put('b', '2');
    s.commit();
    expect(s.size).toBe(2);
    s.delete('a');
    s.put('c', '3');
    s.commit();
    expect(s.get('a')).toBeUndefined();
    expect(s.get('b')).toBe('2');
    expect(s.get('c')).toBe('3');
    expect(s.size).toBe(2);
    expect(s.changes()).toEqual([]);
  });

  it('hides a committed key deleted in the current batch', () => {
    const s = store();
    s.put('a', '1');
    s.commit();
    s.delete('a');
    expect(s.get('a')).toBeUndefined();
    s.put('a', '2');
    expect(s.get('a')).toBe('2');
  });

  it('changes() has one entry per key, the last write winning, null for a delete', () => {
    const s = store();
    s.put('a', '1');
    s.put('b', '1');
    s.put('a', '2');
    s.delete('b');
    s.put('c', 'x');
    s.delete('c');
    s.put('c', 'y');
    s.delete('never-existed');
    const changes = s.changes();
    expect(changes.map((c) => c.key).sort()).toEqual(['a', 'b', 'c', 'never-existed']);
    expect(Object.fromEntries(changes.map((c) => [c.key, c.value === null ? null : c.value.toString('utf8')]))).toEqual({
      a: '2',
      b: null,
      c: 'y',
      'never-existed': null,
    });
  });

  it('encodes changes and decodes restored records with its codec', () => {
    const s = new InMemoryStore<Counter>('counters', jsonCodec);
    s.put('k', { count: 3 });
    const [entry] = s.changes();
    expect(entry).toEqual({ key: 'k', value: Buffer.from('{"count":3}') });
    const replica = new InMemoryStore<Counter>('counters', jsonCodec);
    replica.restore(entry!.key, entry!.value);
    expect(replica.get('k')).toEqual({ count: 3 });
  });

  it('restore() applies changelog records directly to committed state, tombstones delete', () => {
    const s = store();
    s.restore('a', Buffer.from('1'));
    s.restore('b', Buffer.from('2'));
    s.restore('a', Buffer.from('3'));
    s.restore('b', null);
    s.restore('missing', null);
    expect(s.get('a')).toBe('3');
    expect(s.get('b')).toBeUndefined();
    expect(s.size).toBe(1);
    expect(s.changes()).toEqual([]);
  });

  it('replaying changes() of committed batches via restore() rebuilds the same store (property)', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'ü', '');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), key, value: fc.string({ unit: 'grapheme', maxLength: 8 }) }),
      fc.record({ kind: fc.constant('delete' as const), key }),
    );
    const batch = fc.record({ ops: fc.array(op, { maxLength: 12 }), outcome: fc.constantFrom('commit', 'rollback') });
    fc.assert(
      fc.property(fc.array(batch, { maxLength: 15 }), (batches) => {
        const primary = store();
        const replica = store();
        const model = new Map<string, string>();
        for (const { ops, outcome } of batches) {
          const staged = new Map(model);
          for (const o of ops) {
            if (o.kind === 'put') {
              primary.put(o.key, o.value);
              staged.set(o.key, o.value);
            } else {
              primary.delete(o.key);
              staged.delete(o.key);
            }
            // Reads inside a batch see the batch's own writes.
            expect(primary.get(o.key)).toBe(staged.get(o.key));
          }
          const changes = primary.changes();
          expect(new Set(changes.map((c) => c.key)).size).toBe(changes.length);
          if (outcome === 'commit') {
            primary.commit();
            for (const c of changes) replica.restore(c.key, c.value);
            model.clear();
            for (const [k, v] of staged) model.set(k, v);
          } else {
            primary.rollback();
          }
          for (const k of ['a', 'b', 'c', 'd', 'e', 'ü', '']) {
            expect(primary.get(k)).toBe(model.get(k));
            expect(replica.get(k)).toBe(model.get(k));
          }
          expect(primary.size).toBe(model.size);
          expect(replica.size).toBe(model.size);
        }
      }),
    );
  });
});
