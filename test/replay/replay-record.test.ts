import { describe, expect, it } from 'vitest';
import { type ReplayRecord, ReplaySet, encodeReplayRecord, parseReplayRecord } from '../../src/replay/replay-record.js';

const record: ReplayRecord = {
  partition: 1,
  offset: '17',
  reason: 'invalid-value',
  replayedAt: 1_764_000_000_000,
  by: 'ops',
  corrected: true,
  input: { topic: 'usage-events', partition: 1, offset: '900' },
};

describe('the replay record', () => {
  it('is keyed by <dlq partition>/<offset> and reads back as written', () => {
    const { key, value } = encodeReplayRecord(record);
    expect(key).toBe('1/17');
    expect(parseReplayRecord(value)).toEqual(record);
    expect(parseReplayRecord(Buffer.from(value))).toEqual(record);
  });

  it('refuses what is not one (not JSON, a field missing or of the wrong type)', () => {
    expect(parseReplayRecord('nope')).toBeUndefined();
    expect(parseReplayRecord('null')).toBeUndefined();
    expect(parseReplayRecord(JSON.stringify({ ...record, input: null }))).toBeUndefined();
    expect(parseReplayRecord(JSON.stringify({ ...record, offset: 17 }))).toBeUndefined();
    const { by: _by, ...noBy } = record;
    expect(parseReplayRecord(JSON.stringify(noBy))).toBeUndefined();
  });
});

describe('the set of replayed letters', () => {
  it('follows the compacted topic: a record adds, a tombstone forgets, a foreign or mismatched record is ignored', () => {
    const set = new ReplaySet();
    const { key, value } = encodeReplayRecord(record);
    set.apply(key, Buffer.from(value));
    expect(set.get(1, '17')).toEqual(record);
    set.apply('1/18', Buffer.from(value)); // key and content disagree
    expect(set.get(1, '18')).toBeUndefined();
    set.apply('2/3', Buffer.from('garbage'));
    expect(set.size).toBe(1);
    set.apply(key, null);
    expect(set.get(1, '17')).toBeUndefined();
  });

  it('knows its own replays at once', () => {
    const set = new ReplaySet();
    set.add(record);
    expect(set.get(1, '17')?.input.offset).toBe('900');
  });
});
