import { describe, expect, it } from 'vitest';
import { readCorrection } from '../../src/corrections/correction.js';
import { pendingCodec } from '../../src/corrections/pending.js';
import type { OutputRecord, SourceRecord } from '../../src/model/records.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { FakeClock, MemoryTopics, T0 } from '../support/unit/fixtures.js';
import { AGGREGATES, DLQ, LATE, LATENESS_MS, ORDERED, commitTo, correctionHeaders, decodeEvent, eventRecord, header, lastAggregates, pipeline, pipelineContext, restoredContext } from './harness.js';

const use = (id: string, overrides: Partial<UsageEvent> = {}): UsageEvent => ({ id, source: 'svc', type: 'use', subject: 'acme', time: T0 - 1_000, value: '5', dimensions: { user: 'u1', region: 'eu' }, ...overrides });
const fix = (id: string, overrides: Partial<UsageEvent> = {}): UsageEvent => use(id, { source: 'fixes', ...overrides });

/** Runs batches through one pipeline (committing each), returning the topics. */
async function runBatches(batches: SourceRecord[][], options: Parameters<typeof pipeline>[1] & { advanceMs?: number } = {}) {
  const physical = new FakeClock(T0);
  const topics = new MemoryTopics();
  const p = pipeline(physical, options);
  const context = pipelineContext();
  await p.onRestored(context, topics);
  const reports: { kind: string; outcome: string }[] = [];
  for (const batch of batches) {
    physical.ms += options.advanceMs ?? 10;
    await p.prepare(batch);
    const result = p.process(batch, context);
    reports.push(...(result.report.corrections ?? []));
    commitTo(topics, context, result.outputs, physical.ms);
  }
  return { topics, reports, context, physical, p };
}

const reasons = (records: readonly { headers: Record<string, unknown> }[] | undefined, name: string): (string | undefined)[] => (records ?? []).map((r) => header(r, name));

describe('readCorrection: the headers of a correction', () => {
  const own = { source: 'fixes', id: 'c1' };
  it('a plain event has none; a well-formed correction names its kind and original', () => {
    expect(readCorrection({}, own)).toBeUndefined();
    expect(readCorrection(correctionHeaders('void', 'svc', 'e1'), own)).toEqual({ kind: 'void', source: 'svc', id: 'e1' });
    expect(readCorrection({ ...correctionHeaders('amend', 'svc', 'e1'), 'ordo-correction': Buffer.from('amend') }, own)).toEqual({ kind: 'amend', source: 'svc', id: 'e1' });
  });
  it.each([
    [{ 'ordo-correction': 'delete', 'ordo-corrects-source': 'svc', 'ordo-corrects-id': 'e1' }, /ordo-correction is "delete", not one of void, amend/],
    [{ 'ordo-correction': 'void', 'ordo-corrects-id': 'e1' }, /a void needs ordo-corrects-source/],
    [{ 'ordo-correction': 'amend', 'ordo-corrects-source': 'svc', 'ordo-corrects-id': '' }, /an? amend needs ordo-corrects-id/],
    [{ 'ordo-corrects-source': 'svc', 'ordo-corrects-id': 'e1' }, /without ordo-correction/],
    [{ 'ordo-correction': 'void', 'ordo-corrects-source': 'svc', 'ordo-corrects-id': 'x'.repeat(1025) }, /longer than 1024 bytes/],
    [{ 'ordo-correction': 'void', 'ordo-corrects-source': 'fixes', 'ordo-corrects-id': 'c1' }, /names itself/],
  ])('malformed: %j', (headers, message) => {
    expect(readCorrection(headers, own)).toMatch(message);
  });
  it('a waiting correction survives its codec (bytes and repeated headers included)', () => {
    const source: SourceRecord = { topic: 't', partition: 1, offset: '7', key: Buffer.from('acme'), value: Buffer.from([0, 1, 2, 255]), headers: { a: [Buffer.from([1, 2]), 'x'], b: 'y' }, timestamp: 5 };
    const p = { source, event: fix('c1'), target: { kind: 'void' as const, source: 'svc', id: 'e1' }, stamp: { time: 123456789n, node: 'n' } };
    expect(pendingCodec.decode(pendingCodec.encode(p))).toEqual(p);
  });
});

describe('bad corrections in the pipeline: a named reason, never counted', () => {
  it('malformed headers: DLQ invalid-correction, before dedupe (the fixed re-send is applied)', async () => {
    const bad = eventRecord(fix('c1'), { 'ordo-correction': 'void', 'ordo-corrects-source': 'svc' });
    const { topics, reports } = await runBatches([[eventRecord(use('e1'))], [bad], [eventRecord(fix('c1'), correctionHeaders('void', 'svc', 'e1'))]]);
    expect(reasons(topics.topics.get(DLQ), 'ordo-dlq-reason')).toEqual(['invalid-correction']);
    expect(reports).toEqual([{ kind: 'void', outcome: 'applied' }]);
    expect(lastAggregates(topics).get('["sum","acme",{"region":"eu"},"HOUR","2023-11-14T22:00:00.000Z"]')).toMatchObject({ value: '0', count: 0, corrections: 1, version: 2 });
  });

  it('a void of a void, an amend of a correction, a second void, a subject that differs: DLQ invalid-correction, and their ids stay unclaimed', async () => {
    const { topics, reports } = await runBatches([
      [eventRecord(use('e1')), eventRecord(use('e2'))],
      [eventRecord(fix('v1'), correctionHeaders('void', 'svc', 'e1'))],
      [
        eventRecord(fix('v2'), correctionHeaders('void', 'fixes', 'v1')),
        eventRecord(fix('a1'), correctionHeaders('amend', 'fixes', 'v1')),
        eventRecord(fix('v3'), correctionHeaders('void', 'svc', 'e1')),
        eventRecord(fix('v4', { subject: 'other' }), correctionHeaders('void', 'svc', 'e2')),
      ],
    ]);
    const dlq = topics.topics.get(DLQ) ?? [];
    expect(reasons(dlq, 'ordo-dlq-reason')).toEqual(['invalid-correction', 'invalid-correction', 'invalid-correction', 'invalid-correction']);
    expect(reasons(dlq, 'ordo-dlq-error')).toEqual([
      expect.stringMatching(/void of "fixes"\/"v1", which is itself a void: a correction cannot be corrected/),
      expect.stringMatching(/amend of "fixes"\/"v1", which is itself a void/),
      expect.stringMatching(/void of "svc"\/"e1", which was already voided by "fixes"\/"v1"/),
      expect.stringMatching(/under subject "other", but the original's subject is "acme"/),
    ]);
    expect(reports.filter((r) => r.outcome === 'dead-lettered')).toHaveLength(4);
    expect((topics.topics.get(ORDERED) ?? []).map((r) => decodeEvent(r).id)).toEqual(['e1', 'e2', 'v1']);
  });

  it('an original never accepted: held, then DLQ correction-unknown-original after the hold; at the cap at once', async () => {
    const { topics, reports } = await runBatches(
      [[eventRecord(fix('c1'), correctionHeaders('void', 'svc', 'nope'))], [eventRecord(fix('c2'), correctionHeaders('amend', 'svc', 'nope2'))], [eventRecord(use('later'))]],
      { holdMs: 1_500, maxPending: 1, advanceMs: 1_000 },
    );
    expect(reasons(topics.topics.get(DLQ), 'ordo-dlq-reason')).toEqual(['correction-unknown-original', 'correction-unknown-original']);
    expect(reasons(topics.topics.get(DLQ), 'ordo-dlq-error')).toEqual([
      expect.stringMatching(/amend of "svc"\/"nope2": .* and 1 corrections already wait/),
      expect.stringMatching(/void of "svc"\/"nope": no such event was accepted within the allowed lateness \(waited 1500 ms/),
    ]);
    expect(reports).toEqual([
      { kind: 'void', outcome: 'pending' },
      { kind: 'amend', outcome: 'dead-lettered' },
      { kind: 'void', outcome: 'dead-lettered' },
    ]);
  });

  it('on an idle partition too: the tick dead-letters a correction that waited longer than the hold', async () => {
    const { topics, context, physical, p } = await runBatches([[eventRecord(fix('c1'), correctionHeaders('void', 'svc', 'never'))]], { holdMs: 60_000 });
    physical.ms += 30_000;
    expect(p.punctuate(context)).toBeUndefined();
    physical.ms += 31_000;
    const tick = p.punctuate(context)!;
    commitTo(topics, context, tick.outputs, physical.ms);
    expect(reasons(topics.topics.get(DLQ), 'ordo-dlq-reason')).toEqual(['correction-unknown-original']);
    expect(tick.report.corrections).toEqual([{ kind: 'void', outcome: 'dead-lettered' }]);
    expect(tick.report.deadLetters).toHaveLength(1);
    expect(p.punctuate(context)).toBeUndefined(); // gone from the store: nothing twice
  });

  it('beyond the allowed lateness: the late topic, reason correction-too-late', async () => {
    const physical = new FakeClock(T0);
    const topics = new MemoryTopics();
    const p = pipeline(physical);
    const context = pipelineContext();
    await p.onRestored(context, topics);
    const step = async (records: SourceRecord[]): Promise<OutputRecord[]> => {
      await p.prepare(records);
      const { outputs } = p.process(records, context);
      commitTo(topics, context, outputs, physical.ms);
      return outputs;
    };
    await step([eventRecord(use('e1', { time: T0 - LATENESS_MS + 60_000 })), eventRecord(use('e2'))]);
    physical.ms += 120_000;
    await step([eventRecord(fix('v1'), correctionHeaders('void', 'svc', 'e1')), eventRecord(fix('a2', { time: T0 - LATENESS_MS - 1 }), correctionHeaders('amend', 'svc', 'e2'))]);
    expect(reasons(topics.topics.get(LATE), 'ordo-late-reason')).toEqual(['correction-too-late', 'correction-too-late']);
    expect(reasons(topics.topics.get(LATE), 'ordo-late-detail')).toEqual([expect.stringMatching(/the original's event time .* its windows are final/), expect.stringMatching(/the amended event time/)]);
  });

  it('with corrections off (ORDO_CORRECTIONS=false) a correction is dead-lettered, never counted as an event', async () => {
    const { topics } = await runBatches([[eventRecord(use('e1')), eventRecord(fix('v1'), correctionHeaders('void', 'svc', 'e1'))]], { enabled: false });
    expect(reasons(topics.topics.get(DLQ), 'ordo-dlq-error')).toEqual([expect.stringMatching(/corrections are disabled \(ORDO_CORRECTIONS=false\)/)]);
    expect(lastAggregates(topics).get('["count","acme",{},"DAY","2023-11-14T00:00:00.000Z"]')).toMatchObject({ value: '1', corrections: 0 });
  });
});

describe('corrections change aggregates exactly', () => {
  const key = (meter: string, size = 'HOUR', group = '{}'): string => `["${meter}","acme",${group},"${size}","2023-11-14T22:00:00.000Z"]`;

  it('a void takes the MIN/MAX/LATEST/UNIQUE_COUNT back to what the remaining events give; an amend moves an event to another window; each counts a correction', async () => {
    const { topics, reports, context } = await runBatches([
      [eventRecord(use('e1', { value: '1', dimensions: { user: 'u1', region: 'eu' } })), eventRecord(use('e2', { value: '9', dimensions: { user: 'u2', region: 'eu' } })), eventRecord(use('e3', { value: '4', dimensions: { user: 'u1', region: 'eu' } }))],
      [eventRecord(fix('v2'), correctionHeaders('void', 'svc', 'e2')), eventRecord(fix('a1', { value: '6', time: T0 - 2 * 3_600_000, dimensions: { user: 'u3', region: 'eu' } }), correctionHeaders('amend', 'svc', 'e1'))],
    ]);
    const agg = lastAggregates(topics);
    expect(agg.get(key('min'))).toMatchObject({ value: '4', count: 1, corrections: 2, version: 5 });
    expect(agg.get(key('max', 'HOUR', '{"region":"eu"}'))).toMatchObject({ value: '4', count: 1, corrections: 2 });
    expect(agg.get(key('latest'))).toMatchObject({ value: '4', count: 1 });
    expect(agg.get(key('users'))).toMatchObject({ value: '1', count: 1 });
    expect(agg.get(key('avg'))).toMatchObject({ value: '4', count: 1 });
    // The amended event is now two hours earlier: its window, and the day's totals (one correction each).
    expect(agg.get('["sum","acme",{"region":"eu"},"HOUR","2023-11-14T20:00:00.000Z"]')).toMatchObject({ value: '6', count: 1, corrections: 1, version: 1 });
    expect(agg.get('["sum","acme",{"region":"eu"},"DAY","2023-11-14T00:00:00.000Z"]')).toMatchObject({ value: '10', count: 2, corrections: 2, version: 5 });
    expect(reports).toEqual([{ kind: 'void', outcome: 'applied' }, { kind: 'amend', outcome: 'applied' }]);
    // UNIQUE_COUNT membership follows: u2 is gone from the hour (a new u2 event counts again), u1 is still there.
    const unique = context.stores.get('unique')!;
    expect(unique.get(`${key('users')}\u0000u2`)).toBeUndefined();
    expect(unique.get(`${key('users')}\u0000u1`)).toBeDefined();
  });

  it('a correction that comes before its original waits (in meta, restorable after a crash) and is applied when the original arrives', async () => {
    const physical = new FakeClock(T0);
    const topics = new MemoryTopics();
    const input = [eventRecord(fix('v1'), correctionHeaders('void', 'svc', 'e1')), eventRecord(use('e2')), eventRecord(use('e1'))].map((r, k) => ({ ...r, offset: String(k) }));
    topics.topics.set('usage-events', input);
    let p = pipeline(physical);
    let context = pipelineContext();
    await p.onRestored(context, topics);
    await p.prepare([input[0]!]);
    const first = p.process([input[0]!], context);
    expect(first.report.corrections).toEqual([{ kind: 'void', outcome: 'pending' }]);
    commitTo(topics, context, first.outputs, physical.ms);
    // Crash: a fresh owner restores; the waiting void is still there, and its id still claimed.
    const fresh = pipeline(physical);
    context = restoredContext(fresh, context);
    await fresh.onRestored(context, topics);
    context.commit();
    p = fresh;
    physical.ms += 100;
    await p.prepare(input.slice(1));
    const second = p.process([...input.slice(1), { ...input[0]!, offset: '3' }], context);
    commitTo(topics, context, second.outputs, physical.ms);
    expect(second.report.duplicates).toBe(1);
    expect(second.report.corrections).toEqual([{ kind: 'void', outcome: 'applied' }]);
    expect((topics.topics.get(ORDERED) ?? []).map((r) => decodeEvent(r).id)).toEqual(['e2', 'e1', 'v1']);
    expect(lastAggregates(topics).get(key('count'))).toMatchObject({ value: '1', count: 1, corrections: 1, version: 3 });
    expect(topics.topics.get(AGGREGATES)!.length).toBeGreaterThan(0);
  });
});
