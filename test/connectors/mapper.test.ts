import { describe, expect, it } from 'vitest';
import { parseDescriptor } from '../../src/connectors/descriptor.js';
import { connectorMapper } from '../../src/connectors/mapper.js';

const usage = parseDescriptor(
  `connector: 1\nname: usage\nmappings:\n  id: { path: id }\n  source: { const: s }\n  type: { const: t }\n  subject: { path: who }\n  value: { path: n }\n`,
  'usage.yaml',
);

describe('connectorMapper', () => {
  const map = connectorMapper(new Map([['usage', usage]]));

  it('maps every payload of a request, or reports every misfit with its index and path', () => {
    expect(map('usage', [{ id: 'a', who: 'acme', n: 2 }, { id: 'b', who: 'acme', n: '0.5' }])).toEqual({
      ok: true,
      events: [
        { specversion: '1.0', id: 'a', source: 's', type: 't', subject: 'acme', data: { value: '2' } },
        { specversion: '1.0', id: 'b', source: 's', type: 't', subject: 'acme', data: { value: '0.5' } },
      ],
    });
    expect(map('usage', [{ id: 'a', who: 'acme', n: 2 }, { id: 'b', n: 1 }, { id: 'c', who: 'x', n: [] }])).toEqual({
      ok: false,
      errors: [
        { index: 1, path: 'who', message: 'is missing' },
        { index: 2, path: 'n', message: 'expected a number or a decimal string, got an array' },
      ],
    });
  });

  it('knows no other connector', () => {
    expect(map('other', [{}])).toBeUndefined();
  });
});
