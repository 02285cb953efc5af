import type { Message, ProducerRecord, RecordMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  HybridClock,
  type ProducerLike,
  consistencyTokens,
  decodeConsistencyToken,
  lastPositions,
  parseServiceTime,
  readTimeContext,
  sendWithConsistencyToken,
  stampRecord,
} from '../../src/client/index.js';

const meta = (partition: number, baseOffset: string | undefined, topicName = 'usage-events', errorCode = 0): RecordMetadata => ({ topicName, partition, errorCode, baseOffset });

describe('stampRecord', () => {
  it('adds a send stamp of the clock, keeps other headers, replaces an old stamp and leaves the message given alone', () => {
    const clock = new HybridClock({ node: 'svc-a', physical: { now: () => 1_800_000_000_000 } }); // frozen: stamps count up by 1
    const message: Message = { key: 'acme', value: 'v', headers: { traceparent: 'tp', 'service-time': '0000000000000001' } };
    const stamped = stampRecord(clock, message);
    const again = stampRecord(clock, message);
    expect(stamped.headers.traceparent).toBe('tp');
    expect(readTimeContext(stamped.headers)).toEqual({ time: clock.last - 1n, node: 'svc-a' });
    expect(parseServiceTime(again.headers['service-time'])).toBe(clock.last);
    expect(message.headers!['service-time']).toBe('0000000000000001');
    expect(stamped.key).toBe('acme');
  });
});

describe('consistency tokens from record metadata', () => {
  it('names the LAST message of each partition: baseOffset + count - 1', () => {
    expect(lastPositions([meta(0, '41'), meta(3, '0')], (_t, p) => (p === 0 ? 5 : 1))).toEqual([
      { topic: 'usage-events', partition: 0, offset: '45' },
      { topic: 'usage-events', partition: 3, offset: '0' },
    ]);
    // int64 offsets stay exact
    expect(lastPositions([meta(1, '9007199254740993')], () => 2)[0]!.offset).toBe('9007199254740994');
  });

  it('counts messages per explicit partition', () => {
    const record = { topic: 'usage-events', messages: [0, 1, 0, 0, 1].map((partition) => ({ partition, value: 'x' })) };
    const tokens = consistencyTokens(record, [meta(0, '10'), meta(1, '7'), meta(0, '99', 'other-topic')]);
    expect(tokens.map((t) => decodeConsistencyToken(t.token))).toEqual([
      { topic: 'usage-events', partition: 0, offset: '12' },
      { topic: 'usage-events', partition: 1, offset: '8' },
    ]);
  });

  it('refuses to guess: a message without a partition, a missing answer, no offset (acks 0) or an error code', () => {
    expect(() => consistencyTokens({ topic: 't', messages: [{ partition: 0, value: 'a' }, { value: 'b' }] }, [meta(0, '1', 't')])).toThrow(/message 1 .* no explicit partition/);
    expect(() => consistencyTokens({ topic: 't', messages: [{ partition: 2, value: 'a' }] }, [meta(0, '1', 't')])).toThrow(/partition\(s\) 2/);
    expect(() => lastPositions([meta(0, undefined)], () => 1)).toThrow(/acks: 0/);
    expect(() => lastPositions([meta(0, '-1')], () => 1)).toThrow(/no base offset/);
    expect(() => lastPositions([meta(0, '5', 'usage-events', 6)], () => 1)).toThrow(/error code 6/);
    expect(() => lastPositions([meta(0, '5')], () => 0)).toThrow(/at least 1/);
  });

  it('sendWithConsistencyToken sends exactly one message and names its offset', async () => {
    const sent: ProducerRecord[] = [];
    const producer: ProducerLike = {
      send: (record) => {
        sent.push(record);
        return Promise.resolve([meta(2, '17')]);
      },
    };
    const result = await sendWithConsistencyToken(producer, 'usage-events', { key: 'k', value: 'v' }, { acks: -1 });
    expect(sent).toEqual([{ acks: -1, topic: 'usage-events', messages: [{ key: 'k', value: 'v' }] }]);
    expect(result.position).toEqual({ topic: 'usage-events', partition: 2, offset: '17' });
    expect(decodeConsistencyToken(result.token)).toEqual(result.position);
  });
});
