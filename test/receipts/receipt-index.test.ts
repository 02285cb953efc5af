import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type IndexEntries, type Receipt, type ReceiptTopic, eventKey, letterKey } from '../../src/receipts/entries.js';
import { ReceiptIndex } from '../../src/receipts/receipt-index.js';
import { receiptsDir } from '../../src/receipts/receipts-service.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs('ordo-receipts-test-');
const T = Date.UTC(2026, 10, 30, 12);
const TOPICS: Record<ReceiptTopic, string> = { ordered: 'o', dlq: 'd', late: 'l', duplicates: 'u' };
const hex = (ms: number): string => (BigInt(ms) << 16n).toString(16).padStart(16, '0');
const opened: ReceiptIndex[] = [];

function openIndex(dir: string | undefined, topics = TOPICS, terminalTypes = ['job.done']): ReceiptIndex {
  const index = new ReceiptIndex({ dir, topics, terminalTypes });
  opened.push(index);
  return index;
}

afterEach(async () => {
  for (const index of opened.splice(0)) await index.close().catch(() => undefined);
});

function acceptedEntry(id: string, offset: number, at: number, trail?: string, type = 'job.step'): { at: number; entries: IndexEntries } {
  const receipt: Receipt = { kind: 'accepted', source: 'svc', id, subject: 'acme', type, seq: String(offset), serviceTime: hex(at), serviceNode: 'n', orderKey: { time: hex(at), node: 'n' }, position: { partition: 0, offset: String(offset) }, at, aggregates: [] };
  return {
    at,
    entries: {
      receipts: [{ key: eventKey('svc', id), receipt }],
      trail: trail === undefined ? undefined : { id: trail, event: { source: 'svc', id, subject: 'acme', type, outcome: 'accepted', orderKey: receipt.orderKey, at, topic: 'ordered', position: receipt.position } },
    },
  };
}

describe('the receipts index (lmdb)', () => {
  it('keeps receipts and the next offset in one transaction, and a reopened index resumes from it', async () => {
    const dir = tempDir();
    const index = openIndex(dir);
    index.apply('ordered', 0, 2n, [acceptedEntry('a', 0, T), acceptedEntry('b', 1, T + 1)]);
    const letter: Receipt = { kind: 'dead-lettered', source: undefined, id: undefined, subject: undefined, type: undefined, reason: 'undecodable', error: 'x', position: { partition: 3, offset: '7' }, input: undefined, at: T };
    index.apply('dlq', 3, 8n, [{ at: T, entries: { receipts: [{ key: letterKey({ partition: 3, offset: '7' }), receipt: letter }], trail: undefined } }]);
    expect(index.receipts('svc', 'a')).toMatchObject([{ kind: 'accepted', id: 'a' }]);
    expect(index.letter({ partition: 3, offset: '7' })).toMatchObject({ reason: 'undecodable' });
    expect(index.entries()).toBe(3); // two receipts and a letter
    await index.close();
    opened.pop();
    const again = openIndex(dir);
    expect(again.rebuilt).toBe(false);
    expect(again.positions('ordered')).toEqual(new Map([[0, 2n]]));
    expect(again.positions('dlq')).toEqual(new Map([[3, 8n]]));
    expect(again.receipts('svc', 'b')).toMatchObject([{ id: 'b', seq: '1' }]);
  });

  it('an index of other topics starts over', async () => {
    const dir = tempDir();
    const index = openIndex(dir);
    index.apply('ordered', 0, 1n, [acceptedEntry('a', 0, T)]);
    await index.close();
    opened.pop();
    const other = openIndex(dir, { ...TOPICS, ordered: 'o2' });
    expect(other.rebuilt).toBe(true);
    expect(other.positions('ordered').size).toBe(0);
    expect(other.receipts('svc', 'a')).toEqual([]);
  });

  it('lives in ORDO_RECEIPTS_DIR, else under the state dir per node, else in a temporary dir', () => {
    expect(receiptsDir({ receipts: { dir: '/r', retentionMs: 1 }, stateDir: '/s', nodeId: 'n' })).toBe('/r');
    expect(receiptsDir({ receipts: { dir: undefined, retentionMs: 1 }, stateDir: '/s', nodeId: 'ordo/0' })).toBe('/s/receipts-ordo_0');
    expect(receiptsDir({ receipts: { dir: undefined, retentionMs: 1 }, stateDir: undefined, nodeId: 'n' })).toBeUndefined();
  });

  it('prunes by record time in bounded steps, receipts, trail events and summaries alike', () => {
    const index = openIndex(undefined);
    index.apply('ordered', 0, 10n, Array.from({ length: 10 }, (_, i) => acceptedEntry(`e${i}`, i, T + i * 1_000, 'tr')));
    expect(index.trail('tr', 100).events).toHaveLength(10);
    expect(index.prune(T + 4_500, 3)).toBe(3);
    // 5 receipts and 5 trail events are before the horizon: 10 time entries, 3 removed so far.
    let removed = 3;
    for (let step = index.prune(T + 4_500, 3); step > 0; step = index.prune(T + 4_500, 3)) removed += step;
    expect(removed).toBe(10);
    expect(index.entries()).toBe(5);
    expect(index.receipts('svc', 'e4')).toEqual([]);
    expect(index.receipts('svc', 'e5')).toHaveLength(1);
    expect(index.trail('tr', 100).events.map((e) => e.id)).toEqual(['e5', 'e6', 'e7', 'e8', 'e9']);
    expect(index.trailCounts(0)).toEqual({ open: 1, stalled: 0 });
    expect(index.oldest()).toBe(T + 5_000);
    // The summary leaves with the trail's last event.
    while (index.prune(T + 20_000, 100) > 0);
    expect(index.trail('tr', 100)).toEqual({ events: [], summary: undefined });
    expect(index.trailCounts(Number.POSITIVE_INFINITY)).toEqual({ open: 0, stalled: 0 });
  });

  it('counts open and stalled trails, and reports a completion once with its duration', () => {
    const dir = tempDir();
    const index = openIndex(dir);
    const first = index.apply('ordered', 0, 3n, [acceptedEntry('a', 0, T, 'done'), acceptedEntry('b', 1, T + 1_000, 'stuck'), acceptedEntry('c', 2, T + 60_000, 'busy')]);
    expect(first.completed).toEqual([]);
    const done = index.apply('ordered', 0, 5n, [acceptedEntry('d', 3, T + 2_500, 'done', 'job.done'), acceptedEntry('e', 4, T + 2_600, 'done', 'job.done')]);
    expect(done.completed).toEqual([{ id: 'done', durationMs: 2_500 }]);
    expect(index.trailCounts(T + 30_000)).toEqual({ open: 1, stalled: 1 });
    expect(index.trail('done', 100).summary).toMatchObject({ completed: true });
  });

  it('any batching of the same records gives the same receipts, trails and positions', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 10 }), (sizes) => {
        const records = Array.from({ length: 20 }, (_, i) => acceptedEntry(`e${i % 7}`, i, T + i, `tr${i % 3}`));
        const whole = openIndex(undefined);
        whole.apply('ordered', 0, 20n, records);
        const parts = openIndex(undefined);
        let at = 0;
        for (let i = 0; at < records.length; i++) {
          const size = sizes[i % sizes.length]!;
          parts.apply('ordered', 0, BigInt(Math.min(records.length, at + size)), records.slice(at, at + size));
          at += size;
        }
        for (let i = 0; i < 7; i++) expect(parts.receipts('svc', `e${i}`)).toEqual(whole.receipts('svc', `e${i}`));
        for (let i = 0; i < 3; i++) expect(parts.trail(`tr${i}`, 100)).toEqual(whole.trail(`tr${i}`, 100));
        expect(parts.positions('ordered')).toEqual(whole.positions('ordered'));
        expect(parts.entries()).toBe(whole.entries());
      }),
      { numRuns: 15 },
    );
  });
});
