import { isMap, parseDocument, type YAMLMap } from 'yaml';
import { type ConnectorDescriptor, DescriptorError, EVENT_FIELDS, REQUIRED_FIELDS, checkDescriptor } from './descriptor.js';
import { generatedObject, keyOf, setCommentBefore, wrap } from './generate.js';
import { type DraftMapping, draftMappings } from './guess.js';
import { type OpenApiSpec, type PayloadField, operationFields, typeLabel } from './openapi.js';

/**
 * `ordo connector upgrade`: a three-way merge of what the descriptor was generated from (its
 * `generated` block), the new spec, and the user's descriptor as it is now:
 *   - every mapping and comment of the user's stays as written (the YAML Document API keeps
 *     comments and layout; only the generated block is rewritten);
 *   - every field new in the spec is offered as a commented-out mapping;
 *   - a mapping whose field the new spec no longer has, or has with another JSON type, is a
 *     conflict: commented in place, and the caller writes the result next to the original
 *     instead of over it.
 */

export interface Conflict {
  /** Where in the descriptor: `mappings.subject`, `mappings.dimensions.model`. */
  at: string;
  /** The payload path it maps. */
  path: string;
  kind: 'removed' | 'retyped';
  message: string;
}

export interface UpgradeResult {
  /** The spec is the one the descriptor was generated from: nothing to do. */
  upToDate: boolean;
  /** The upgraded descriptor (conflicts commented in place). */
  text: string;
  conflicts: Conflict[];
  /** The commented-out mappings offered for new fields, as written. */
  offers: string[];
  /** Spec fields gone that no mapping used. */
  removed: string[];
}

export function upgradeDescriptor(text: string, file: string, spec: OpenApiSpec): UpgradeResult {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new DescriptorError(file, '', `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  // A draft whose required fields are still unmapped can be upgraded too: for the check they
  // are stand-in constants (which map no path); for the offers they stay unmapped.
  const data = doc.toJS() as { mappings?: Record<string, unknown> } | null;
  const unmapped = new Set<string>();
  if (data && typeof data.mappings === 'object' && data.mappings !== null) {
    for (const field of REQUIRED_FIELDS) {
      if (data.mappings[field] === undefined || data.mappings[field] === null) {
        unmapped.add(field);
        data.mappings[field] = { const: '1' };
      }
    }
  }
  const descriptor = checkDescriptor(data, file);
  const generated = descriptor.generated;
  if (!generated) throw new DescriptorError(file, 'generated', 'missing: upgrade compares the new spec with the spec the descriptor was generated from (ordo connector generate writes it)');
  if (generated.sha256 === spec.sha256) return { upToDate: true, text, conflicts: [], offers: [], removed: [] };

  const { fields } = operationFields(spec, generated.operation);
  const now = new Map(fields.map((f) => [f.path, f]));
  const before = generated.fields;
  const mapped = mappedPaths(descriptor);
  const mappings = doc.get('mappings', true) as YAMLMap;

  const conflicts: Conflict[] = [];
  const added = fields.filter((f) => !Object.hasOwn(before, f.path));
  for (const { at, path } of mapped) {
    const field = now.get(path);
    const was = Object.hasOwn(before, path) ? before[path] : undefined;
    let conflict: Conflict | undefined;
    if (!field) {
      const candidates = added.filter((f) => was === undefined || baseType(typeLabel(f)) === baseType(was));
      const hint = candidates.length === 0 ? '' : ` New fields${was === undefined ? '' : ` of the same type`}: ${candidates.map((f) => `${f.path} (${typeLabel(f)})`).join(', ')}.`;
      conflict = { at, path, kind: 'removed', message: `${path} is not in the new spec.${hint}` };
    } else if (was !== undefined && baseType(was) !== baseType(typeLabel(field))) {
      conflict = { at, path, kind: 'retyped', message: `${path} was ${was} and is now ${typeLabel(field)}.` };
    }
    if (!conflict) continue;
    conflicts.push(conflict);
    const pair = pairAt(mappings, at);
    if (pair) setCommentBefore(pair, wrap(`CONFLICT (${conflict.kind}): ${conflict.message} Fix this mapping, then delete this comment.`));
  }

  const offers = offer(mappings, descriptor, unmapped, fields, added, mapped);
  const removed = Object.keys(before).filter((path) => !now.has(path) && !mapped.some((m) => m.path === path));

  const fresh = generatedObject(spec, generated.operation, fields);
  doc.setIn(['generated', 'sha256'], fresh.sha256);
  doc.setIn(['generated', 'fields'], doc.createNode(fresh.fields));
  return { upToDate: false, text: doc.toString({ lineWidth: 0 }), conflicts, offers, removed };
}

/** Every mapping that reads a payload path, with where it is in the descriptor. */
function mappedPaths(descriptor: ConnectorDescriptor): { at: string; path: string }[] {
  const out: { at: string; path: string }[] = [];
  const m = descriptor.mappings;
  for (const field of EVENT_FIELDS) {
    if (field === 'dimensions') continue;
    const mapping = m[field];
    if (mapping && 'path' in mapping) out.push({ at: `mappings.${field}`, path: mapping.path });
  }
  for (const [name, mapping] of Object.entries(m.dimensions)) if ('path' in mapping) out.push({ at: `mappings.dimensions.${name}`, path: mapping.path });
  return out;
}

/**
 * New fields as commented-out mappings: to the event field the generator would map it to
 * when the user's descriptor leaves that field out (above the mappings' end), else as a
 * dimension (after the dimensions). Uncommenting a line gives a valid mapping.
 */
function offer(mappings: YAMLMap, descriptor: ConnectorDescriptor, unmapped: ReadonlySet<string>, fields: PayloadField[], added: PayloadField[], mapped: { path: string }[]): string[] {
  const fresh = draftMappings(fields, descriptor.name);
  const taken = new Set(mapped.map((m) => m.path));
  const slotLines: string[] = [];
  const dimensionLines: string[] = [];
  for (const field of added) {
    if (taken.has(field.path)) continue;
    const note = `new in the spec: ${field.path} (${typeLabel(field)})`;
    const slot = EVENT_FIELDS.find((f): f is Exclude<typeof f, 'dimensions'> => {
      if (f === 'dimensions') return false;
      const draft = fresh.mappings[f];
      return draft !== undefined && 'path' in draft && draft.path === field.path && (descriptor.mappings[f] === undefined || unmapped.has(f));
    });
    if (slot) {
      slotLines.push(` ${slot}: ${flow(fresh.mappings[slot] as DraftMapping)}   # ${note}`);
      continue;
    }
    const key = uniqueKey(field, descriptor.mappings.dimensions);
    const mapping: DraftMapping = field.required ? { path: field.path } : { path: field.path, optional: true };
    dimensionLines.push(`   ${key}: ${flow(mapping)}   # ${note}`);
  }
  const dimensions = mappings.get('dimensions', true);
  if (dimensionLines.length > 0) {
    if (isMap(dimensions) && !dimensions.flow && dimensions.items.length > 0) {
      dimensions.comment = join(dimensions.comment, dimensionLines.map((l) => l.slice(2)).join('\n'));
    } else {
      slotLines.push(' dimensions:   # (add these under your dimensions)', ...dimensionLines);
    }
  }
  if (slotLines.length > 0) mappings.comment = join(mappings.comment, slotLines.join('\n'));
  return [...slotLines, ...dimensionLines].map((l) => l.trim());
}

function uniqueKey(field: PayloadField, taken: Record<string, unknown>): string {
  const short = field.path.slice(field.path.lastIndexOf('.') + 1);
  return Object.hasOwn(taken, short) ? field.path.replaceAll('.', '_') : short;
}

function flow(mapping: DraftMapping): string {
  const parts = Object.entries(mapping).map(([k, v]) => `${k}: ${typeof v === 'string' && !/^[\w.-]+$/.test(v) ? JSON.stringify(v) : String(v)}`);
  return `{ ${parts.join(', ')} }`;
}

function pairAt(mappings: YAMLMap, at: string): Parameters<typeof setCommentBefore>[0] | undefined {
  const [, first, second] = at.split('.');
  const pair = mappings.items.find((p) => keyOf(p) === first);
  if (second === undefined || !pair || !isMap(pair.value)) return pair;
  return pair.value.items.find((p) => keyOf(p) === second);
}

function join(existing: string | null | undefined, more: string): string {
  return existing ? `${existing}\n${more}` : more;
}

/** `integer int64` -> `integer`: a new format is not a new type. */
function baseType(label: string): string {
  return label.split(' ')[0]!;
}
