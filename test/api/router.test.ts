import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/kafka/partition-of.js';
import { type ApiNodeInfo, decodeApiNodeInfo, neededPartitions, routePartitions } from '../../src/api/router.js';

function node(name: string, owned: number[], held: Record<number, [next: number, end: number | null, restoring?: boolean]>): [string, ApiNodeInfo] {
  return [
    name,
    {
      url: `http://${name}:8080`,
      owned,
      held: Object.fromEntries(Object.entries(held).map(([p, [next, end, restoring]]) => [p, { next: String(next), end: end === null ? null : String(end), restoring: restoring ?? false }])),
      misplaced: 0,
      partitions: 4,
    },
  ];
}

describe('routePartitions', () => {
  it('sends each partition to its owner, grouped per node, with the lag the owner reported', () => {
    const nodes = new Map([node('a', [0, 1], { 0: [10, 10], 1: [5, 8] }), node('b', [2, 3], { 2: [3, 3], 3: [4, 4] })]);
    expect(routePartitions([3, 0, 1, 2], nodes)).toEqual({
      routes: [
        { node: 'a', url: 'http://a:8080', partitions: [0, 1], lagRecords: 3 },
        { node: 'b', url: 'http://b:8080', partitions: [2, 3], lagRecords: 0 },
      ],
      missing: [],
    });
  });

  it('an owner still restoring: the live holder furthest ahead serves (stale but exact); nobody: missing', () => {
    const nodes = new Map([
      node('new', [0, 1], { 0: [2, 10, true], 1: [1, 10, true] }),
      node('old', [], { 0: [9, 10] }),
      node('older', [], { 0: [7, 10], 1: [3, 10, true] }),
    ]);
    expect(routePartitions([0, 1], nodes)).toEqual({ routes: [{ node: 'old', url: 'http://old:8080', partitions: [0], lagRecords: 1 }], missing: [1] });
  });

  it('a stale registry entry (a node that did not answer) is passed over for the next holder', () => {
    const nodes = new Map([node('dead', [0], { 0: [10, 10] }), node('peer', [1], { 0: [8, 10], 1: [5, 5] })]);
    expect(routePartitions([0, 1], nodes, { exclude: new Set(['dead']) }).routes).toEqual([{ node: 'peer', url: 'http://peer:8080', partitions: [0, 1], lagRecords: 2 }]);
    expect(routePartitions([0], new Map([node('dead', [0], { 0: [10, 10] })]), { exclude: new Set(['dead']) })).toEqual({ routes: [], missing: [0] });
  });

  it('two owners (the registry lags a rebalance): the one further ahead; equal: this node, then the smaller id', () => {
    const nodes = new Map([node('b', [0], { 0: [5, 9] }), node('a', [0], { 0: [5, 9] }), node('c', [0], { 0: [4, 9] })]);
    expect(routePartitions([0], nodes).routes.map((r) => r.node)).toEqual(['a']);
    expect(routePartitions([0], nodes, { self: 'b' }).routes.map((r) => r.node)).toEqual(['b']);
    nodes.set(...node('c', [0], { 0: [6, 9] }));
    expect(routePartitions([0], nodes, { self: 'b' }).routes.map((r) => r.node)).toEqual(['c']);
  });

  it('every needed partition is routed once or missing, only to a node holding a consistent copy (property)', () => {
    const held = fc.dictionary(fc.integer({ min: 0, max: 7 }).map(String), fc.record({ next: fc.nat(100).map(String), end: fc.option(fc.nat(100).map(String), { nil: null }), restoring: fc.boolean() }));
    const info = fc.record({ owned: fc.uniqueArray(fc.integer({ min: 0, max: 7 })), held });
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), info), fc.uniqueArray(fc.integer({ min: 0, max: 7 })), (raw, needed) => {
        const nodes = new Map(Object.entries(raw).map(([n, i]) => [n, { url: `http://${n}`, owned: i.owned, held: i.held, misplaced: 0, partitions: 8 }]));
        const plan = routePartitions(needed, nodes);
        const routed = plan.routes.flatMap((r) => r.partitions);
        expect([...routed, ...plan.missing].sort((x, y) => x - y)).toEqual([...needed].sort((x, y) => x - y));
        for (const r of plan.routes) for (const p of r.partitions) expect(nodes.get(r.node)!.held[String(p)]?.restoring).toBe(false);
        for (const p of plan.missing) for (const i of nodes.values()) expect(i.held[String(p)] === undefined || i.held[String(p)]!.restoring).toBe(true);
      }),
    );
  });
});

describe('neededPartitions', () => {
  it('a subject needs its partition only; all subjects, or a misplaced aggregate anywhere, need every partition', () => {
    expect(neededPartitions(['acme'], 6, false)).toEqual([partitionOf('acme', 6)]);
    expect(neededPartitions(['acme', 'acme'], 6, false)).toHaveLength(1);
    expect(neededPartitions(undefined, 3, false)).toEqual([0, 1, 2]);
    expect(neededPartitions(['acme'], 3, true)).toEqual([0, 1, 2]);
  });
});

describe('decodeApiNodeInfo', () => {
  it('takes an api replica\'s info and nothing else (another role\'s heartbeat, garbage)', () => {
    const [, good] = node('a', [1], { 1: [3, null] });
    expect(decodeApiNodeInfo(good)).toEqual(good);
    for (const bad of [undefined, null, 'x', [], { ...good, url: 'ftp://x' }, { ...good, owned: [-1] }, { ...good, held: { x: { next: '1', end: null, restoring: false } } }, { ...good, held: { 1: { next: 1, end: null, restoring: false } } }, { ...good, misplaced: -1 }, { ...good, partitions: 1.5 }]) {
      expect(decodeApiNodeInfo(bad)).toBeUndefined();
    }
  });
});
