import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DescriptorError, loadConnectors, parseDescriptor } from '../../src/connectors/descriptor.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs('ordo-connectors-');

const VALID = `connector: 1
name: llm-usage
mappings:
  id: { path: request_id }
  source: { const: llm-gateway }
  type: { const: llm.tokens }
  subject: { path: customer_id }
  time: { path: created, format: unix-seconds }
  value: { path: usage.total_tokens }
  dimensions:
    model: { path: model }
    region: { path: region, optional: true }
`;

describe('connector descriptors', () => {
  it('load into typed mappings', () => {
    const d = parseDescriptor(VALID, 'llm-usage.yaml');
    expect(d.name).toBe('llm-usage');
    expect(d.mappings.value).toEqual({ path: 'usage.total_tokens', segments: ['usage', 'total_tokens'], scale: 0 });
    expect(d.mappings.time).toEqual({ path: 'created', segments: ['created'], format: 'unix-seconds' });
    expect(d.mappings.source).toEqual({ const: 'llm-gateway' });
    expect(d.mappings.dimensions.region).toMatchObject({ path: 'region', optional: true });
    expect(d.generated).toBeUndefined();
  });

  it.each([
    ['a missing required field', VALID.replace('  type: { const: llm.tokens }\n', ''), 'mappings.type', /required: map a payload field/],
    ['both path and const', VALID.replace('{ const: llm-gateway }', '{ const: x, path: y }'), 'mappings.source', /exactly one of path/],
    ['an unknown time format', VALID.replace('unix-seconds', 'unix'), 'mappings.time.format', /one of rfc3339, unix-seconds, unix-millis, got "unix"/],
    ['a fractional scale', VALID.replace('{ path: usage.total_tokens }', '{ path: usage.total_tokens, scale: 1.5 }'), 'mappings.value.scale', /integer from -38 to 38/],
    ['a const value that is no decimal', VALID.replace('{ path: usage.total_tokens }', '{ const: "1e3" }'), 'mappings.value.const', /not a plain decimal/],
    ['a path with a space', VALID.replace('usage.total_tokens', 'usage. total'), 'mappings.value.path', /not a dotted payload path/],
    ['an empty path segment', VALID.replace('usage.total_tokens', 'usage..total'), 'mappings.value.path', /not a dotted payload path/],
    ['an unknown key', VALID.replace('  value:', '  valeu: { const: "1" }\n  value:'), 'mappings.valeu', /unknown key/],
    ['a number for a path', VALID.replace('{ path: model }', '{ path: 3 }'), 'mappings.dimensions.model.path', /dotted payload path/],
    ['an optional const', VALID.replace('{ path: model }', '{ const: m, optional: true }'), 'mappings.dimensions.model.optional', /only a path can be optional/],
    ['a bad name', VALID.replace('name: llm-usage', 'name: LLM Usage'), 'name', /URL path segment/],
    ['another format version', VALID.replace('connector: 1', 'connector: 2'), 'connector', /must be 1/],
    ['a bad generated digest', VALID + 'generated: { sha256: abc, operation: op, fields: {} }\n', 'generated.sha256', /64 lowercase hex/],
  ])('name the file and the path of %s', (_, text, path, message) => {
    let error: unknown;
    try {
      parseDescriptor(text, 'connectors/llm-usage.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DescriptorError);
    expect((error as DescriptorError).path).toBe(path);
    expect((error as DescriptorError).message).toMatch(new RegExp(`^connectors/llm-usage\\.yaml: ${path.replaceAll('.', '\\.')}: `));
    expect((error as DescriptorError).message).toMatch(message);
  });

  it('name the line of a YAML syntax error, and refuse duplicate keys', () => {
    expect(() => parseDescriptor('connector: 1\nname: [x\n', 'a.yaml')).toThrow(/^a\.yaml: not valid YAML \(line \d+, column \d+\)/);
    expect(() => parseDescriptor(VALID.replace('  id: { path: request_id }\n', '  id: { path: request_id }\n  id: { path: x }\n'), 'a.yaml')).toThrow(/not valid YAML/);
    expect(() => parseDescriptor('- a\n', 'a.yaml')).toThrow(/expected a mapping/);
  });

  it('loadConnectors reads every <name>.yaml of a directory, and fails as a ConfigError naming the variable, file and path', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'llm-usage.yaml'), VALID);
    writeFileSync(join(dir, 'payments.yaml'), VALID.replace('name: llm-usage', 'name: payments'));
    writeFileSync(join(dir, 'llm-usage.yaml.proposed'), 'not: loaded');
    writeFileSync(join(dir, 'README.md'), '# not a connector');
    expect([...loadConnectors(dir).keys()]).toEqual(['llm-usage', 'payments']);

    writeFileSync(join(dir, 'search.yaml'), VALID.replace('name: llm-usage', 'name: search').replace('unix-seconds', 'epoch'));
    expect(() => loadConnectors(dir)).toThrow(ConfigError);
    expect(() => loadConnectors(dir)).toThrow(/^ORDO_CONNECTORS_DIR: .*search\.yaml: mappings\.time\.format: /);

    writeFileSync(join(dir, 'search.yaml'), VALID);
    expect(() => loadConnectors(dir)).toThrow(/search\.yaml: name: is "llm-usage" but the file is search\.yaml/);
    expect(() => loadConnectors(join(dir, 'nope'))).toThrow(/^ORDO_CONNECTORS_DIR: cannot read connector directory/);
  });

  it('loadConnectors reads a Kubernetes ConfigMap mount: files are symlinks into ..data/', () => {
    const dir = tempDir();
    mkdirSync(join(dir, '..2026_11_30_22_10_00.1'));
    writeFileSync(join(dir, '..2026_11_30_22_10_00.1', 'llm-usage.yaml'), VALID);
    symlinkSync('..2026_11_30_22_10_00.1', join(dir, '..data'));
    symlinkSync(join('..data', 'llm-usage.yaml'), join(dir, 'llm-usage.yaml'));
    expect([...loadConnectors(dir).keys()]).toEqual(['llm-usage']);
  });
});
