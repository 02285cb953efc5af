import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { type Alias, type Document, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import { ConfigError } from '../errors.js';
import { WINDOW_SIZES, type WindowSize } from './windows.js';

export const AGGREGATIONS = ['SUM', 'COUNT', 'MIN', 'MAX', 'AVG', 'LATEST', 'UNIQUE_COUNT'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export type ValueProperty = { kind: 'value' } | { kind: 'dimension'; name: string };

/** One meter: which events it measures, how, broken down by what, over which windows. */
export interface Meter {
  slug: string;
  description: string | undefined;
  eventTypes: string[];
  aggregation: Aggregation;
  /**
   * Where the measured value comes from. COUNT ignores it (undefined). UNIQUE_COUNT counts
   * distinct values of it (any string). Others need a decimal string there.
   */
  valueProperty: ValueProperty | undefined;
  /** group-by name -> dimension name, names sorted */
  groupBy: Record<string, string>;
  /** maintained windows, fine -> coarse, no duplicates, never empty */
  windows: WindowSize[];
}

/** Every problem with the meters file is reported against this variable. */
const VARIABLE = 'ORDO_METERS_FILE';
/** Slugs appear in aggregate keys and query URLs: lowercase, URL-safe, at most 63 characters. */
const SLUG = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Group-by names are query parameters and JSON field names: identifiers. */
const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** Same limit as event types and dimension names on a usage event (validateUsageEvent). */
const MAX_TEXT = 1024;
/** An event carries at most 64 dimensions, so more group-bys could never all be filled. */
const MAX_GROUP_BY = 64;
const DEFAULT_WINDOWS: readonly WindowSize[] = ['HOUR', 'DAY', 'MONTH'];
const TOP_KEYS = ['meters'] as const;
const METER_KEYS = ['slug', 'description', 'eventType', 'eventTypes', 'aggregation', 'valueProperty', 'groupBy', 'windows'] as const;

/** Keys and list indexes from the top of the file down to one item. */
type Path = readonly (string | number)[];
/** The line of the item at a path, when the parser kept positions. */
type Locate = (path: Path) => number | undefined;

/**
 * Meters from the text of a meters file. `origin` (usually the file path) starts every error
 * message, followed by the path of the offending item, e.g.
 * `meters.yaml: meters[2].aggregation: "SUMM" is not one of SUM, COUNT, ...`.
 */
export function parseMeters(text: string, format: 'yaml' | 'json', origin: string): Meter[] {
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const { value, locate } = format === 'json' ? readJson(source, origin) : readYaml(source, origin);
  return new MeterReader(origin, locate).file(value);
}

/** Meters from a .yaml, .yml or .json file. */
export function loadMetersFile(path: string): Meter[] {
  const extension = extname(path).toLowerCase();
  const format = extension === '.json' ? 'json' : extension === '.yaml' || extension === '.yml' ? 'yaml' : undefined;
  if (format === undefined) {
    const found = extension === '' ? 'no extension' : `the extension "${extension}"`;
    throw new ConfigError(VARIABLE, `${path}: cannot tell the format from ${found}; name the file .yaml, .yml or .json`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(VARIABLE, `${path}: cannot read the file: ${describeReadError(error)}`);
  }
  return parseMeters(text, format, path);
}

/** Meters by slug and by event type, built once at start; routing an event is one map lookup. */
export class MeterCatalog {
  readonly meters: readonly Meter[];
  private readonly bySlug = new Map<string, Meter>();
  private readonly byEventType = new Map<string, Meter[]>();

  constructor(meters: readonly Meter[]) {
    this.meters = [...meters];
    for (const meter of this.meters) {
      if (this.bySlug.has(meter.slug)) throw new ConfigError(VARIABLE, `meter slug "${meter.slug}" is defined twice`);
      this.bySlug.set(meter.slug, meter);
      for (const type of new Set(meter.eventTypes)) {
        const list = this.byEventType.get(type);
        if (list === undefined) this.byEventType.set(type, [meter]);
        else list.push(meter);
      }
    }
  }

  get(slug: string): Meter | undefined {
    return this.bySlug.get(slug);
  }

  /** The meters measuring events of this type, in file order; [] when none. */
  forEventType(type: string): readonly Meter[] {
    return this.byEventType.get(type) ?? NO_METERS;
  }
}

const NO_METERS: readonly Meter[] = Object.freeze([]);

function readYaml(text: string, origin: string): { value: unknown; locate: Locate } {
  const lines = new LineCounter();
  // `merge` lets meters share settings through `<<: *anchor`; duplicate keys stay errors
  // (uniqueKeys is on by default), since a silently shadowed key is a typo we must report.
  const doc = parseDocument(text, { lineCounter: lines, merge: true });
  const [error] = doc.errors;
  if (error !== undefined) throw syntaxError(origin, 'YAML', error.message, error.linePos?.[0]);
  // The parser accepts an alias to a missing anchor and toJS fails later without a position.
  const alias = unresolvedAlias(doc);
  if (alias !== undefined) {
    const at = alias.range ? lines.linePos(alias.range[0]) : undefined;
    throw syntaxError(origin, 'YAML', `alias *${alias.source} has no anchor &${alias.source} before it`, at);
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (cause) {
    // Too many aliases (a "billion laughs" document) fails here, not in parseDocument.
    throw new ConfigError(VARIABLE, `${origin}: invalid YAML: ${errorMessage(cause)}`);
  }
  return { value, locate: (path) => locate(doc, lines, path) };
}

function unresolvedAlias(doc: Document): Alias | undefined {
  const anchors = new Set<string>();
  let unresolved: Alias | undefined;
  visit(doc, {
    Node(_, node) {
      if (!isAlias(node)) {
        if (node.anchor !== undefined) anchors.add(node.anchor);
      } else if (!anchors.has(node.source)) {
        unresolved = node;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return unresolved;
}

function readJson(text: string, origin: string): { value: unknown; locate: Locate } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    const reason = errorMessage(cause);
    const position = /at position (\d+)/.exec(reason)?.[1];
    const at = position === undefined ? undefined : lineAndColumn(text, Number(position));
    throw syntaxError(origin, 'JSON', reason.replace(/ in JSON at position \d+.*$/s, ''), at);
  }
  // JSON.parse silently keeps the last of two equal keys. JSON is YAML, so the YAML parser
  // finds duplicates (and gives lines for later errors); other YAML complaints are ignored.
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const duplicate = doc.errors.find((error) => error.code === 'DUPLICATE_KEY');
  if (duplicate !== undefined) throw syntaxError(origin, 'JSON', 'a key appears twice in one object', duplicate.linePos?.[0]);
  return { value, locate: doc.errors.length === 0 ? (path) => locate(doc, lines, path) : () => undefined };
}

function syntaxError(origin: string, format: string, reason: string, at: { line: number; col: number } | undefined): ConfigError {
  // The yaml package appends " at line L, column C:" and a source excerpt, and V8 may quote
  // the JSON text: keep the message to one line.
  const oneLine = reason.replace(/ at line \d+, column \d+:[\s\S]*$/, '').replace(/\s+/g, ' ').trim();
  const where = at === undefined ? origin : `${origin}:${at.line}:${at.col}`;
  return new ConfigError(VARIABLE, `${where}: invalid ${format}: ${oneLine}`);
}

function lineAndColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf('\n');
  return { line: before.split('\n').length, col: offset - lastBreak };
}

/** The line of the deepest item on `path` that the document has (a key's own line for map entries). */
function locate(doc: Document, lines: LineCounter, path: Path): number | undefined {
  for (let depth = path.length; depth > 0; depth--) {
    const parent = depth === 1 ? doc.contents : doc.getIn(path.slice(0, depth - 1), true);
    const segment = path[depth - 1];
    let node: unknown;
    if (isMap(parent)) node = parent.items.find((pair) => isScalar(pair.key) && String(pair.key.value) === String(segment))?.key;
    else if (isSeq(parent) && typeof segment === 'number') node = parent.items[segment];
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Validates the parsed file item by item; the first problem throws, naming its path. */
class MeterReader {
  constructor(
    private readonly origin: string,
    private readonly locate: Locate,
  ) {}

  file(root: unknown): Meter[] {
    if (root === null || root === undefined) this.fail([], 'the file is empty; expected a mapping with a "meters" list (`meters: []` turns aggregation off)');
    if (!isRecord(root)) this.fail([], `the top level must be a mapping with a "meters" list, got ${show(root)}`);
    this.onlyKeys(root, [], TOP_KEYS);
    if (root.meters === undefined) this.fail([], 'missing the "meters" list (`meters: []` turns aggregation off)');
    if (!Array.isArray(root.meters)) this.fail(['meters'], `must be a list of meters, got ${show(root.meters)}`);
    const meters: Meter[] = [];
    const indexBySlug = new Map<string, number>();
    for (const [index, item] of (root.meters as unknown[]).entries()) {
      const meter = this.meter(item, ['meters', index]);
      const first = indexBySlug.get(meter.slug);
      if (first !== undefined) this.fail(['meters', index, 'slug'], `${show(meter.slug)} is already the slug of meters[${first}]`);
      indexBySlug.set(meter.slug, index);
      meters.push(meter);
    }
    return meters;
  }

  private meter(item: unknown, at: Path): Meter {
    if (!isRecord(item)) this.fail(at, `must be a mapping with slug, eventType and aggregation, got ${show(item)}`);
    // Unknown keys first: a misspelt optional key would otherwise be silently ignored.
    this.onlyKeys(item, at, METER_KEYS);
    const slug = this.slug(item.slug, [...at, 'slug']);
    const description = item.description === undefined ? undefined : this.description(item.description, [...at, 'description']);
    const eventTypes = this.eventTypes(item, at);
    const aggregation = this.aggregation(item.aggregation, [...at, 'aggregation']);
    const valueProperty = this.valueProperty(item.valueProperty, aggregation, [...at, 'valueProperty']);
    const groupBy = item.groupBy === undefined ? {} : this.groupBy(item.groupBy, [...at, 'groupBy']);
    const windows = item.windows === undefined ? [...DEFAULT_WINDOWS] : this.windows(item.windows, [...at, 'windows']);
    return { slug, description, eventTypes, aggregation, valueProperty, groupBy, windows };
  }

  private slug(value: unknown, at: Path): string {
    if (value === undefined) this.fail(at, 'missing; every meter needs a slug');
    if (typeof value !== 'string') this.fail(at, `must be a string, got ${show(value)}`);
    if (!SLUG.test(value)) {
      this.fail(at, `${show(value)} is not a valid slug: 1-63 lowercase letters, digits, "_" or "-", starting with a letter or digit`);
    }
    return value;
  }

  private description(value: unknown, at: Path): string {
    if (typeof value !== 'string') this.fail(at, `must be a string, got ${show(value)}`);
    return value;
  }

  private eventTypes(item: Record<string, unknown>, at: Path): string[] {
    if (item.eventType !== undefined && item.eventTypes !== undefined) this.fail(at, 'give eventType or eventTypes, not both');
    if (item.eventType !== undefined) return [this.eventType(item.eventType, [...at, 'eventType'])];
    if (item.eventTypes === undefined) this.fail(at, 'missing eventType (one event type) or eventTypes (a list): which events does the meter measure?');
    const listAt = [...at, 'eventTypes'];
    if (!Array.isArray(item.eventTypes)) this.fail(listAt, `must be a list of event types, got ${show(item.eventTypes)}`);
    if (item.eventTypes.length === 0) this.fail(listAt, 'must list at least one event type');
    const types: string[] = [];
    for (const [index, value] of (item.eventTypes as unknown[]).entries()) {
      const type = this.eventType(value, [...listAt, index]);
      if (types.includes(type)) this.fail([...listAt, index], `${show(type)} is listed twice`);
      types.push(type);
    }
    return types;
  }

  private eventType(value: unknown, at: Path): string {
    if (typeof value !== 'string' || value.length === 0) this.fail(at, `must be a non-empty string, got ${show(value)}`);
    if (value.length > MAX_TEXT) this.fail(at, `is longer than ${MAX_TEXT} characters`);
    return value;
  }

  private aggregation(value: unknown, at: Path): Aggregation {
    if (value === undefined) this.fail(at, `missing; give one of ${AGGREGATIONS.join(', ')}`);
    if (!isOneOf(value, AGGREGATIONS)) {
      const hint = typeof value === 'string' && isOneOf(value.toUpperCase(), AGGREGATIONS) ? ' (they are upper case)' : '';
      this.fail(at, `${show(value)} is not one of ${AGGREGATIONS.join(', ')}${hint}`);
    }
    return value;
  }

  private valueProperty(value: unknown, aggregation: Aggregation, at: Path): ValueProperty | undefined {
    if (aggregation === 'COUNT') {
      if (value !== undefined) this.fail(at, 'COUNT counts events and reads no value; remove valueProperty, or use SUM to add values up');
      return undefined;
    }
    if (value === undefined || value === 'value') return { kind: 'value' };
    if (typeof value === 'string' && value.startsWith('dimensions.')) {
      const name = value.slice('dimensions.'.length);
      if (name.length > 0 && name.length <= MAX_TEXT) return { kind: 'dimension', name };
    }
    this.fail(at, `${show(value)} is not "value" (the event's value) or "dimensions.<name>" (a dimension of 1-${MAX_TEXT} characters)`);
  }

  private groupBy(value: unknown, at: Path): Record<string, string> {
    if (!isRecord(value)) this.fail(at, `must be a mapping of group-by name to dimension name, got ${show(value)}`);
    const entries = Object.entries(value);
    if (entries.length > MAX_GROUP_BY) this.fail(at, `has ${entries.length} entries; at most ${MAX_GROUP_BY} (the most dimensions an event carries)`);
    const groups: [string, string][] = [];
    for (const [name, dimension] of entries) {
      const nameAt = [...at, name];
      if (!GROUP_NAME.test(name)) {
        this.fail(nameAt, `${show(name)} is not a valid group-by name: a letter or "_", then up to 62 letters, digits or "_"`);
      }
      if (name === 'subject') this.fail(nameAt, '"subject" is reserved: aggregates are always per subject and the query API filters by it');
      // Object keys named __proto__ vanish or rewire the prototype in ordinary objects.
      if (name === '__proto__') this.fail(nameAt, '"__proto__" is reserved');
      if (typeof dimension !== 'string' || dimension.length === 0) this.fail(nameAt, `must be a dimension name (a non-empty string), got ${show(dimension)}`);
      if (dimension.length > MAX_TEXT) this.fail(nameAt, `the dimension name is longer than ${MAX_TEXT} characters`);
      groups.push([name, dimension]);
    }
    return Object.fromEntries(groups.sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  private windows(value: unknown, at: Path): WindowSize[] {
    if (!Array.isArray(value)) this.fail(at, `must be a list of window sizes (${WINDOW_SIZES.join(', ')}), got ${show(value)}`);
    if (value.length === 0) this.fail(at, `must list at least one window size (${WINDOW_SIZES.join(', ')})`);
    const chosen = new Set<WindowSize>();
    for (const [index, size] of (value as unknown[]).entries()) {
      if (!isOneOf(size, WINDOW_SIZES)) this.fail([...at, index], `${show(size)} is not one of ${WINDOW_SIZES.join(', ')}`);
      if (chosen.has(size)) this.fail([...at, index], `${show(size)} is listed twice`);
      chosen.add(size);
    }
    return WINDOW_SIZES.filter((size) => chosen.has(size));
  }

  private onlyKeys(record: Record<string, unknown>, at: Path, allowed: readonly string[]): void {
    for (const key of Object.keys(record)) {
      if (allowed.includes(key)) continue;
      const near = closest(key, allowed);
      const hint = near === undefined ? '' : ` (did you mean "${near}"?)`;
      this.fail([...at, key], `unknown key${hint}; allowed keys are ${allowed.join(', ')}`);
    }
  }

  private fail(path: Path, message: string): never {
    if (path.length === 0) throw new ConfigError(VARIABLE, `${this.origin}: ${message}`);
    const line = this.locate(path);
    const suffix = line === undefined ? '' : ` (line ${line})`;
    throw new ConfigError(VARIABLE, `${this.origin}: ${formatPath(path)}: ${message}${suffix}`);
  }
}

/** `meters[2].groupBy.model`; keys that are not identifiers are quoted: `groupBy["a b"]`. */
function formatPath(path: Path): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** A value as the message shows it: strings quoted (and cut short), others by kind. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  if (value instanceof Uint8Array) return 'binary data';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `the ${typeof value} ${value}`;
  return `a ${typeof value}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function isOneOf<T extends string>(value: unknown, allowed: readonly T[]): value is T {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value);
}

/** The allowed key a typo most likely meant: at most two edits away, ignoring case. */
function closest(key: string, allowed: readonly string[]): string | undefined {
  if (key.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitute = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitute));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function describeReadError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return errorMessage(error);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
