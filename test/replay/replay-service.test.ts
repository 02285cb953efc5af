import { describe, expect, it } from 'vitest';
import { QueryError } from '../../src/errors.js';
import type { SourceRecord } from '../../src/model/records.js';
import { toDeadLetterRecord } from '../../src/processors/dead-letter.js';
import type { OffsetRange } from '../../src/replay/dead-letter-source.js';
import { type ReplayRecord, ReplaySet } from '../../src/replay/replay-record.js';
import { MAX_BULK_REPLAY } from '../../src/replay/replay-request.js';
import { ReplayService } from '../../src/replay/replay-service.js';
import type { ReplayWrite } from '../../src/replay/replay-writer.js';
import { noopLogger } from '../../src/observability/logger.js';

/**
 * The service over an in-memory DLQ (one partition, offsets 0..n-1, timestamp = offset) and
 * an in-memory "transaction" log: what is counted, refused, capped and written.
 */
function harness(letters: { reason?: 'invalid-value' | 'clock-skew'; value?: Buffer | null; topic?: string }[], ready = true) {
  const records: SourceRecord[] = letters.map((l, i) => {
    const input: SourceRecord = { topic: l.topic ?? 'in', partition: 0, offset: String(100 + i), key: Buffer.from('acme'), value: l.value === undefined ? Buffer.from([0, 0, 0, 0, 1]) : l.value, headers: { 'x-a': 'b' }, timestamp: 0 };
    const out = toDeadLetterRecord({ source: input, reason: l.reason ?? 'clock-skew', message: 'm' }, 'dlq', 'n');
    return { topic: 'dlq', partition: 0, offset: String(i), key: out.key as Buffer, value: out.value as Buffer | null, headers: out.headers, timestamp: i };
  });
  const written: ReplayWrite[][] = [];
  const outcomes: Record<string, number> = {};
  const replays = new ReplaySet();
  const service = new ReplayService({
    source: {
      bounds: () => Promise.resolve(new Map([[0, { from: 0n, to: BigInt(records.length) }]])),
      offsetsAt: (ms) => Promise.resolve(new Map([[0, BigInt(Math.min(Math.max(ms, 0), records.length))]])),
      read: (partition, offset) => Promise.resolve(partition === 0 ? records[Number(offset)] : undefined),
      scan: (ranges: ReadonlyMap<number, OffsetRange>, onRecord: (r: SourceRecord) => boolean) => {
        const range = ranges.get(0);
        if (range !== undefined) for (let o = range.from; o < range.to; o++) if (!onRecord(records[Number(o)]!)) break;
        return Promise.resolve();
      },
    },
    writer: {
      run: (task) => task(),
      write: (writes) => {
        written.push([...writes]);
        return Promise.resolve(writes.map((w, i): ReplayRecord => ({ ...w.record, input: { topic: 'in', partition: 0, offset: String(written.length * 1000 + i) } })));
      },
    },
    replays,
    codec: { decode: () => Promise.resolve(undefined), encode: () => Promise.resolve(Buffer.from('encoded')) },
    inputTopic: 'in',
    ready: () => ready,
    onOutcome: (outcome, n) => (outcomes[outcome] = (outcomes[outcome] ?? 0) + n),
    logger: noopLogger,
    now: () => 42,
  });
  return { service, written, outcomes, replays };
}

async function refusal(promise: Promise<unknown>): Promise<QueryError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof QueryError) return error;
    throw error;
  }
  throw new Error('did not throw');
}

describe('replaying one letter', () => {
  it('writes the original bytes to their input partition with the replay record, then answers 409', async () => {
    const h = harness([{ reason: 'clock-skew' }]);
    const answer = await h.service.replayOne({ partition: 0, offset: '0' }, undefined, 'ops');
    expect(answer.replay).toMatchObject({ partition: 0, offset: '0', reason: 'clock-skew', replayedAt: 42, by: 'ops', corrected: false });
    expect(h.written).toHaveLength(1);
    expect(h.written[0]![0]).toMatchObject({ key: Buffer.from('acme'), value: Buffer.from([0, 0, 0, 0, 1]), headers: { 'x-a': 'b', 'ordo-replay-of': '0/0' }, place: { partition: 0 } });
    const again = await refusal(h.service.replayOne({ partition: 0, offset: '0' }, undefined, 'ops'));
    expect([again.status, again.kind, again.details]).toEqual([409, 'already-replayed', { replay: answer.replay }]);
    expect(h.written).toHaveLength(1);
    expect(h.outcomes).toEqual({ replayed: 1, 'already-replayed': 1 });
  });

  it('answers 404 where there is no letter, 400 for a letter of another topic or without a value, 503 before the replays are read', async () => {
    const h = harness([{ topic: 'ordered' }, { value: null }]);
    const missing = await refusal(h.service.replayOne({ partition: 0, offset: '9' }, undefined, 'ops'));
    expect([missing.status, missing.kind]).toEqual([404, 'dead-letter-not-found']);
    expect((await refusal(h.service.replayOne({ partition: 0, offset: '0' }, undefined, 'ops'))).kind).toBe('not-replayable');
    expect((await refusal(h.service.replayOne({ partition: 0, offset: '1' }, undefined, 'ops'))).kind).toBe('bad-body');
    expect(h.written).toEqual([]);
    expect(h.outcomes).toEqual({ 'not-found': 1 });
    const e = await refusal(harness([{}], false).service.replayOne({ partition: 0, offset: '0' }, undefined, 'ops'));
    expect([e.status, e.kind, e.headers]).toEqual([503, 'replays-not-ready', { 'retry-after': '2' }]);
  });
});

describe('a bulk replay', () => {
  it('counts by reason and range in a dry run, writes nothing, then replays what is left in transactions of 500', async () => {
    const h = harness([...Array.from({ length: 1_200 }, () => ({ reason: 'clock-skew' as const })), { reason: 'invalid-value' }, { value: null }, { topic: 'ordered' }]);
    await h.service.replayOne({ partition: 0, offset: '3' }, undefined, 'ops');
    const filter = { reason: 'clock-skew' as const, fromMs: 0, toMs: 10_000 };
    const dry = await h.service.replayBulk({ filter, dryRun: true }, 'ops');
    expect(dry).toMatchObject({ matched: 1_202, alreadyReplayed: 1, withoutValue: 1, notReplayable: 1, toReplay: 1_199 });
    expect((dry.examples as unknown[]).length).toBe(5);
    expect(h.written).toHaveLength(1);
    const done = await h.service.replayBulk({ filter, dryRun: false }, 'ops');
    expect(done).toMatchObject({ matched: 1_202, replayed: 1_199, alreadyReplayed: 1, complete: true });
    expect(h.written.slice(1).map((w) => w.length)).toEqual([500, 500, 199]);
    expect(h.replays.size).toBe(1_200);
    expect(await h.service.replayBulk({ filter, dryRun: false }, 'ops')).toMatchObject({ replayed: 0, alreadyReplayed: 1_200 });
    // Dry runs count nothing; each replay request counts what it replayed and found replayed.
    expect(h.outcomes).toEqual({ replayed: 1 + 1_199, 'already-replayed': 1 + 1_200 });
  });

  it('replays at most MAX_BULK_REPLAY per request; the same request again goes on', async () => {
    const h = harness(Array.from({ length: MAX_BULK_REPLAY + 7 }, () => ({})));
    const filter = { reason: 'clock-skew' as const, fromMs: 0, toMs: 1e12 };
    expect(await h.service.replayBulk({ filter, dryRun: false }, 'ops')).toMatchObject({ replayed: MAX_BULK_REPLAY, complete: false });
    expect(await h.service.replayBulk({ filter, dryRun: false }, 'ops')).toMatchObject({ replayed: 7, alreadyReplayed: MAX_BULK_REPLAY, complete: true });
    expect(h.replays.size).toBe(MAX_BULK_REPLAY + 7);
  });

  it('matches the half-open range on the DLQ timestamp', async () => {
    const h = harness(Array.from({ length: 10 }, () => ({})));
    expect(await h.service.replayBulk({ filter: { reason: 'clock-skew', fromMs: 2, toMs: 5 }, dryRun: true }, 'ops')).toMatchObject({ matched: 3 });
    const listed = await h.service.list({ fromMs: 2, toMs: 5 }, 2);
    expect(listed.complete).toBe(false);
    expect(listed.deadLetters.map((l) => l.offset)).toEqual(['2', '3']);
  });
});
