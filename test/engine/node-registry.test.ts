import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NodeTable, decodeHeartbeat, encodeHeartbeat, type NodeHeartbeat } from '../../src/engine/node-registry.js';

const TTL = 10_000;

describe('NodeTable', () => {
  it('a node is live within the TTL of its last heartbeat, then gone for as long as it has been silent', () => {
    const t = new NodeTable(TTL);
    expect(t.isLive('a', 0)).toBe(false);
    expect(t.goneFor('a', 0)).toBeUndefined();
    t.observe({ node: 'a', at: 1_000 }, 1_000);
    expect(t.isLive('a', 1_000 + TTL - 1)).toBe(true);
    expect(t.isLive('a', 1_000 + TTL)).toBe(false);
    expect(t.goneFor('a', 1_000 + TTL + 5)).toBe(TTL + 5);
  });

  it('a leaving record makes the node gone at once; a later heartbeat (a restart) makes it live again', () => {
    const t = new NodeTable(TTL);
    t.observe({ node: 'a', at: 1_000 }, 1_000);
    t.observe({ node: 'a', at: 2_000, leaving: true }, 2_000);
    expect(t.isLive('a', 2_000)).toBe(false);
    expect(t.goneFor('a', 2_000)).toBe(0);
    expect(t.liveNodes(2_000)).toEqual([]);
    t.observe({ node: 'a', at: 3_000 }, 3_000);
    expect(t.isLive('a', 3_000)).toBe(true);
  });

  it('history read at start counts from when it was written, a clock ahead from when it was read, a tombstone forgets', () => {
    const t = new NodeTable(TTL);
    t.observe({ node: 'old', at: 1_000 }, 50_000); // read long after it was written: gone
    t.observe({ node: 'ahead', at: 90_000 }, 50_000); // the writer's clock runs 40 s ahead
    expect(t.isLive('old', 50_000)).toBe(false);
    expect(t.goneFor('old', 50_000)).toBe(49_000);
    expect(t.isLive('ahead', 50_000 + TTL - 1)).toBe(true);
    expect(t.isLive('ahead', 50_000 + TTL)).toBe(false);
    t.observe({ node: 'old', removed: true }, 50_000);
    expect(t.goneFor('old', 50_000)).toBeUndefined();
  });

  it('agrees with a model: the last record of each node decides (property)', () => {
    const event = fc.record({ node: fc.constantFrom('a', 'b', 'c'), at: fc.integer({ min: 0, max: 100_000 }), leaving: fc.boolean(), readLag: fc.integer({ min: -5_000, max: 20_000 }) });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), fc.integer({ min: 0, max: 140_000 }), (events, now) => {
        const t = new NodeTable(TTL);
        const last = new Map<string, { seenAt: number; leaving: boolean }>();
        for (const e of events) {
          t.observe({ node: e.node, at: e.at, leaving: e.leaving }, e.at + e.readLag);
          last.set(e.node, { seenAt: Math.min(e.at, e.at + e.readLag), leaving: e.leaving });
        }
        const live = [...last].filter(([, s]) => !s.leaving && now - s.seenAt < TTL).map(([n]) => n).sort();
        expect(t.liveNodes(now)).toEqual(live);
        for (const node of ['a', 'b', 'c', 'd']) {
          const s = last.get(node);
          expect(t.isLive(node, now)).toBe(live.includes(node));
          expect(t.goneFor(node, now)).toBe(s === undefined ? undefined : Math.max(0, now - s.seenAt));
        }
      }),
    );
  });
});

describe('heartbeat info', () => {
  it('the table keeps the info of each node\'s last heartbeat; a heartbeat without info clears it', () => {
    const t = new NodeTable(TTL);
    t.observe({ node: 'a', at: 1, info: { owned: [1, 2] } }, 1);
    expect(t.info('a')).toEqual({ owned: [1, 2] });
    t.observe({ node: 'a', at: 2, info: { owned: [3] } }, 2);
    expect(t.info('a')).toEqual({ owned: [3] });
    t.observe({ node: 'a', at: 3 }, 3);
    expect(t.info('a')).toBeUndefined();
    expect(t.info('never')).toBeUndefined();
  });
});

describe('heartbeat records', () => {
  it('round-trip', () => {
    const heartbeat: fc.Arbitrary<NodeHeartbeat> = fc.record(
      { node: fc.string({ minLength: 1 }), at: fc.integer({ min: 0, max: 2 ** 45 }), url: fc.webUrl(), leaving: fc.constant(true), info: fc.jsonValue().filter((v) => v !== null) },
      { requiredKeys: ['node', 'at'] },
    );
    fc.assert(
      fc.property(heartbeat, (h) => {
        expect(decodeHeartbeat(h.node, Buffer.from(encodeHeartbeat(h)))).toEqual(h);
      }),
    );
  });

  it('refuses a value that is not a heartbeat of the record key, saying why', () => {
    expect(() => decodeHeartbeat('a', 'nope')).toThrow('not JSON');
    expect(() => decodeHeartbeat('a', '[1]')).toThrow('not a JSON object');
    expect(() => decodeHeartbeat('a', JSON.stringify({ node: 'b', at: 1 }))).toThrow('is not the record\'s key');
    expect(() => decodeHeartbeat('a', JSON.stringify({ node: 'a', at: '1' }))).toThrow('not a time');
    expect(() => decodeHeartbeat('a', JSON.stringify({ node: 'a', at: -1 }))).toThrow('not a time');
    expect(() => decodeHeartbeat('a', JSON.stringify({ node: 'a', at: 1, leaving: 'yes' }))).toThrow('leaving');
    expect(() => decodeHeartbeat('a', JSON.stringify({ node: 'a', at: 1, url: 3 }))).toThrow('url');
  });
});
