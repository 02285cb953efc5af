import { describe, expect, it } from 'vitest';
import { isRoutineNoise } from '../../src/kafka/client.js';

describe('kafkajs log noise', () => {
  it.each([
    ["The coordinator is loading and hence can't process requests for this group"],
    ['This server does not host this topic-partition'],
    ['The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing'],
  ])('a retried broker answer is debug: %s', (error) => {
    expect(isRoutineNoise('Response InitProducerId(key: 22, version: 1)', { error })).toBe(true);
  });

  it('the partitioner notice and the idempotent retries warning are debug', () => {
    expect(isRoutineNoise('KafkaJS v2.0.0 switched default partitioner. To retain ...', {})).toBe(true);
    expect(isRoutineNoise('Limiting retries for the idempotent producer to Number.MAX_SAFE_INTEGER', {})).toBe(true);
  });

  it('anything else keeps its level', () => {
    expect(isRoutineNoise('Response Produce(key: 0, version: 7)', { error: 'The request included a message larger than the max message size the server will accept' })).toBe(false);
    expect(isRoutineNoise('Crash: KafkaJSNumberOfRetriesExceeded', { error: 'The coordinator is loading and hence can\'t process requests for this group' })).toBe(false);
  });
});
