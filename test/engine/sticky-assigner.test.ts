import fc from 'fast-check';
import { AssignerProtocol, type Cluster } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { type AssignerMember, assign, decodeMemberState, encodeMemberState, stickyAssigner } from '../../src/engine/sticky-assigner.js';

const members = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 7 })
  .chain((ids) =>
    fc.tuple(
      fc.constant(ids),
      fc.array(fc.dictionary(fc.integer({ min: 0, max: 23 }).map(String), fc.bigInt({ min: 0n, max: 50n })), { minLength: ids.length, maxLength: ids.length }),
    ),
  )
  .map(([ids, helds]): AssignerMember[] => ids.map((memberId, i) => ({ memberId, node: `n-${memberId}`, held: new Map(Object.entries(helds[i]!).map(([p, o]) => [Number(p), o])) })));
const partitions = fc.integer({ min: 0, max: 24 }).map((n) => Array.from({ length: n }, (_, i) => i));

function ownerOf(result: Map<string, number[]>): Map<number, string> {
  const owners = new Map<number, string>();
  for (const [id, list] of result) for (const p of list) owners.set(p, id);
  return owners;
}

describe('assign', () => {
  it('gives every partition to exactly one member, balanced to within one', () => {
    fc.assert(
      fc.property(members, partitions, (ms, ps) => {
        const result = assign(ms, ps);
        const all = [...result.values()].flat().sort((a, b) => a - b);
        expect(all).toEqual(ps);
        const counts = [...result.values()].map((l) => l.length);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
        expect([...result.keys()].sort()).toEqual(ms.map((m) => m.memberId).sort());
      }),
    );
  });

  it('a partition goes to another member than the one holding it furthest only when that member is full', () => {
    fc.assert(
      fc.property(members, partitions, (ms, ps) => {
        const result = assign(ms, ps);
        const floor = Math.floor(ps.length / ms.length);
        const extra = ps.length % ms.length;
        const atCeil = [...result.values()].filter((l) => l.length > floor).length;
        const full = (id: string): boolean => {
          const n = result.get(id)!.length;
          return n > floor || (n === floor && atCeil === extra);
        };
        for (const [p, owner] of ownerOf(result)) {
          const mine = ms.find((m) => m.memberId === owner)!.held.get(p);
          for (const m of ms) {
            const theirs = m.held.get(p);
            if (theirs !== undefined && (mine === undefined || theirs > mine)) expect(full(m.memberId)).toBe(true);
          }
        }
      }),
    );
  });

  it('is deterministic: the order the members come in does not matter', () => {
    fc.assert(
      fc.property(members, partitions, fc.integer(), (ms, ps, seed) => {
        const shuffled = [...ms].sort((a, b) => ((a.memberId.charCodeAt(0) * seed) % 7) - ((b.memberId.charCodeAt(0) * seed) % 7));
        expect(assign(shuffled, ps)).toEqual(assign(ms, ps));
      }),
    );
  });

  it('with the same members, holding what they were given, nothing moves; a new member takes only what balance needs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 30 }), (n, p) => {
        const ps = Array.from({ length: p }, (_, i) => i);
        const first = assign(Array.from({ length: n }, (_, i) => ({ memberId: `m${i}`, node: `m${i}`, held: new Map() })), ps);
        const holding = [...first].map(([memberId, list]) => ({ memberId, node: memberId, held: new Map(list.map((q) => [q, 10n])) }));
        expect(assign(holding, ps)).toEqual(first);
        const grown = assign([...holding, { memberId: 'new', node: 'new', held: new Map() }], ps);
        const moved = ps.filter((q) => ownerOf(grown).get(q) !== ownerOf(first).get(q)).length;
        expect(moved).toBe(grown.get('new')!.length);
        expect(moved).toBe(Math.floor(p / (n + 1)));
      }),
    );
  });

  it('a partition two members hold goes to the one further ahead (the stale one keeps it only when the other is full)', () => {
    const result = assign(
      [
        { memberId: 'a', node: 'a', held: new Map([[0, 5n]]) },
        { memberId: 'b', node: 'b', held: new Map([[0, 9n]]) },
      ],
      [0, 1],
    );
    expect(result).toEqual(new Map([['a', [1]], ['b', [0]]]));
  });
});

describe('member state', () => {
  it('round-trips, and anything not ours decodes as holding nothing', () => {
    fc.assert(
      fc.property(fc.string(), fc.dictionary(fc.nat(1000).map(String), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n })), (node, held) => {
        const state = { node, held: new Map(Object.entries(held).map(([p, o]) => [Number(p), o])) };
        expect(decodeMemberState(encodeMemberState(state))).toEqual(state);
      }),
    );
    for (const garbage of ['', 'not json', '[]', '{"node":1,"held":{}}', '{"node":"a","held":{"x":"1"}}', '{"node":"a","held":{"1":"-1"}}', '{"node":"a","held":{"1":2}}']) {
      expect(decodeMemberState(Buffer.from(garbage))).toBeUndefined();
    }
    expect(decodeMemberState(null)).toBeUndefined();
  });

  it('the kafkajs adapter sends the state at every join and assigns from the members it decodes', async () => {
    let held = new Map<number, bigint>([[2, 7n]]);
    const cluster = { findTopicPartitionMetadata: () => [0, 1, 2, 3].map((partitionId) => ({ partitionId })) } as unknown as Cluster;
    const assigner = stickyAssigner(() => ({ node: 'me', held }))({ cluster, groupId: 'g', logger: undefined as never });
    const mine = assigner.protocol({ topics: ['t'] });
    expect(decodeMemberState(AssignerProtocol.MemberMetadata.decode(mine.metadata)?.userData)).toEqual({ node: 'me', held });
    held = new Map([[1, 3n]]);
    const other = assigner.protocol({ topics: ['t'] }).metadata;
    const foreign = AssignerProtocol.MemberMetadata.encode({ version: 0, topics: ['t'], userData: Buffer.from('x') });
    const answers = await assigner.assign({ members: [{ memberId: 'a', memberMetadata: mine.metadata }, { memberId: 'b', memberMetadata: other }, { memberId: 'c', memberMetadata: foreign }], topics: ['t'] });
    const decoded = Object.fromEntries(answers.map((a) => [a.memberId, AssignerProtocol.MemberAssignment.decode(a.memberAssignment)?.assignment]));
    expect(decoded.a?.t).toContain(2);
    expect(decoded.b?.t).toContain(1);
    expect([...(decoded.a?.t ?? []), ...(decoded.b?.t ?? []), ...(decoded.c?.t ?? [])].sort()).toEqual([0, 1, 2, 3]);
  });
});
