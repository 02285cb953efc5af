import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { ConfigError, OrdoError } from '../errors.js';
import { Decimal } from '../usage/decimal.js';

/**
 * A connector descriptor (`connectors/<name>.yaml`, docs/connectors.md): how one API's native
 * JSON payload becomes a UsageEvent. Each UsageEvent field is a mapping: a payload path
 * (`usage.total_tokens`) or a constant. `generate` writes one from an OpenAPI operation,
 * the user edits it, `upgrade` merges a new spec into it; the ingest role loads a directory
 * of them (ORDO_CONNECTORS_DIR) and serves each at `POST /v1/connectors/<name>`.
 */

/** The descriptor format this code reads and writes (`connector: 1`). */
export const DESCRIPTOR_VERSION = 1;
export const TIME_FORMATS = ['rfc3339', 'unix-seconds', 'unix-millis'] as const;
export type TimeFormat = (typeof TIME_FORMATS)[number];
/** The UsageEvent fields a descriptor maps, in the order it lists them. */
export const EVENT_FIELDS = ['id', 'source', 'type', 'subject', 'time', 'value', 'dimensions'] as const;
export type EventField = (typeof EVENT_FIELDS)[number];
/** Required in every descriptor; `time` may be left out (the ingest then uses the time of receipt). */
export const REQUIRED_FIELDS = ['id', 'source', 'type', 'subject', 'value'] as const;
/** A connector name is a URL path segment and a file name. */
export const CONNECTOR_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Value scale: the payload number times 10^scale; beyond this no event value fits (38 digits). */
export const MAX_SCALE = 38;
/** One key of a dotted payload path: no dot, no whitespace. */
export const PATH_SEGMENT = /^[^.\s]+$/;

/** Where a mapping reads from: a payload path (segments split at dots) or a constant string. */
export type Mapping = { path: string; segments: string[] } | { const: string };
export type TimeMapping = { path: string; segments: string[]; format: TimeFormat };
export type ValueMapping = ({ path: string; segments: string[]; scale: number } | { const: string });
export type DimensionMapping = Mapping & { optional: boolean };

export interface Mappings {
  id: Mapping;
  source: Mapping;
  type: Mapping;
  subject: Mapping;
  /** Absent: the ingest stamps the time of receipt. */
  time?: TimeMapping;
  value: ValueMapping;
  dimensions: Record<string, DimensionMapping>;
}

/** What `generate` saw: the spec's digest and every payload field with its JSON type. */
export interface GeneratedBlock {
  sha256: string;
  operation: string;
  /** Payload path -> JSON type (`string`, `integer`, `number`, `boolean`, `array`, `object`), with the format when the spec gives one (`string date-time`). */
  fields: Record<string, string>;
}

export interface ConnectorDescriptor {
  name: string;
  mappings: Mappings;
  generated?: GeneratedBlock;
}

/** A descriptor that does not load: names the file and the path inside it (`mappings.time.format`). */
export class DescriptorError extends OrdoError {
  static override readonly code = 'ORDO_CONNECTOR_DESCRIPTOR';

  constructor(
    readonly file: string,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${file}: ${path === '' ? '' : `${path}: `}${detail}`);
  }
}

/** Parses and checks descriptor text; `file` names it in errors. */
export function parseDescriptor(text: string, file: string): ConnectorDescriptor {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0];
    throw new DescriptorError(file, '', `not valid YAML${line ? ` (line ${line.line}, column ${line.col})` : ''}: ${first.message.split('\n')[0]}`);
  }
  if (!isMap(doc.contents)) throw new DescriptorError(file, '', 'expected a mapping with connector, name and mappings');
  return checkDescriptor(doc.toJS() as unknown, file);
}

/** Checks a descriptor already parsed into plain data. */
export function checkDescriptor(input: unknown, file: string): ConnectorDescriptor {
  const fail = (path: string, detail: string): never => {
    throw new DescriptorError(file, path, detail);
  };
  const top = object(input, '', fail);
  onlyKeys(top, ['connector', 'name', 'mappings', 'generated'], '', fail);
  if (top.connector !== DESCRIPTOR_VERSION) fail('connector', `must be ${DESCRIPTOR_VERSION} (the descriptor format version), got ${show(top.connector)}`);
  const name = top.name;
  if (typeof name !== 'string' || !CONNECTOR_NAME.test(name)) fail('name', `must match ${CONNECTOR_NAME.source} (it is a URL path segment), got ${show(name)}`);
  const m = object(top.mappings, 'mappings', fail);
  onlyKeys(m, EVENT_FIELDS, 'mappings', fail);
  for (const field of REQUIRED_FIELDS) {
    if (m[field] === undefined || m[field] === null) fail(`mappings.${field}`, 'required: map a payload field ({ path: a.b }) or set a constant ({ const: "..." })');
  }
  const mappings: Mappings = {
    id: mapping(m.id, 'mappings.id', fail),
    source: mapping(m.source, 'mappings.source', fail),
    type: mapping(m.type, 'mappings.type', fail),
    subject: mapping(m.subject, 'mappings.subject', fail),
    value: valueMapping(m.value, 'mappings.value', fail),
    dimensions: {},
  };
  if (m.time !== undefined && m.time !== null) mappings.time = timeMapping(m.time, 'mappings.time', fail);
  if (m.dimensions !== undefined && m.dimensions !== null) {
    for (const [key, raw] of Object.entries(object(m.dimensions, 'mappings.dimensions', fail))) {
      const at = `mappings.dimensions.${key}`;
      if (key === '') fail(at, 'a dimension name must not be empty');
      const spec = object(raw, at, fail);
      onlyKeys(spec, ['path', 'const', 'optional'], at, fail);
      if (spec.optional !== undefined && typeof spec.optional !== 'boolean') fail(`${at}.optional`, `must be true or false, got ${show(spec.optional)}`);
      if (spec.optional === true && spec.const !== undefined) fail(`${at}.optional`, 'only a path can be optional');
      mappings.dimensions[key] = { ...mapping(raw, at, fail, ['optional']), optional: spec.optional === true };
    }
  }
  const descriptor: ConnectorDescriptor = { name: name as string, mappings };
  if (top.generated !== undefined && top.generated !== null) descriptor.generated = generatedBlock(top.generated, fail);
  return descriptor;
}

/** Reads and checks one descriptor file. */
export function loadDescriptorFile(file: string): ConnectorDescriptor {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DescriptorError(file, '', `cannot be read: ${(error as Error).message}`);
  }
  return parseDescriptor(text, file);
}

/**
 * Every `<name>.yaml` of a directory, by name (ORDO_CONNECTORS_DIR). The file name is the
 * connector's name and must agree with its `name:`. Any bad file fails the whole load with a
 * ConfigError naming `variable`, the file and the path: a connector that would answer 400 to
 * every payload is better found at start.
 */
export function loadConnectors(dir: string, variable = 'ORDO_CONNECTORS_DIR'): Map<string, ConnectorDescriptor> {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw new ConfigError(variable, `cannot read connector directory ${JSON.stringify(dir)}: ${(error as Error).message}`);
  }
  const out = new Map<string, ConnectorDescriptor>();
  // A Kubernetes ConfigMap mount holds its files as symlinks (into `..data/`): follow them.
  const isFile = (name: string): boolean => statSync(join(dir, name), { throwIfNoEntry: false })?.isFile() ?? false;
  for (const entry of entries.filter((e) => !e.name.startsWith('.') && e.name.endsWith('.yaml') && isFile(e.name)).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = join(dir, entry.name);
    try {
      const descriptor = loadDescriptorFile(file);
      const expected = basename(entry.name, '.yaml');
      if (descriptor.name !== expected) throw new DescriptorError(file, 'name', `is ${JSON.stringify(descriptor.name)} but the file is ${entry.name}: the file name is the connector's name`);
      out.set(descriptor.name, descriptor);
    } catch (error) {
      if (error instanceof DescriptorError) throw new ConfigError(variable, error.message);
      throw error;
    }
  }
  return out;
}

type Fail = (path: string, detail: string) => never;

function mapping(raw: unknown, at: string, fail: Fail, extra: string[] = []): Mapping {
  const spec = object(raw, at, fail);
  onlyKeys(spec, ['path', 'const', ...extra], at, fail);
  if ((spec.path === undefined) === (spec.const === undefined)) fail(at, 'set exactly one of path (a payload field, e.g. usage.total_tokens) and const (a fixed string)');
  if (spec.const !== undefined) {
    if (typeof spec.const !== 'string' || spec.const === '') fail(`${at}.const`, `must be a non-empty string, got ${show(spec.const)}`);
    return { const: spec.const };
  }
  return pathOf(spec.path, `${at}.path`, fail);
}

function pathOf(raw: unknown, at: string, fail: Fail): { path: string; segments: string[] } {
  if (typeof raw !== 'string') return fail(at, `must be a dotted payload path such as usage.total_tokens, got ${show(raw)}`);
  const segments = raw.split('.');
  if (!segments.every((s) => PATH_SEGMENT.test(s))) fail(at, `${JSON.stringify(raw)} is not a dotted payload path (segments without spaces, e.g. usage.total_tokens or items.0.id)`);
  return { path: raw, segments };
}

function timeMapping(raw: unknown, at: string, fail: Fail): TimeMapping {
  const spec = object(raw, at, fail);
  onlyKeys(spec, ['path', 'format'], at, fail);
  if (spec.path === undefined) fail(at, 'time needs a path (leave time out and the ingest uses the time of receipt)');
  if (!(TIME_FORMATS as readonly unknown[]).includes(spec.format)) fail(`${at}.format`, `must be one of ${TIME_FORMATS.join(', ')}, got ${show(spec.format)}`);
  return { ...pathOf(spec.path, `${at}.path`, fail), format: spec.format as TimeFormat };
}

function valueMapping(raw: unknown, at: string, fail: Fail): ValueMapping {
  const spec = object(raw, at, fail);
  onlyKeys(spec, ['path', 'const', 'scale'], at, fail);
  const base = mapping(raw, at, fail, ['scale']);
  if ('const' in base) {
    if (spec.scale !== undefined) fail(`${at}.scale`, 'only a path value has a scale');
    if (!Decimal.isValid(base.const)) fail(`${at}.const`, `${JSON.stringify(base.const)} is not a plain decimal string such as "1" or "12.50"`);
    return base;
  }
  const scale = spec.scale ?? 0;
  if (typeof scale !== 'number' || !Number.isInteger(scale) || Math.abs(scale) > MAX_SCALE) {
    fail(`${at}.scale`, `must be an integer from -${MAX_SCALE} to ${MAX_SCALE} (the value is multiplied by 10^scale: -2 turns cents into units), got ${show(spec.scale)}`);
  }
  return { ...base, scale: scale };
}

function generatedBlock(raw: unknown, fail: Fail): GeneratedBlock {
  const g = object(raw, 'generated', fail);
  onlyKeys(g, ['sha256', 'operation', 'fields'], 'generated', fail);
  if (typeof g.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(g.sha256)) fail('generated.sha256', `must be 64 lowercase hex digits, got ${show(g.sha256)}`);
  if (typeof g.operation !== 'string' || g.operation === '') fail('generated.operation', `must be the spec's operationId, got ${show(g.operation)}`);
  const fields: Record<string, string> = {};
  for (const [key, type] of Object.entries(object(g.fields, 'generated.fields', fail))) {
    if (typeof type !== 'string') fail(`generated.fields.${key}`, `must be a type name such as "string" or "integer", got ${show(type)}`);
    fields[key] = type;
  }
  return { sha256: g.sha256, operation: g.operation, fields };
}

function object(raw: unknown, at: string, fail: Fail): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(at, `expected a mapping, got ${show(raw)}`);
  return raw as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], at: string, fail: Fail): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) fail(at === '' ? key : `${at}.${key}`, `unknown key (expected ${allowed.join(', ')})`);
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'object') return Array.isArray(value) ? 'a list' : 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}
