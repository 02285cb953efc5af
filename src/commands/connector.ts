import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DescriptorError, loadDescriptorFile } from '../connectors/descriptor.js';
import { generateDescriptor } from '../connectors/generate.js';
import { mapPayload } from '../connectors/map-payload.js';
import { OperationError, SpecError, readSpec } from '../connectors/openapi.js';
import { upgradeDescriptor } from '../connectors/upgrade.js';
import { isParseArgsError } from './command-error.js';

/**
 * `ordo connector generate|upgrade|map`: connector descriptors from an OpenAPI spec
 * (docs/connectors.md). No broker and no configuration: files in, files out.
 * Exit codes: 0 done, 1 upgrade conflicts (a proposed file is written next to the
 * descriptor), 2 usage, 65 a bad descriptor, operation or payload, 78 a spec that cannot be
 * read or parsed.
 */

export const CONNECTOR_USAGE = `usage:
  ordo connector generate --openapi <spec.yaml> --operation <operationId> --name <name>
                          [--out <dir>] [--force]
  ordo connector upgrade --openapi <spec-v2.yaml> <dir>/<name>.yaml
  ordo connector map <dir>/<name>.yaml < payload.json

generate  writes <dir>/<name>.yaml (--out, default connectors/): the operation's JSON request
          body mapped to UsageEvent fields, guessed from names and formats; a comment on each
          required field it could not map. It does not overwrite a descriptor unless --force.
upgrade   merges a new version of the spec into the descriptor: your edits are kept, new
          fields are offered as commented-out mappings, and a mapping to a field that was
          removed or changed type is a conflict. Clean: the descriptor is rewritten (exit 0).
          Conflicts: it is left as it is and <name>.yaml.proposed is written next to it with
          each conflict commented (exit 1).
map       maps one native JSON payload (or an array) from stdin to CloudEvents, as the ingest
          role's POST /v1/connectors/<name> would before validating them; a payload that does not
          fit names its path (exit 65).

Exit codes: 0 done, 1 conflicts, 2 usage, 65 bad descriptor/operation/payload, 78 the spec
cannot be read or parsed. Reference: docs/connectors.md`;

export interface ConnectorIo {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
}

export async function runConnectorCli(argv: string[], io: ConnectorIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help' || rest.includes('--help') || rest.includes('-h')) {
    io.out(CONNECTOR_USAGE + '\n');
    return sub === undefined ? 2 : 0;
  }
  try {
    if (sub === 'generate') return await generate(rest, io);
    if (sub === 'upgrade') return await upgrade(rest, io);
    if (sub === 'map') return await map(rest, io);
    io.err(`ordo connector: unknown subcommand "${sub}"\n\n${CONNECTOR_USAGE}\n`);
    return 2;
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      io.err(`ordo connector ${sub}: ${(error as Error).message}\n\n${CONNECTOR_USAGE}\n`);
      return 2;
    }
    if (error instanceof SpecError) {
      io.err(`ordo connector ${sub}: ${error.message}\n`);
      return 78;
    }
    if (error instanceof DescriptorError || error instanceof OperationError || error instanceof DataError) {
      io.err(`ordo connector ${sub}: ${error.message}\n`);
      return 65;
    }
    throw error;
  }
}

class UsageError extends Error {}
class DataError extends Error {}

async function generate(argv: string[], io: ConnectorIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { openapi: { type: 'string' }, operation: { type: 'string' }, name: { type: 'string' }, out: { type: 'string', default: 'connectors' }, force: { type: 'boolean' } },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  for (const flag of ['openapi', 'operation', 'name'] as const) if (values[flag] === undefined) throw new UsageError(`--${flag} is required`);
  let generated;
  const spec = await readSpec(values.openapi!);
  try {
    generated = generateDescriptor(spec, values.operation!, values.name!);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
  const file = join(values.out, `${values.name}.yaml`);
  if (existsSync(file) && !values.force) throw new DataError(`${file} exists: \`ordo connector upgrade --openapi ${values.openapi} ${file}\` merges a new spec into it (--force overwrites it)`);
  mkdirSync(values.out, { recursive: true });
  writeFileSync(file, generated.text);
  io.out(`wrote ${file} (${generated.fields.length} payload fields)\n`);
  const todo = Object.entries(generated.draft.notes).filter(([, note]) => note.startsWith('REQUIRED'));
  for (const [field] of todo) io.out(`  ${field}: not mapped; required before the connector can be served (see the comment in the file)\n`);
  return 0;
}

async function upgrade(argv: string[], io: ConnectorIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { openapi: { type: 'string' } }, strict: true, allowPositionals: true });
  if (values.openapi === undefined) throw new UsageError('--openapi is required');
  if (positionals.length !== 1) throw new UsageError('upgrade takes exactly one descriptor file');
  const file = positionals[0]!;
  const spec = await readSpec(values.openapi);
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DataError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const result = upgradeDescriptor(text, file, spec);
  if (result.upToDate) {
    io.out(`${file} is up to date with ${values.openapi} (sha256 ${spec.sha256.slice(0, 12)})\n`);
    return 0;
  }
  const report = [
    ...result.offers.map((o) => `  offered (commented out): ${o}\n`),
    ...result.removed.map((p) => `  removed from the spec (no mapping used it): ${p}\n`),
  ].join('');
  if (result.conflicts.length > 0) {
    const proposed = `${file}.proposed`;
    writeFileSync(proposed, result.text);
    io.err(`ordo connector upgrade: ${result.conflicts.length} conflict${result.conflicts.length === 1 ? '' : 's'}; ${file} is unchanged, the proposed descriptor is ${proposed}\n`);
    for (const c of result.conflicts) io.err(`  ${c.at} (${c.kind}): ${c.message}\n`);
    io.err(report);
    io.err(`Fix the mappings marked CONFLICT in ${proposed}, then move it over ${file}.\n`);
    return 1;
  }
  writeFileSync(file, result.text);
  io.out(`upgraded ${file} to ${values.openapi} (sha256 ${spec.sha256.slice(0, 12)}): no conflicts\n${report}`);
  return 0;
}

async function map(argv: string[], io: ConnectorIo): Promise<number> {
  const { positionals } = parseArgs({ args: argv, options: {}, strict: true, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError('map takes exactly one descriptor file');
  const descriptor = loadDescriptorFile(positionals[0]!);
  let body: unknown;
  try {
    body = JSON.parse(await io.readStdin());
  } catch (error) {
    throw new DataError(`stdin is not JSON: ${(error as Error).message}`);
  }
  const payloads = Array.isArray(body) ? body : [body];
  const failures: string[] = [];
  const events = payloads.map((payload, index) => {
    const result = mapPayload(descriptor, payload);
    if (!result.ok) failures.push(`payload ${index}: ${result.path === '' ? '(the payload)' : result.path}: ${result.message}`);
    return result.ok ? result.event : undefined;
  });
  if (failures.length > 0) throw new DataError(failures.join('\n'));
  for (const event of events) io.out(JSON.stringify(event) + '\n');
  return 0;
}
