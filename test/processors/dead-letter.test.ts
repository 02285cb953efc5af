import { describe, expect, it } from 'vitest';
import { toDeadLetterRecord } from '../../src/processors/dead-letter.js';
import type { DeadLetter } from '../../src/model/records.js';
import { sourceRecord } from '../support/unit/fixtures.js';

function deadLetter(fields: Partial<DeadLetter> = {}): DeadLetter {
  return {
    source: sourceRecord({
      topic: 'usage-events',
      partition: 5,
      offset: '9007199254740993', // beyond 2^53: offsets stay strings
      key: Buffer.from('customer-7'),
      value: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      headers: { traceparent: '00-abc-def-01', 'service-time': '0000018bcfe56800', 'x-bin': Buffer.from([1, 2]) },
    }),
    reason: 'undecodable',
    message: 'value does not start with the Confluent magic byte 0 (found 0xde)',
    ...fields,
  };
}

describe('toDeadLetterRecord', () => {
  it('keeps the original key and bytes untouched and adds the reason and provenance headers', () => {
    const dead = deadLetter();
    const out = toDeadLetterRecord(dead, 'usage-events-dlq', 'ordo-3');
    expect(out.topic).toBe('usage-events-dlq');
    expect(out.key).toBe(dead.source.key);
    expect(out.value).toBe(dead.source.value);
    expect([...(out.value as Buffer)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(out.headers).toEqual({
      traceparent: '00-abc-def-01',
      'service-time': '0000018bcfe56800',
      'x-bin': Buffer.from([1, 2]),
      'ordo-dlq-reason': 'undecodable',
      'ordo-dlq-error': dead.message,
      'ordo-dlq-node': 'ordo-3',
      'ordo-source-topic': 'usage-events',
      'ordo-source-partition': '5',
      'ordo-source-offset': '9007199254740993',
    });
  });

  it('keeps a null key and a null value', () => {
    const dead = deadLetter({ source: sourceRecord({ key: null, value: null }) });
    const out = toDeadLetterRecord(dead, 'dlq', 'n');
    expect(out.key).toBeNull();
    expect(out.value).toBeNull();
  });

  it('overwrites DLQ headers an input record already carried (a replayed dead letter)', () => {
    const dead = deadLetter({
      reason: 'clock-skew',
      message: 'new',
      source: sourceRecord({
        topic: 't2',
        partition: 0,
        offset: '12',
        value: null,
        headers: { 'ordo-dlq-reason': 'unknown-schema', 'ordo-dlq-error': 'old', 'ordo-dlq-node': 'old-node', 'ordo-source-topic': 'old', 'ordo-source-partition': '9', 'ordo-source-offset': '1' },
      }),
    });
    expect(toDeadLetterRecord(dead, 'dlq', 'n1').headers).toEqual({
      'ordo-dlq-reason': 'clock-skew',
      'ordo-dlq-error': 'new',
      'ordo-dlq-node': 'n1',
      'ordo-source-topic': 't2',
      'ordo-source-partition': '0',
      'ordo-source-offset': '12',
    });
  });

  it('caps the error header at 1000 characters', () => {
    const out = toDeadLetterRecord(deadLetter({ message: 'x'.repeat(5000) }), 'dlq', 'n');
    expect(out.headers['ordo-dlq-error']).toBe('x'.repeat(1000));
  });
});
