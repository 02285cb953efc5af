import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { parseDescriptor } from '../../src/connectors/descriptor.js';
import { generateDescriptor } from '../../src/connectors/generate.js';
import { mapPayload } from '../../src/connectors/map-payload.js';
import { OperationError, SpecError, readSpec } from '../../src/connectors/openapi.js';

const FIXTURES = 'test/fixtures/openapi';

describe('generate', () => {
  it('maps the LLM usage request body by names and formats, and comments the required field it could not map', async () => {
    const spec = await readSpec(`${FIXTURES}/llm-usage-v1.yaml`);
    const { text } = generateDescriptor(spec, 'createUsage', 'llm-usage');
    const data = parseDocument(text).toJS() as { mappings: unknown; generated: unknown };
    expect(data.mappings).toEqual({
      id: { path: 'request_id' },
      source: { const: 'llm-usage' },
      subject: { path: 'customer_id' },
      time: { path: 'created', format: 'unix-seconds' },
      value: { path: 'usage.total_tokens' },
      dimensions: {
        model: { path: 'model' },
        region: { path: 'region', optional: true },
        project: { path: 'metadata.project', optional: true },
        trace: { path: 'metadata.trace', optional: true },
      },
    });
    expect(text).toMatch(/^ {2}# type: REQUIRED, not mapped: .*\n.*\{ const: "llm\.tokens" \}/m);
    expect(text).toContain('  # not mapped: usage.prompt_tokens (integer), usage.completion_tokens (integer)');
    expect(text).toContain('  id: { path: request_id }\n');
    expect(data.generated).toEqual({
      sha256: spec.sha256,
      operation: 'createUsage',
      fields: {
        request_id: 'string',
        customer_id: 'string',
        model: 'string',
        'usage.prompt_tokens': 'integer',
        'usage.completion_tokens': 'integer',
        'usage.total_tokens': 'integer',
        created: 'integer int64',
        region: 'string',
        'metadata.project': 'string',
        'metadata.trace': 'string',
      },
    });
    expect(spec.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Unmapped `type` is required: the draft does not load until the user decides.
    expect(() => parseDescriptor(text, 'llm-usage.yaml')).toThrow(/llm-usage\.yaml: mappings\.type: required/);
  });

  it('round trip: generate, set the one missing mapping, load, map a payload', async () => {
    const spec = await readSpec(`${FIXTURES}/llm-usage-v1.yaml`);
    const { text } = generateDescriptor(spec, 'createUsage', 'llm-usage');
    const descriptor = parseDescriptor(text.replace('  subject:', '  type: { const: llm.tokens }\n  subject:'), 'llm-usage.yaml');
    expect(descriptor.generated?.sha256).toBe(spec.sha256);
    const payload = { request_id: 'r-1', customer_id: 'acme', model: 'small', usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }, created: 1_764_536_400, metadata: { project: 'p1' } };
    expect(mapPayload(descriptor, payload)).toEqual({
      ok: true,
      event: { specversion: '1.0', id: 'r-1', source: 'llm-usage', type: 'llm.tokens', subject: 'acme', time: '2025-11-30T21:00:00.000Z', data: { value: '15', dimensions: { model: 'small', project: 'p1' } } },
    });
  });

  it('payments (OpenAPI 3.0, JSON, allOf, $ref, a media type with parameters): cents at scale -2, RFC 3339 time, type from event_type', async () => {
    const spec = await readSpec(`${FIXTURES}/payments.json`);
    const { text } = generateDescriptor(spec, 'createCharge', 'payments');
    const descriptor = parseDescriptor(text, 'payments.yaml');
    expect(descriptor.mappings).toMatchObject({
      id: { path: 'id' },
      type: { path: 'event_type' },
      subject: { path: 'metadata.account_id' },
      time: { path: 'occurred_at', format: 'rfc3339' },
      value: { path: 'amount', scale: -2 },
      dimensions: { currency: { path: 'currency', optional: false }, livemode: { path: 'livemode', optional: true }, plan: { path: 'metadata.plan', optional: true } },
    });
    expect(text).toMatch(/# value: scale -2: the spec describes this amount in cents/);
    expect(text).not.toMatch(/REQUIRED/);
  });

  it('says which operations exist when asked for another, and refuses one without a JSON body', async () => {
    const spec = await readSpec(`${FIXTURES}/payments.json`);
    expect(() => generateDescriptor(spec, 'createUsage', 'p')).toThrow(OperationError);
    expect(() => generateDescriptor(spec, 'createUsage', 'p')).toThrow(/payments\.json has no operation "createUsage" \(operationIds: listCharges, createCharge\)/);
    expect(() => generateDescriptor(spec, 'listCharges', 'p')).toThrow(/"listCharges" \(GET \/v1\/charges\) has no JSON request body/);
    expect(() => generateDescriptor(spec, 'createCharge', 'Bad Name')).toThrow(RangeError);
  });

  it.each([
    ['a missing file', 'missing.yaml', /cannot read .*missing\.yaml/],
    ['broken YAML', 'broken.yaml', /cannot parse .*broken\.yaml/],
    ['a document that is not valid OpenAPI', 'not-openapi.yaml', /not-openapi\.yaml is not a valid OpenAPI document:[\s\S]*title/],
    ['Swagger 2.0', 'swagger2.yaml', /Swagger 2\.0: connectors are generated from OpenAPI 3\.0 or 3\.1/],
  ])('refuses %s with a SpecError', async (_, file, message) => {
    const read = readSpec(`${FIXTURES}/${file}`);
    await expect(read).rejects.toThrow(SpecError);
    await expect(read).rejects.toThrow(message);
  });
});
