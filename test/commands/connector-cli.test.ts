import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.js';
import { tempDirs } from '../support/temp-dirs.js';

const tempDir = tempDirs('ordo-connector-cli-');
const FIXTURES = resolve(ROOT, 'test/fixtures/openapi');

/** tsx resolved from the repository: the command runs in a temp directory without node_modules. */
const TSX = pathToFileURL(createRequire(join(ROOT, 'package.json')).resolve('tsx')).href;

/** The real command: `node --import tsx src/cli.ts connector ...`, in `cwd`. */
function ordo(args: string[], cwd: string, stdin = ''): { code: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), 'connector', ...args], { cwd, input: stdin, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

/** What the LLM usage API sends after each request (v2 names the customer `customer`). */
interface NativeUsage {
  request_id: string;
  customer: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; cached_tokens?: number };
  created: number;
  region?: string;
  service_tier?: string;
}

const PAYLOADS: NativeUsage[] = [
  { request_id: 'r-1', customer: 'acme', model: 'small', usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 }, created: 1_764_536_400, region: 'eu' },
  { request_id: 'r-2', customer: 'acme', model: 'large', usage: { prompt_tokens: 900, completion_tokens: 300, total_tokens: 1200, cached_tokens: 50 }, created: 1_764_536_401 },
  { request_id: 'r-3', customer: 'globex', model: 'small', usage: { prompt_tokens: 7, completion_tokens: 0, total_tokens: 7 }, created: 1_764_536_402, region: 'us', service_tier: 'priority' },
  { request_id: 'r-4', customer: 'acme', model: 'small', usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, created: 1_764_536_403 },
  { request_id: 'r-5', customer: 'globex', model: 'medium', usage: { prompt_tokens: 5000, completion_tokens: 4000, total_tokens: 9000 }, created: 1_764_536_404, region: 'us' },
];

/** The oracle: the CloudEvent each payload must become under the customised, upgraded descriptor. */
function expected(p: NativeUsage): unknown {
  const dimensions: Record<string, string> = { model: p.model, tier: p.service_tier ?? 'default' };
  if (p.region !== undefined) dimensions.region = p.region;
  return {
    specversion: '1.0',
    id: p.request_id,
    source: 'llm-gateway',
    type: 'llm.tokens',
    subject: p.customer,
    time: new Date(p.created * 1000).toISOString(),
    data: { value: String(p.usage.total_tokens), dimensions },
  };
}

// Each run starts Node with tsx (about a second on a busy 2-core machine).
describe('ordo connector (the real command)', { timeout: 60_000 }, () => {
  it('generate, customise, upgrade against a spec that renamed a field (conflict, exit 1), fix, upgrade again (exit 0), map native payloads', () => {
    const dir = tempDir();
    const generated = ordo(['generate', '--openapi', join(FIXTURES, 'llm-usage-v1.yaml'), '--operation', 'createUsage', '--name', 'llm-usage'], dir);
    expect(generated.err).toBe('');
    expect(generated.code).toBe(0);
    expect(generated.out).toContain('wrote connectors/llm-usage.yaml (10 payload fields)');
    expect(generated.out).toContain('type: not mapped; required before the connector can be served');
    const file = join(dir, 'connectors/llm-usage.yaml');

    // The user's edits, made to the text: a type, a source name, a comment, no trace dimension.
    const edited = readFileSync(file, 'utf8')
      .replace(/ {2}# type: REQUIRED[^\n]*\n {2}#[^\n]*\n/, '')
      .replace(/ {2}# source: [^\n]*\n {2}#[^\n]*\n {2}source: \{ const: llm-usage \}/, '  source: { const: llm-gateway }  # our gateway\n  type: { const: llm.tokens }')
      .replace('    trace: { path: metadata.trace, optional: true }\n', '');
    writeFileSync(file, edited);

    const conflicted = ordo(['upgrade', '--openapi', join(FIXTURES, 'llm-usage-v2.yaml'), 'connectors/llm-usage.yaml'], dir);
    expect(conflicted.code).toBe(1);
    expect(conflicted.err).toContain('1 conflict; connectors/llm-usage.yaml is unchanged, the proposed descriptor is connectors/llm-usage.yaml.proposed');
    expect(conflicted.err).toContain('mappings.subject (removed): customer_id is not in the new spec.');
    expect(conflicted.err).toContain('offered (commented out): service_tier: { path: service_tier, optional: true }');
    expect(readFileSync(file, 'utf8')).toBe(edited);
    const proposed = readFileSync(`${file}.proposed`, 'utf8');
    // Kept, with the comment (the YAML printer puts one space before a trailing comment).
    expect(proposed).toContain('  source: { const: llm-gateway } # our gateway\n  type: { const: llm.tokens }\n');
    expect(proposed).toMatch(/# CONFLICT \(removed\): customer_id/);

    // The user resolves it: the renamed field, and the new tier as a dimension (a constant would not do: mapped).
    const resolved = proposed
      .replace(/ {2}# CONFLICT[^\n]*\n(?: {2}#[^\n]*\n)*/, '')
      .replace('subject: { path: customer_id }', 'subject: { path: customer }')
      .replace('    # service_tier: { path: service_tier, optional: true }', '    tier: { path: service_tier, optional: true }');
    writeFileSync(file, resolved);
    const again = ordo(['upgrade', '--openapi', join(FIXTURES, 'llm-usage-v2.yaml'), 'connectors/llm-usage.yaml'], dir);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/is up to date with .*llm-usage-v2\.yaml/);

    // A tier the payload leaves out falls back to "default": map it with a mapping the oracle agrees with.
    const mapped = ordo(['map', 'connectors/llm-usage.yaml'], dir, JSON.stringify(PAYLOADS.map((p) => ({ ...p, service_tier: p.service_tier ?? 'default' }))));
    expect(mapped.err).toBe('');
    expect(mapped.code).toBe(0);
    const events = mapped.out.trim().split('\n').map((line) => JSON.parse(line) as { subject: string; data: { value: string; dimensions: Record<string, string> } });
    expect(events).toEqual(PAYLOADS.map(expected));

    // Aggregates of the mapped events equal the sums of the native token counts (BigInt oracle).
    const sum = (rows: { key: string; value: bigint }[]): Record<string, string> => {
      const out: Record<string, bigint> = {};
      for (const r of rows) out[r.key] = (out[r.key] ?? 0n) + r.value;
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.toString()]));
    };
    expect(sum(events.map((e) => ({ key: `${e.subject}/${e.data.dimensions.model}`, value: BigInt(e.data.value) })))).toEqual(
      sum(PAYLOADS.map((p) => ({ key: `${p.customer}/${p.model}`, value: BigInt(p.usage.total_tokens) }))),
    );

    const misfit = ordo(['map', 'connectors/llm-usage.yaml'], dir, JSON.stringify([PAYLOADS[0], { ...PAYLOADS[1], usage: { total_tokens: 'many' } }]));
    expect(misfit.code).toBe(65);
    expect(misfit.err).toContain('payload 1: usage.total_tokens: "many" is not a decimal number');
    expect(misfit.out).toBe('');
  });

  it('a clean upgrade rewrites the descriptor in place and exits 0', () => {
    const dir = tempDir();
    const spec = join(dir, 'spec.yaml');
    copyFileSync(join(FIXTURES, 'payments.json'), spec);
    expect(ordo(['generate', '--openapi', spec, '--operation', 'createCharge', '--name', 'payments', '--out', 'c'], dir).code).toBe(0);
    const before = readFileSync(join(dir, 'c/payments.yaml'), 'utf8');
    writeFileSync(spec, readFileSync(spec, 'utf8').replace('"livemode": { "type": "boolean" },', '"livemode": { "type": "boolean" }, "country": { "type": "string" },'));
    const upgraded = ordo(['upgrade', '--openapi', spec, 'c/payments.yaml'], dir);
    expect(upgraded.err).toBe('');
    expect(upgraded.code).toBe(0);
    expect(upgraded.out).toContain('no conflicts');
    expect(upgraded.out).toContain('offered (commented out): country: { path: country, optional: true }');
    const after = readFileSync(join(dir, 'c/payments.yaml'), 'utf8');
    expect(after).not.toBe(before);
    expect(after).toContain('# country: { path: country, optional: true }');
    expect(existsSync(join(dir, 'c/payments.yaml.proposed'))).toBe(false);
  });

  it.each([
    ['a missing spec', ['upgrade', '--openapi', 'nope.yaml', 'x.yaml'], 78, /cannot read/],
    ['an unparseable spec', ['generate', '--openapi', join(FIXTURES, 'broken.yaml'), '--operation', 'x', '--name', 'x'], 78, /cannot parse/],
    ['an invalid spec', ['generate', '--openapi', join(FIXTURES, 'not-openapi.yaml'), '--operation', 'x', '--name', 'x'], 78, /not a valid OpenAPI document/],
    ['no --operation', ['generate', '--openapi', join(FIXTURES, 'payments.json'), '--name', 'x'], 2, /--operation is required/],
    ['an unknown flag', ['generate', '--spec', 'x'], 2, /Unknown option '--spec'/],
    ['an unknown subcommand', ['regenerate'], 2, /unknown subcommand "regenerate"/],
    ['a bad name', ['generate', '--openapi', join(FIXTURES, 'payments.json'), '--operation', 'createCharge', '--name', '../x'], 2, /connector name "..\/x" must match/],
    ['an unknown operation', ['generate', '--openapi', join(FIXTURES, 'payments.json'), '--operation', 'nope', '--name', 'x'], 65, /no operation "nope"/],
    ['a descriptor that does not exist', ['upgrade', '--openapi', join(FIXTURES, 'payments.json'), 'missing.yaml'], 65, /cannot read missing\.yaml/],
  ])('exits with a clear message on %s', (_, args, code, message) => {
    const result = ordo(args, tempDir());
    expect(result.err).toMatch(message);
    expect(result.code).toBe(code);
  });

  it('generate does not overwrite a descriptor (exit 65) unless --force', () => {
    const dir = tempDir();
    const args = ['generate', '--openapi', join(FIXTURES, 'payments.json'), '--operation', 'createCharge', '--name', 'payments'];
    expect(ordo(args, dir).code).toBe(0);
    writeFileSync(join(dir, 'connectors/payments.yaml'), '# mine\n');
    const again = ordo(args, dir);
    expect(again.code).toBe(65);
    expect(again.err).toMatch(/connectors\/payments\.yaml exists: `ordo connector upgrade/);
    expect(readFileSync(join(dir, 'connectors/payments.yaml'), 'utf8')).toBe('# mine\n');
    expect(ordo([...args, '--force'], dir).code).toBe(0);
  });
});
