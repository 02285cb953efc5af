import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DescriptorError, parseDescriptor } from '../../src/connectors/descriptor.js';
import { generateDescriptor } from '../../src/connectors/generate.js';
import { readSpec } from '../../src/connectors/openapi.js';
import { upgradeDescriptor } from '../../src/connectors/upgrade.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs('ordo-upgrade-');
const V1 = 'test/fixtures/openapi/llm-usage-v1.yaml';
const V2 = 'test/fixtures/openapi/llm-usage-v2.yaml';

/** The generated v1 descriptor as a user edits it: a constant type, a comment, a dimension dropped, the time made millis-precise. */
async function editedV1(): Promise<string> {
  const generated = generateDescriptor(await readSpec(V1), 'createUsage', 'llm-usage').text;
  const edited = generated
    .replace(/ {2}# type: REQUIRED[^\n]*\n {2}#[^\n]*\n/, '')
    .replace('  subject: { path: customer_id }', '  # Billed per customer; meters select on this type.\n  type: { const: llm.tokens }\n  subject: { path: customer_id }')
    .replace('    trace: { path: metadata.trace, optional: true }\n', '');
  expect(edited).not.toBe(generated);
  return edited;
}

/** A variant of the v1 spec written to a temp file. */
function variant(edit: (text: string) => string): string {
  const file = join(tempDir(), 'spec.yaml');
  writeFileSync(file, edit(readFileSync(V1, 'utf8')));
  return file;
}

describe('upgrade', () => {
  it('v2 renamed customer_id and added fields: edits kept, new fields offered commented out, the renamed mapping a conflict', async () => {
    const user = await editedV1();
    const v2 = await readSpec(V2);
    const result = upgradeDescriptor(user, 'llm-usage.yaml', v2);
    expect(result.upToDate).toBe(false);
    expect(result.conflicts).toEqual([
      { at: 'mappings.subject', path: 'customer_id', kind: 'removed', message: 'customer_id is not in the new spec. New fields of the same type: customer (string), service_tier (string).' },
    ]);
    expect(result.text).toMatch(/ {2}# CONFLICT \(removed\): customer_id is not in the new spec\.[^\n]*\n(?: {2}#[^\n]*\n)* {2}subject: \{ path: customer_id \}/);
    // The user's edits and comment, as written.
    expect(result.text).toContain('  # Billed per customer; meters select on this type.\n  type: { const: llm.tokens }\n');
    expect(result.text).not.toContain('trace: {');
    // New fields, commented out where uncommenting them makes a mapping.
    expect(result.offers).toEqual([
      'customer: { path: customer }   # new in the spec: customer (string)',
      'cached_tokens: { path: usage.cached_tokens, optional: true }   # new in the spec: usage.cached_tokens (integer)',
      'service_tier: { path: service_tier, optional: true }   # new in the spec: service_tier (string)',
    ]);
    expect(result.text).toContain('    # service_tier: { path: service_tier, optional: true }   # new in the spec: service_tier (string)\n');
    const proposed = parseDescriptor(result.text, 'llm-usage.yaml.proposed');
    expect(proposed.mappings).toEqual(parseDescriptor(user, 'llm-usage.yaml').mappings);
    expect(proposed.generated?.sha256).toBe(v2.sha256);
    expect(proposed.generated?.fields).toMatchObject({ customer: 'string', service_tier: 'string', 'usage.cached_tokens': 'integer' });
    expect(proposed.generated?.fields).not.toHaveProperty('customer_id');

    // The user fixes the conflict in the proposed file: the same spec again is up to date.
    const fixed = result.text.replace('subject: { path: customer_id }', 'subject: { path: customer }');
    expect(parseDescriptor(fixed, 'llm-usage.yaml').mappings.subject).toEqual({ path: 'customer', segments: ['customer'] });
    expect(upgradeDescriptor(fixed, 'llm-usage.yaml', v2)).toMatchObject({ upToDate: true, text: fixed, conflicts: [] });
  });

  it('a field that changed type under a mapping is a conflict', async () => {
    const user = await editedV1();
    const spec = await readSpec(variant((t) => t.replace(/ {8}created:\n {10}type: integer\n {10}format: int64/, '        created:\n          type: string\n          format: date-time')));
    const result = upgradeDescriptor(user, 'llm-usage.yaml', spec);
    expect(result.conflicts).toEqual([{ at: 'mappings.time', path: 'created', kind: 'retyped', message: 'created was integer int64 and is now string date-time.' }]);
  });

  it('a clean upgrade keeps every mapping, offers the new field, and reports a removed field no mapping used', async () => {
    const user = (await editedV1()).replace('    project: { path: metadata.project, optional: true }\n', '');
    const spec = await readSpec(
      variant((t) =>
        t
          .replace('        region:\n          type: string\n', '        region:\n          type: string\n        request_origin:\n          type: string\n          format: date-time\n')
          .replace('            project:\n              type: string\n', ''),
      ),
    );
    const result = upgradeDescriptor(user, 'llm-usage.yaml', spec);
    expect(result.conflicts).toEqual([]);
    expect(result.removed).toEqual(['metadata.project']);
    expect(result.offers).toEqual(['request_origin: { path: request_origin, optional: true }   # new in the spec: request_origin (string date-time)']);
    expect(parseDescriptor(result.text, 'x.yaml').mappings).toEqual(parseDescriptor(user, 'x.yaml').mappings);
    // Uncommenting the offer gives a loadable mapping.
    const accepted = result.text.replace('    # request_origin:', '    request_origin:');
    expect(parseDescriptor(accepted, 'x.yaml').mappings.dimensions.request_origin).toEqual({ path: 'request_origin', segments: ['request_origin'], optional: true });
  });

  it('offers a new field for an event field the descriptor leaves out (time), not as a dimension', async () => {
    const user = (await editedV1()).replace('  time: { path: created, format: unix-seconds }\n', '');
    const spec = await readSpec(variant((t) => t.replace('        region:\n', '        occurred_at:\n          type: string\n          format: date-time\n        region:\n')));
    const result = upgradeDescriptor(user, 'llm-usage.yaml', spec);
    expect(result.offers).toEqual(['time: { path: occurred_at, format: rfc3339 }   # new in the spec: occurred_at (string date-time)']);
    const accepted = result.text.replace('  # time: {', '  time: {');
    expect(parseDescriptor(accepted, 'x.yaml').mappings.time).toMatchObject({ path: 'occurred_at', format: 'rfc3339' });
  });

  it('an untouched draft (type still unmapped) upgrades too, and a new field that names the type is offered as the type', async () => {
    const draft = generateDescriptor(await readSpec(V1), 'createUsage', 'llm-usage').text;
    const spec = await readSpec(variant((t) => t.replace('        region:\n', '        event_type:\n          type: string\n        region:\n')));
    const result = upgradeDescriptor(draft, 'llm-usage.yaml', spec);
    expect(result.conflicts).toEqual([]);
    expect(result.offers).toEqual(['type: { path: event_type }   # new in the spec: event_type (string)']);
    expect(parseDescriptor(result.text.replace('  # type: { path: event_type }', '  type: { path: event_type }'), 'x.yaml').mappings.type).toEqual({ path: 'event_type', segments: ['event_type'] });
  });

  it('the spec it was generated from is up to date; a descriptor without a generated block cannot be upgraded', async () => {
    const user = await editedV1();
    expect(upgradeDescriptor(user, 'llm-usage.yaml', await readSpec(V1))).toMatchObject({ upToDate: true, text: user });
    const handWritten = user.slice(0, user.indexOf('generated:'));
    const v2 = await readSpec(V2);
    expect(() => upgradeDescriptor(handWritten, 'llm-usage.yaml', v2)).toThrow(DescriptorError);
    expect(() => upgradeDescriptor(handWritten, 'llm-usage.yaml', v2)).toThrow(/llm-usage\.yaml: generated: missing/);
  });
});
