import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { formatHuman, formatJson, RecordDecoder } from '../../src/commands/record-view.js';
import type { SourceRecord } from '../../src/model/records.js';
import { usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { type UsageAggregate, usageAggregateType } from '../../src/usage/aggregation.js';

const other = avro.Type.forSchema({ type: 'record', name: 'Other', fields: [{ name: 'n', type: 'int' }] });
const decoder = new RecordDecoder({ writerType: (id) => ({ 1: usageEventType, 2: usageAggregateType, 3: other })[id] ?? null });
const record = (value: Buffer | null, headers: SourceRecord['headers'] = {}): SourceRecord => ({ topic: 't', partition: 2, offset: '41', key: Buffer.from('acme'), value, headers, timestamp: Date.UTC(2026, 10, 30) });
const event = { id: 'e1', source: 's', type: 'api.request', subject: 'acme', time: 1, value: '1', dimensions: {} };

const aggregate: UsageAggregate = {
  meter: 'api-requests', subject: 'acme', groupBy: { method: 'GET' }, windowSize: 'DAY', windowStart: 0, windowEnd: 86_400_000, aggregation: 'COUNT',
  value: '2', sum: null, count: 2, firstEventTime: 1, lastEventTime: 2, lastServiceTime: '01a22ce2446e0000', lastServiceNode: 'n1', version: 2, corrections: 0,
};

describe('ordo events tail: decoding any Ordo topic', () => {
  it('an event, with its headers as text and service times readable', () => {
    const view = decoder.view(record(frame(1, usageEventType.toBuffer(event)), { 'service-time': Buffer.from('01a22ce2446e0000'), 'ordo-seq': '3' }));
    expect(view).toMatchObject({ kind: 'event', value: event, schemaId: 1, key: 'acme', headers: { 'service-time': '01a22ce2446e0000', 'ordo-seq': '3' } });
    expect(formatHuman(view)).toBe(
      't [2] @41  2026-11-30T00:00:00.000Z  key=acme\n' +
        '  headers: service-time=01a22ce2446e0000 (2026-11-30T14:35:55.886Z+0)  ordo-seq=3\n' +
        `  event: ${JSON.stringify(event)}`,
    );
  });

  it('an aggregate', () => {
    const view = decoder.view(record(frame(2, usageAggregateType.toBuffer(aggregate))));
    expect(view).toMatchObject({ kind: 'aggregate', value: aggregate });
    expect(JSON.parse(formatJson(view))).toMatchObject({ kind: 'aggregate', value: { meter: 'api-requests', count: 2 } });
  });

  it('a dead-lettered event: decoded as far as it goes, with the reason the pipeline gives', () => {
    const view = decoder.view(record(frame(1, usageEventType.toBuffer({ ...event, value: 'NaN' }))));
    expect(view).toMatchObject({ kind: 'avro', value: { ...event, value: 'NaN' }, error: 'value "NaN" is not a plain decimal string (e.g. "12.50"; no exponent, NaN or Infinity)' });
  });

  it('what is not Confluent-framed: text or base64, with why', () => {
    expect(decoder.view(record(Buffer.from('{"subject":"acme"}')))).toMatchObject({ kind: 'text', value: '{"subject":"acme"}', error: expect.stringMatching(/magic byte 0/) });
    expect(decoder.view(record(Buffer.from([1, 0, 0xff, 0xfe, 7, 8])))).toMatchObject({ kind: 'bytes', value: 'AQD//gcI' });
    expect(decoder.view(record(null))).toMatchObject({ kind: 'null', value: null });
  });

  it('an unknown schema id, and a schema that is neither event nor aggregate', () => {
    expect(decoder.view(record(frame(9, Buffer.from([2]))))).toMatchObject({ schemaId: 9, error: 'schema id 9 is not in the schema registry' });
    expect(decoder.view(record(frame(3, other.toBuffer({ n: 5 }))))).toMatchObject({ kind: 'avro', value: { n: 5 } });
  });
});
