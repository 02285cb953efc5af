import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/kafka/partition-of.js';

describe('partitionOf', () => {
  it('agrees with the Java client murmur2 partitioner on known keys', () => {
    // Values computed by org.apache.kafka.common.utils.Utils.murmur2 (toPositive(murmur2(bytes)) % n).
    const java: [string, number][] = [['a', 4], ['customer-1', 9], ['acme', 0], ['subject-42', 0], ['ü-unicode', 5]];
    for (const [key, partition] of java) expect(partitionOf(key, 12), key).toBe(partition);
    expect([...Array(12).keys()].map((i) => partitionOf(`subject-${i}`, 1))).toEqual(Array(12).fill(0));
  });
  it('spreads subjects over every partition', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(partitionOf(`customer-${i}`, 6));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
  it('refuses a partition count that is not a whole number ≥ 1', () => {
    expect(() => partitionOf('a', 0)).toThrow(RangeError);
  });
});
