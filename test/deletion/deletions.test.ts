import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeletionSet, covers, deletionId, deletionKey, newDeletion, parseDeletion, parseSwept, subjectProblem, sweptKey } from '../../src/deletion/deletions.js';

const part = fc.stringMatching(/^[a-c]{1,3}$/);
const separators = fc.constantFrom('/', ':', '--', '.');

describe('deletion keys and ids', () => {
  it('derives the id from the key alone: a repeat names the same deletion, another key another one', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.boolean(), fc.integer(), fc.integer(), (subject, children, t1, t2) => {
        const a = newDeletion(subject, children, '/', t1, 'alice');
        const b = newDeletion(subject, children, '/', t2, 'bob');
        expect(a.value.id).toBe(b.value.id);
        expect(a.key).toBe(b.key);
        expect(newDeletion(subject, !children, '/', t1, 'alice').value.id).not.toBe(a.value.id);
      }),
    );
  });

  it('keys a deletion with children as `<subject><separator>*`', () => {
    expect(deletionKey('acme', true, '/')).toBe('acme/*');
    expect(deletionKey('acme', false, '/')).toBe('acme');
    expect(deletionId('acme')).toMatch(/^del-[0-9a-f]{32}$/);
  });

  it('reads back what it writes, and refuses a value whose id does not match its key', () => {
    const { key, value } = newDeletion('acme', true, '/', 1_700_000_000_000, 'admin');
    expect(parseDeletion(key, JSON.stringify(value))).toEqual(value);
    expect(parseDeletion('other', JSON.stringify(value))).toBeUndefined();
    expect(parseDeletion(key, 'not json')).toBeUndefined();
    expect(parseDeletion(key, '{"subject":"acme"}')).toBeUndefined();
    expect(parseDeletion(key, 'null')).toBeUndefined();
  });

  it('refuses empty subjects, `*` and surrounding whitespace', () => {
    expect(subjectProblem('')).toMatch(/empty/);
    expect(subjectProblem('acme/*')).toMatch(/\*/);
    expect(subjectProblem(' acme')).toMatch(/whitespace/);
    expect(subjectProblem('acme/team-1')).toBeUndefined();
  });

  it('sweep markers never collide with deletion keys and read back', () => {
    const key = sweptKey('del-1', 'in', 3);
    expect(key.startsWith('*')).toBe(true);
    expect(parseSwept(JSON.stringify({ id: 'del-1', topic: 'in', partition: 3, removed: 5, late: 1, sweptAt: 9 }))).toEqual({ id: 'del-1', topic: 'in', partition: 3, removed: 5, late: 1, sweptAt: 9 });
    expect(parseSwept('{')).toBeUndefined();
  });
});

describe('DeletionSet', () => {
  it('matches exactly the subjects some deletion covers (model: a scan of every deletion)', () => {
    const subject = fc.array(part, { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(separators, fc.array(fc.tuple(subject, fc.boolean()), { maxLength: 8 }), fc.array(subject, { minLength: 1, maxLength: 20 }), (sep, deletions, queries) => {
        const set = new DeletionSet(sep);
        const all = deletions.map(([parts, children]) => newDeletion(parts.join(sep), children, sep, 1, 'a'));
        for (const d of all) set.apply(d.key, d.value);
        for (const q of [...queries.map((p) => p.join(sep)), ...all.map((d) => `${d.value.subject}${sep}x`)]) {
          const expected = all.some((d) => covers(d.value, q, sep));
          const found = set.match(q);
          expect(found !== undefined).toBe(expected);
          if (found) expect(covers(found, q, sep)).toBe(true);
        }
      }),
    );
  });

  it('separators inside a name are not ancestors of a different subject', () => {
    const set = new DeletionSet('/');
    const d = newDeletion('acme', true, '/', 1, 'a');
    set.apply(d.key, d.value);
    expect(set.match('acme')?.id).toBe(d.value.id);
    expect(set.match('acme/team/1')?.id).toBe(d.value.id);
    expect(set.match('acmecorp')).toBeUndefined();
    expect(set.match('acmecorp/x')).toBeUndefined();
    const own = newDeletion('beta', false, '/', 1, 'a');
    set.apply(own.key, own.value);
    expect(set.match('beta')?.id).toBe(own.value.id);
    expect(set.match('beta/x')).toBeUndefined();
  });

  it('a tombstone withdraws a deletion, by key and by id', () => {
    const set = new DeletionSet('/');
    const d = newDeletion('acme', false, '/', 1, 'a');
    set.apply(d.key, d.value);
    expect(set.byIdentifier(d.value.id)).toEqual(d.value);
    set.apply(d.key, null);
    expect(set.match('acme')).toBeUndefined();
    expect(set.byIdentifier(d.value.id)).toBeUndefined();
    expect(set.size).toBe(0);
  });
});
