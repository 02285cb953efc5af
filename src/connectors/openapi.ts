import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { compileErrors, dereference, validate } from '@readme/openapi-parser';
import { OrdoError } from '../errors.js';
import { PATH_SEGMENT } from './descriptor.js';

/**
 * An OpenAPI 3.x spec read for connectors: validated and with every `$ref` resolved by
 * @readme/openapi-parser, and one operation's JSON request body flattened into payload
 * fields (`usage.total_tokens: integer`). The only place that knows OpenAPI.
 */

/** The spec cannot be read, parsed or validated: the CLI exits 78. */
export class SpecError extends OrdoError {
  static override readonly code = 'ORDO_CONNECTOR_SPEC';
}

/** The spec is fine but the operation is not one a connector can be made from. */
export class OperationError extends OrdoError {
  static override readonly code = 'ORDO_CONNECTOR_OPERATION';
}

/** A leaf of the request body: a scalar, or an array (not looked into). */
export interface PayloadField {
  path: string;
  /** JSON type: string, integer, number, boolean, array, object (an object without properties). */
  type: string;
  format?: string;
  /** Required at every level from the body down to it. */
  required: boolean;
  description?: string;
}

export interface OpenApiSpec {
  file: string;
  sha256: string;
  title: string;
  document: Record<string, unknown>;
}

/** Nested objects deeper than this are not looked into (a recursive schema ends here). */
const MAX_DEPTH = 8;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

export async function readSpec(file: string): Promise<OpenApiSpec> {
  const path = resolve(file);
  let bytes;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new SpecError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let document: Record<string, unknown>;
  try {
    const result = await validate(path);
    if (!result.valid) throw new SpecError(`${file} is not a valid OpenAPI document:\n${compileErrors(result)}`);
    document = (await dereference(path)) as unknown as Record<string, unknown>;
  } catch (error) {
    if (error instanceof SpecError) throw error;
    throw new SpecError(`cannot parse ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (typeof document.openapi !== 'string' || !document.openapi.startsWith('3.')) {
    throw new SpecError(`${file} is ${typeof document.swagger === 'string' ? `Swagger ${document.swagger}` : 'not OpenAPI 3.x'}: connectors are generated from OpenAPI 3.0 or 3.1`);
  }
  const info = document.info as { title?: unknown } | undefined;
  return { file, sha256: createHash('sha256').update(bytes).digest('hex'), title: typeof info?.title === 'string' ? info.title : '', document };
}

/** Every operationId of the spec, for error messages. */
export function operationIds(spec: OpenApiSpec): string[] {
  return operations(spec).map((o) => o.id);
}

/** The operation's method and path, and the fields of its JSON request body. */
export function operationFields(spec: OpenApiSpec, operationId: string): { method: string; route: string; fields: PayloadField[] } {
  const operation = operations(spec).find((o) => o.id === operationId);
  if (!operation) {
    const known = operationIds(spec);
    throw new OperationError(`${spec.file} has no operation "${operationId}" (operationIds: ${known.length === 0 ? 'none' : known.join(', ')})`);
  }
  const body = operation.body as { content?: Record<string, { schema?: unknown }> } | undefined;
  const media = Object.keys(body?.content ?? {}).find((type) => /^application\/(?:[\w.+-]*\+)?json$/i.test(type.split(';')[0]!.trim()));
  const schema = media === undefined ? undefined : body?.content?.[media]?.schema;
  if (schema === undefined) {
    throw new OperationError(`operation "${operationId}" (${operation.method.toUpperCase()} ${operation.route}) has no JSON request body: a connector maps the payload a client sends`);
  }
  const fields: PayloadField[] = [];
  collect(schema, '', true, 0, fields);
  if (fields.length === 0) throw new OperationError(`the request body of "${operationId}" has no properties to map`);
  return { method: operation.method, route: operation.route, fields };
}

/** `type` plus the format when there is one: what the generated block records per field. */
export function typeLabel(field: Pick<PayloadField, 'type' | 'format'>): string {
  return field.format === undefined ? field.type : `${field.type} ${field.format}`;
}

function operations(spec: OpenApiSpec): { id: string; method: string; route: string; body: unknown }[] {
  const out = [];
  for (const [route, item] of Object.entries((spec.document.paths ?? {}) as Record<string, Record<string, unknown>>)) {
    for (const method of METHODS) {
      const op = item[method] as { operationId?: unknown; requestBody?: unknown } | undefined;
      if (op && typeof op.operationId === 'string') out.push({ id: op.operationId, method, route, body: op.requestBody });
    }
  }
  return out;
}

interface Schema {
  type?: string | string[];
  format?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  items?: Schema;
  description?: string;
}

/**
 * Flattens an object schema into leaf fields. allOf merges (its parts' required lists
 * count); oneOf/anyOf add every alternative's fields as optional (a payload has one of them).
 */
function collect(raw: unknown, prefix: string, required: boolean, depth: number, out: PayloadField[]): void {
  const schema = (raw ?? {}) as Schema;
  const { properties, requiredNames } = objectParts(schema);
  const type = jsonType(schema, properties);
  if (type === 'object' && properties.size > 0 && depth < MAX_DEPTH) {
    for (const [name, child] of properties) {
      // A key with a dot or whitespace cannot be named in a dotted path: such a field is left out.
      if (!PATH_SEGMENT.test(name)) continue;
      collect(child.schema, prefix === '' ? name : `${prefix}.${name}`, required && requiredNames.has(name) && !child.optional, depth + 1, out);
    }
    return;
  }
  if (prefix === '') return;
  if (out.some((f) => f.path === prefix)) return;
  const field: PayloadField = { path: prefix, type, required };
  const format = schema.format ?? firstOf(schema, 'format');
  if (format !== undefined) field.format = format;
  if (schema.description !== undefined) field.description = schema.description;
  out.push(field);
}

function objectParts(schema: Schema): { properties: Map<string, { schema: Schema; optional: boolean }>; requiredNames: Set<string> } {
  const properties = new Map<string, { schema: Schema; optional: boolean }>();
  const requiredNames = new Set<string>(schema.required ?? []);
  for (const [name, child] of Object.entries(schema.properties ?? {})) properties.set(name, { schema: child, optional: false });
  for (const part of schema.allOf ?? []) {
    const inner = objectParts(part);
    for (const [name, child] of inner.properties) if (!properties.has(name)) properties.set(name, child);
    for (const name of inner.requiredNames) requiredNames.add(name);
  }
  for (const part of [...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) {
    for (const [name, child] of objectParts(part).properties) if (!properties.has(name)) properties.set(name, { schema: child.schema, optional: true });
  }
  return { properties, requiredNames };
}

function jsonType(schema: Schema, properties: Map<string, unknown>): string {
  const declared = Array.isArray(schema.type) ? schema.type.filter((t) => t !== 'null') : schema.type === undefined ? [] : [schema.type];
  if (declared.length === 1) return declared[0]!;
  if (declared.length > 1) return declared.join('|');
  if (properties.size > 0) return 'object';
  return firstOf(schema, 'type') ?? 'any';
}

/** A property only the alternatives of a oneOf/anyOf/allOf declare (e.g. a nullable type in 3.0 style). */
function firstOf(schema: Schema, key: 'type' | 'format'): string | undefined {
  for (const part of [...(schema.allOf ?? []), ...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) {
    const value = part[key];
    if (typeof value === 'string' && value !== 'null') return value;
  }
  return undefined;
}
