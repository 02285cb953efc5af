import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REQUIRED_FIELDS, parseDescriptor } from '../../src/connectors/descriptor.js';
import { generateDescriptor } from '../../src/connectors/generate.js';
import { mapPayload } from '../../src/connectors/map-payload.js';
import { type OpenApiSpec, typeLabel } from '../../src/connectors/openapi.js';

// Round trip over generated request bodies: whatever the spec, `generate` writes a descriptor
// that loads (once the required fields it could not map are given constants), records every
// addressable field, and maps a payload shaped like the spec.

/** Names the guesser knows, names it does not, and keys no dotted path can name. */
const NAMES = ['request_id', 'id', 'customer_id', 'user', 'type', 'event', 'created', 'timestamp', 'ts_ms', 'occurred_at', 'amount', 'total_tokens', 'quantity', 'model', 'region', 'livemode', 'note', 'source', 'service', 'usage', 'metadata', 'first name', 'a.b'];

type Leaf = { type: 'string'; format?: 'date-time' | 'uuid' | 'decimal' } | { type: 'integer' } | { type: 'number' } | { type: 'boolean' };
interface ObjectSchema {
  type: 'object';
  properties: Record<string, Leaf | ObjectSchema>;
  required: string[];
}

const leaf: fc.Arbitrary<Leaf> = fc.oneof(
  fc.constant({ type: 'string' as const }),
  fc.constantFrom('date-time' as const, 'uuid' as const, 'decimal' as const).map((format) => ({ type: 'string' as const, format })),
  fc.constant({ type: 'integer' as const }),
  fc.constant({ type: 'number' as const }),
  fc.constant({ type: 'boolean' as const }),
);

const objectSchema = (depth: number): fc.Arbitrary<ObjectSchema> =>
  fc
    .dictionary(fc.constantFrom(...NAMES), depth > 0 ? fc.oneof({ weight: 4, arbitrary: leaf }, { weight: 1, arbitrary: objectSchema(depth - 1) }) : leaf, { minKeys: 1, maxKeys: 8 })
    .chain((properties) => fc.subarray(Object.keys(properties)).map((required) => ({ type: 'object' as const, properties, required })));

function specOf(body: ObjectSchema): OpenApiSpec {
  const document = { openapi: '3.1.0', info: { title: 'T', version: '1' }, paths: { '/u': { post: { operationId: 'op', requestBody: { content: { 'application/json': { schema: body } } }, responses: {} } } } };
  return { file: 'spec.yaml', sha256: 'a'.repeat(64), title: 'T', document };
}

/** A payload with every property the schema has, each of its type. */
function payloadOf(schema: ObjectSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, child] of Object.entries(schema.properties)) {
    if (child.type === 'object') out[name] = payloadOf(child);
    else if (child.type === 'string') out[name] = child.format === 'date-time' ? '2026-11-30T21:00:00Z' : child.format === 'decimal' ? '12.50' : 'x';
    else if (child.type === 'integer') out[name] = 1_764_536_400;
    else if (child.type === 'number') out[name] = 1.5;
    else out[name] = true;
  }
  return out;
}

describe('generate -> load round trip', () => {
  it('loads, records every addressable field with its type, and maps a payload shaped like the spec', () => {
    fc.assert(
      fc.property(objectSchema(2), (body) => {
        let generated;
        try {
          generated = generateDescriptor(specOf(body), 'op', 'conn');
        } catch (error) {
          // Only a body with nothing addressable in it is refused.
          expect((error as Error).message).toMatch(/has no properties to map/);
          return;
        }
        const missing = REQUIRED_FIELDS.filter((f) => generated.draft.mappings[f] === undefined);
        const text = generated.text.replace('mappings:\n', `mappings:\n${missing.map((f) => `  ${f}: { const: "1" }\n`).join('')}`);
        const descriptor = parseDescriptor(text, 'conn.yaml');
        expect(descriptor.generated?.fields).toEqual(Object.fromEntries(generated.fields.map((f) => [f.path, typeLabel(f)])));
        for (const path of Object.keys(descriptor.generated!.fields)) expect(path.split('.').every((s) => /^[^.\s]+$/.test(s))).toBe(true);
        const result = mapPayload(descriptor, payloadOf(body));
        expect(result, JSON.stringify({ text, result })).toMatchObject({ ok: true });
      }),
      { numRuns: 300 },
    );
  });
});
