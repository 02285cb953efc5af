import { Document, isMap, isScalar, type Node, type Pair, type YAMLMap } from 'yaml';
import { CONNECTOR_NAME, DESCRIPTOR_VERSION, EVENT_FIELDS } from './descriptor.js';
import { type Draft, draftMappings } from './guess.js';
import { type OpenApiSpec, type PayloadField, operationFields, typeLabel } from './openapi.js';

/**
 * `ordo connector generate`: an OpenAPI operation to a descriptor's YAML text, with a comment
 * on every guess worth a second look and on every required field left unmapped.
 */

export interface Generated {
  text: string;
  draft: Draft;
  fields: PayloadField[];
}

/** Says what the generated block is for, above it in every descriptor. */
export const GENERATED_COMMENT = ' Written by `ordo connector generate` / `upgrade`: the spec this descriptor was made from\n and the payload fields it had. Do not edit: upgrade compares the next spec with it.';
const LINE_WIDTH = 96;

export function generateDescriptor(spec: OpenApiSpec, operationId: string, name: string): Generated {
  if (!CONNECTOR_NAME.test(name)) throw new RangeError(`connector name "${name}" must match ${CONNECTOR_NAME.source} (it is a URL path segment and a file name)`);
  const { method, route, fields } = operationFields(spec, operationId);
  const draft = draftMappings(fields, name);
  const doc = new Document({ connector: DESCRIPTOR_VERSION, name, mappings: draftObject(draft), generated: generatedObject(spec, operationId, fields) });
  doc.commentBefore = [
    ` Connector "${name}": the payload of ${method.toUpperCase()} ${route} (operationId ${operationId}${spec.title === '' ? '' : ` of "${spec.title}"`})`,
    ' as UsageEvents, served at POST /v1/connectors/' + name + '. Edit the mappings: `ordo connector upgrade`',
    ' keeps your edits when the spec changes. Reference: docs/connectors.md',
  ].join('\n');
  const mappings = doc.get('mappings', true) as YAMLMap;
  flowLeaves(mappings);
  annotate(mappings, draft);
  if (draft.unused.length > 0) {
    mappings.comment = wrap(`not mapped: ${draft.unused.map((f) => `${f.path} (${typeLabel(f)})`).join(', ')}`);
  }
  commentPair(doc.contents as YAMLMap, 'generated', GENERATED_COMMENT);
  return { text: doc.toString({ lineWidth: 0 }), draft, fields };
}

export function generatedObject(spec: OpenApiSpec, operationId: string, fields: readonly PayloadField[]): Record<string, unknown> {
  return { sha256: spec.sha256, operation: operationId, fields: Object.fromEntries(fields.map((f) => [f.path, typeLabel(f)])) };
}

/** The draft as descriptor data, in the descriptor's field order. */
function draftObject(draft: Draft): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of EVENT_FIELDS) {
    const mapping = draft.mappings[field];
    if (mapping !== undefined) out[field] = mapping;
  }
  return out;
}

/** Each mapping on one line (`id: { path: request_id }`): the form users read and edit. */
export function flowLeaves(mappings: YAMLMap): void {
  for (const pair of mappings.items) {
    if (!isMap(pair.value)) continue;
    const leafKey = keyOf(pair);
    if (leafKey === 'dimensions') for (const inner of pair.value.items) markFlow(inner.value);
    else pair.value.flow = true;
  }
}

function markFlow(node: unknown): void {
  if (isMap(node)) node.flow = true;
}

/** A note goes above its own mapping, or, for a field left out, above the next one (or after the last). */
function annotate(mappings: YAMLMap, draft: Draft): void {
  let pending: string[] = [];
  for (const field of EVENT_FIELDS) {
    const note = draft.notes[field];
    if (note !== undefined) pending.push(wrap(`${field}: ${note}`));
    const pair = mappings.items.find((p) => keyOf(p) === field);
    if (pair && pending.length > 0) {
      setCommentBefore(pair, pending.join('\n'));
      pending = [];
    }
  }
  if (pending.length > 0) mappings.comment = pending.join('\n');
}

export function keyOf(pair: Pair): string | undefined {
  const key = pair.key;
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

/** Sets a comment above a pair (on its key node; a plain key is made a node first). */
export function setCommentBefore(pair: Pair, comment: string): void {
  if (!isScalar(pair.key)) return;
  const key = pair.key as Node;
  key.commentBefore = key.commentBefore ? `${key.commentBefore}\n${comment}` : comment;
}

function commentPair(map: YAMLMap, key: string, comment: string): void {
  const pair = map.items.find((p) => keyOf(p) === key);
  if (pair) setCommentBefore(pair, comment);
}

/** Comment text in lines of at most LINE_WIDTH, each starting with a space (after the "#"). */
export function wrap(text: string, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + word.length + 1 > LINE_WIDTH) {
      lines.push(line);
      line = indent + word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => ` ${l}`).join('\n');
}
