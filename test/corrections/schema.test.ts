import { describe, expect, it } from 'vitest';
import { aggregateCodec } from '../../src/processors/aggregate.js';
import { type UsageAggregate, usageAggregateSchema, usageAggregateType, usageAggregateTypeBeforeCorrections } from '../../src/usage/aggregation.js';

const aggregate: UsageAggregate = {
  meter: 'api-requests', subject: 'acme', groupBy: { method: 'GET' }, windowSize: 'DAY', windowStart: 0, windowEnd: 86_400_000, aggregation: 'SUM',
  value: '2.5', sum: '2.5', count: 2, firstEventTime: 1, lastEventTime: 2, lastServiceTime: '01a22ce2446e0000', lastServiceNode: 'n1', version: 3, corrections: 1,
};

describe('UsageAggregate.corrections: backward compatible', () => {
  it('an aggregate written before the field existed reads with 0 corrections, through the registry resolver and the restore codec alike', () => {
    const { corrections: _dropped, ...older } = aggregate;
    const oldBytes = usageAggregateTypeBeforeCorrections.toBuffer(older);
    expect(usageAggregateType.fromBuffer(oldBytes, usageAggregateType.createResolver(usageAggregateTypeBeforeCorrections))).toMatchObject({ ...older, corrections: 0 });
    expect(aggregateCodec.decode(oldBytes)).toEqual({ ...older, corrections: 0 });
    expect(aggregateCodec.decode(aggregateCodec.encode(aggregate))).toEqual(aggregate);
  });

  it('the field is the last one and has a default (a new version the registry accepts as BACKWARD compatible)', () => {
    const fields = (usageAggregateSchema as { fields: { name: string; default?: unknown }[] }).fields;
    expect(fields.at(-1)).toMatchObject({ name: 'corrections', default: 0 });
  });
});
