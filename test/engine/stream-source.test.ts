import { KafkaJSDeleteGroupsError, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { deleteRefused } from '../../src/engine/stream-source.js';

/** A broker error as kafkajs builds it from a response's error code. */
function protocolError(type: string, code: number): KafkaJSProtocolError {
  return new KafkaJSProtocolError({ message: type, type, code, retriable: false } as unknown as Error);
}

function deleteGroupsError(type: string, code: number): KafkaJSDeleteGroupsError {
  return new KafkaJSDeleteGroupsError('Error in DeleteGroups', [{ groupId: 'g', errorCode: code, error: protocolError(type, code) }]);
}

describe('deleteRefused (the stream source stops deleting its groups once refused)', () => {
  it('is true for a DeleteGroups refused for lack of an ACL, whether kafkajs reports it per group or as the error', () => {
    expect(deleteRefused(deleteGroupsError('GROUP_AUTHORIZATION_FAILED', 30))).toBe(true);
    expect(deleteRefused(protocolError('GROUP_AUTHORIZATION_FAILED', 30))).toBe(true);
  });

  it('is false for anything else: an unknown or non-empty group, a network error, a bug', () => {
    expect(deleteRefused(deleteGroupsError('GROUP_ID_NOT_FOUND', 69))).toBe(false);
    expect(deleteRefused(deleteGroupsError('NON_EMPTY_GROUP', 68))).toBe(false);
    expect(deleteRefused(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(deleteRefused(new TypeError('x is undefined'))).toBe(false);
    expect(deleteRefused(undefined)).toBe(false);
  });
});
