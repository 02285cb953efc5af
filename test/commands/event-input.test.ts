import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventInputError } from '../../src/commands/command-error.js';
import { type InputDefaults, parseEventLines, parseEventObject } from '../../src/commands/event-input.js';
import { encodeUsageEvent } from '../../src/schema/usage-event.js';
import { RecordDecoder } from '../../src/commands/record-view.js';
import { usageEventType } from '../../src/schema/usage-event.js';
import { anyUsageEvent } from '../support/unit/fixtures.js';

const defaults: InputDefaults = { source: 'ordo-cli', now: () => 1_796_000_000_000, newId: () => 'id-1' };
const minimal = { type: 'api.request', subject: 'acme', value: '1' };

function failure(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(EventInputError);
    return (error as Error).message;
  }
  throw new Error('expected an EventInputError');
}

describe('ordo events produce input', () => {
  it('fills id, source and time; keeps dimensions and the allowed headers', () => {
    const [parsed] = parseEventLines(
      `${JSON.stringify({ ...minimal, dimensions: { region: 'eu' }, headers: { 'service-time': '01a22ce2446e0000', 'service-node': 'checkout-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })}\n`,
      defaults,
    );
    expect(parsed).toEqual({
      event: { id: 'id-1', source: 'ordo-cli', type: 'api.request', subject: 'acme', time: 1_796_000_000_000, value: '1', dimensions: { region: 'eu' } },
      headers: { 'service-time': '01a22ce2446e0000', 'service-node': 'checkout-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
  });

  it('reads RFC 3339 times and epoch milliseconds, and plain JSON numbers as values', () => {
    expect(parseEventObject({ ...minimal, time: '2026-11-30T14:00:00.250+01:00' }, 'x', defaults).event.time).toBe(Date.UTC(2026, 10, 30, 13, 0, 0, 250));
    expect(parseEventObject({ ...minimal, time: 1234 }, 'x', defaults).event.time).toBe(1234);
    expect(parseEventObject({ ...minimal, value: 0.75 }, 'x', defaults).event.value).toBe('0.75');
  });

  it('skips blank and # lines and counts lines as an editor does', () => {
    const text = `# usage\n\n${JSON.stringify(minimal)}\n{"type":"x","subject":"a","value":"NaN"}\n`;
    expect(failure(() => parseEventLines(text, defaults))).toBe('line 4: value "NaN" is not a plain decimal string (e.g. "12.50"; no exponent, NaN or Infinity)');
  });

  it.each([
    ['{"type":', /^line 1: not JSON: /],
    ['[1]', /^line 1: expected a JSON object$/],
    ['{"type":"x","subject":"a","value":"1","subjct":"b"}', /^line 1: unknown field "subjct" \(fields: id, source, type, subject, time, value, dimensions, headers\)$/],
    ['{"subject":"a","value":"1"}', /^line 1: field "type" must be a string \(required\)$/],
    ['{"type":"x","subject":"a"}', /^line 1: field "value" must be a decimal string such as "12.50" \(required\)$/],
    ['{"type":"x","subject":"a","value":"1e5"}', /^line 1: value "1e5" is not a plain decimal string/],
    ['{"type":"x","subject":"","value":"1"}', /^line 1: subject is empty$/],
    ['{"type":"x","subject":"a","value":"1","time":"yesterday"}', /^line 1: field "time" "yesterday" is not an RFC 3339 time/],
    ['{"type":"x","subject":"a","value":"1","time":1.5}', /^line 1: field "time" 1.5 is not whole milliseconds/],
    ['{"type":"x","subject":"a","value":"1","dimensions":{"n":1}}', /^line 1: dimensions.n must be a string$/],
    ['{"type":"x","subject":"a","value":"1","dimensions":{"__proto__":"x"}}', /^line 1: dimension name "__proto__" is reserved$/],
    ['{"type":"x","subject":"a","value":"1","headers":{"service_time":"1"}}', /^line 1: header "service_time" is not one an upstream producer sets \(service-time, service-node, traceparent, producer-seq, producer-id\)$/],
    ['{"type":"x","subject":"a","value":"1","headers":{"service-time":"soon"}}', /^line 1: .*service-time/],
    ['{"type":"x","subject":"a","value":"1","headers":{"service-node":"n1"}}', /^line 1: service-node header without a service-time header$/],
    ['{"type":"x","subject":"a","value":"1","headers":{"producer-seq":"-1"}}', /^line 1: producer-seq header "-1" is not a decimal integer/],
    ['{"type":"x","subject":"a","value":"1","headers":{"traceparent":"abc"}}', /^line 1: header "traceparent" "abc" is not a W3C traceparent/],
  ])('names the line and the problem: %s', (line, message) => {
    expect(failure(() => parseEventLines(line, defaults))).toMatch(message);
  });

  it('what it accepts, the pipeline decodes to the same event (any valid event)', () => {
    const decoder = new RecordDecoder({ writerType: (id) => (id === 7 ? usageEventType : null) });
    fc.assert(
      fc.property(anyUsageEvent, (event) => {
        const { event: parsed, headers } = parseEventObject(JSON.parse(JSON.stringify(event)), 'x', defaults);
        const view = decoder.view({ topic: 't', partition: 0, offset: '0', key: null, value: encodeUsageEvent(7, parsed), headers, timestamp: 0 });
        expect(view.kind).toBe('event');
        expect(view.value).toEqual(event);
      }),
    );
  });
});
