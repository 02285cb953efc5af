import { afterEach, describe, expect, it } from 'vitest';
import { classify, fatalMessage } from '../../src/engine/error-policy.js';
import { forgetAuthorizationFailures, recentAuthorizationFailure, witnessKafkaLog } from '../../src/kafka/authorization-witness.js';

/** kafkajs' error when FindCoordinator failed, whatever the reason. */
function coordinatorNotFound(): Error {
  return Object.assign(new Error('Failed to find group coordinator'), { name: 'KafkaJSGroupCoordinatorNotFound', retriable: false });
}

afterEach(() => forgetAuthorizationFailures());

describe('authorization failures kafkajs only logs', () => {
  it('are noted from its response log lines, with the request', () => {
    expect(witnessKafkaLog('Connection: Response GroupCoordinator(key: 10, version: 2)', 'Transactional Id authorization failed', 1_000)).toEqual({
      type: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
      request: 'GroupCoordinator',
      at: 1_000,
    });
    expect(witnessKafkaLog('Connection: Response GroupCoordinator(key: 10, version: 2)', 'Not authorized to access group: Group authorization failed')?.type).toBe('GROUP_AUTHORIZATION_FAILED');
    expect(witnessKafkaLog('Connection: Response Metadata(key: 3, version: 6)', 'Not authorized to access topics: [Topic authorization failed]')?.type).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(witnessKafkaLog('Connection: Response Produce', 'This server is not the leader for that topic-partition')).toBeUndefined();
    expect(witnessKafkaLog('anything', undefined)).toBeUndefined();
  });

  it('turn a coordinator not found into a fatal "not authorized" only while recent', () => {
    expect(classify(coordinatorNotFound())).toBe('retry'); // a broker restart looks the same
    witnessKafkaLog('Connection: Response GroupCoordinator(key: 10, version: 2)', 'Transactional Id authorization failed');
    const wrapped = Object.assign(new Error('transaction failed: Failed to find group coordinator'), { cause: coordinatorNotFound() });
    expect(classify(wrapped)).toBe('fatal');
    expect(fatalMessage(wrapped)).toMatch(/^not authorized: TRANSACTIONAL_ID_AUTHORIZATION_FAILED \(the broker answered .* to GroupCoordinator\)/);
    expect(recentAuthorizationFailure(60_000, Date.now() + 61_000)).toBeUndefined();
  });
});
