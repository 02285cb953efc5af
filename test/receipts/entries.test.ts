import { describe, expect, it } from 'vitest';
import type { SourceRecord } from '../../src/model/records.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { MeterCatalog, parseMeters } from '../../src/usage/meters.js';
import { aggregatesTouched, correlationId, eventKey, letterKey, toEntries, type EntryContext } from '../../src/receipts/entries.js';

const meters = new MeterCatalog(
  parseMeters(
    `
meters:
  - slug: calls
    eventType: api.request
    aggregation: COUNT
    groupBy: { region: region }
    windows: [HOUR, DAY]
  - slug: spend
    eventType: api.request
    aggregation: SUM
    windows: [DAY]
`,
    'yaml',
    'meters.yaml',
  ),
);
const T = Date.UTC(2026, 10, 30, 13, 45, 12);

function event(over: Partial<UsageEvent> = {}): UsageEvent {
  return { source: 'svc-a', id: 'e-1', type: 'api.request', subject: 'acme', time: T, value: '2.5', dimensions: { region: 'eu' }, ...over };
}

/** Values in these tests are JSON (the decoder is the context's); the real one reads Avro. */
function record(topic: string, value: UsageEvent | string | null, headers: Record<string, string> = {}, at = T + 1_000, partition = 2, offset = '41'): SourceRecord {
  const bytes = value === null ? null : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  return { topic, partition, offset, key: null, value: bytes, headers, timestamp: at };
}

const context = (key: EntryContext['trailKey'] = { kind: 'traceparent' }): EntryContext => ({
  decode: (value) => {
    if (value === null) return undefined;
    try {
      const parsed = JSON.parse(value.toString('utf8')) as UsageEvent;
      return typeof parsed.source === 'string' ? parsed : undefined;
    } catch {
      return undefined;
    }
  },
  meters,
  trailKey: key,
});
const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('receipt entries from the pipeline outputs', () => {
  it('an ordered record is an accepted receipt with its seq, times, position and aggregate keys, and a trail event', () => {
    const entries = toEntries(
      'ordered',
      record('o', event(), { 'ordo-seq': '7', 'service-time': '0000019a0000000a', 'service-node': 'n1', 'origin-service-time': '0000019a00000001', 'origin-service-node': 'up', traceparent: TRACE }),
      context(),
    );
    expect(entries.receipts).toHaveLength(1);
    const [{ key, receipt }] = entries.receipts as [(typeof entries.receipts)[number]];
    expect(key).toBe(eventKey('svc-a', 'e-1'));
    expect(receipt).toMatchObject({ kind: 'accepted', seq: '7', serviceTime: '0000019a0000000a', serviceNode: 'n1', orderKey: { time: '0000019a00000001', node: 'up' }, position: { partition: 2, offset: '41' }, at: T + 1_000 });
    expect(receipt.kind === 'accepted' && receipt.aggregates).toEqual([
      '["calls","acme",{"region":"eu"},"HOUR","2026-11-30T13:00:00.000Z"]',
      '["calls","acme",{"region":"eu"},"DAY","2026-11-30T00:00:00.000Z"]',
      '["spend","acme",{},"DAY","2026-11-30T00:00:00.000Z"]',
    ]);
    expect(entries.trail).toMatchObject({ id: '0af7651916cd43dd8448eb211c80319c', event: { outcome: 'accepted', source: 'svc-a', id: 'e-1', topic: 'ordered' } });
  });

  it('an ordered correction is the correction accepted and a `corrected` receipt under the original', () => {
    const entries = toEntries('ordered', record('o', event({ id: 'fix-1' }), { 'ordo-correction': 'void', 'ordo-corrects-source': 'svc-a', 'ordo-corrects-id': 'e-1' }), context());
    expect(entries.receipts.map((r) => [r.key, r.receipt.kind])).toEqual([
      [eventKey('svc-a', 'fix-1'), 'accepted'],
      [eventKey('svc-a', 'e-1'), 'corrected'],
    ]);
    expect(entries.receipts[1]!.receipt).toMatchObject({ correction: 'void', by: { source: 'svc-a', id: 'fix-1' } });
  });

  it('a malformed correction header is not a correction', () => {
    const entries = toEntries('ordered', record('o', event(), { 'ordo-correction': 'undo', 'ordo-corrects-source': 'svc-a', 'ordo-corrects-id': 'e-0' }), context());
    expect(entries.receipts.map((r) => r.receipt.kind)).toEqual(['accepted']);
  });

  it('a dead letter that decodes is under its event; one that does not is under its DLQ position only', () => {
    const headers = { 'ordo-dlq-reason': 'invalid-value', 'ordo-dlq-error': 'meter spend reads value', 'ordo-source-partition': '2', 'ordo-source-offset': '9' };
    const decoded = toEntries('dlq', record('d', event(), headers), context());
    expect(decoded.receipts[0]).toMatchObject({ key: eventKey('svc-a', 'e-1'), receipt: { kind: 'dead-lettered', reason: 'invalid-value', error: 'meter spend reads value', input: { partition: 2, offset: '9' } } });
    const junk = toEntries('dlq', record('d', 'not an event', { ...headers, 'ordo-dlq-reason': 'undecodable' }, T, 0, '5'), context());
    expect(junk.receipts).toEqual([{ key: letterKey({ partition: 0, offset: '5' }), receipt: expect.objectContaining({ kind: 'dead-lettered', source: undefined, reason: 'undecodable' }) }]);
    expect(junk.trail).toBeUndefined();
  });

  it('a late record is a late receipt with its reason and detail', () => {
    const entries = toEntries('late', record('l', event(), { 'ordo-late-reason': 'too-late', 'ordo-late-detail': 'event time ...' }), context());
    expect(entries.receipts[0]!.receipt).toMatchObject({ kind: 'late', reason: 'too-late', detail: 'event time ...' });
  });

  it('a duplicates record lists every dropped re-send; malformed items and records are skipped', () => {
    const value = JSON.stringify({ duplicates: [{ source: 'svc-a', id: 'e-1', partition: 2, offset: '50', seenAt: T }, { source: 'x' }, { source: 'svc-b', id: 'e-9', partition: 1, offset: '3', seenAt: T + 5 }] });
    const entries = toEntries('duplicates', record('u', value), context());
    expect(entries.receipts.map((r) => [r.key, r.receipt.kind, r.receipt.kind === 'duplicate' && r.receipt.input.offset])).toEqual([
      [eventKey('svc-a', 'e-1'), 'duplicate', '50'],
      [eventKey('svc-b', 'e-9'), 'duplicate', '3'],
    ]);
    expect(toEntries('duplicates', record('u', '{"duplicates": 3}'), context()).receipts).toEqual([]);
    expect(toEntries('duplicates', record('u', 'garbage'), context()).receipts).toEqual([]);
    expect(toEntries('duplicates', record('u', null), context()).receipts).toEqual([]);
  });

  it('the correlation id comes from traceparent, a header or a dimension', () => {
    const e = event({ dimensions: { task: 'job-7' } });
    expect(correlationId(e, { traceparent: TRACE }, { kind: 'traceparent' })).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(correlationId(e, { traceparent: 'bogus' }, { kind: 'traceparent' })).toBeUndefined();
    expect(correlationId(e, { 'x-task': 'T1' }, { kind: 'header', name: 'X-Task' })).toBe('T1');
    expect(correlationId(e, {}, { kind: 'dimension', name: 'task' })).toBe('job-7');
    expect(correlationId(e, {}, { kind: 'dimension', name: 'missing' })).toBeUndefined();
  });

  it('event keys do not collide across the (source, id) split', () => {
    expect(eventKey('ab', 'c')).not.toBe(eventKey('a', 'bc'));
    expect(aggregatesTouched(event({ type: 'unmetered' }), meters)).toEqual([]);
  });
});
