import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, OrdoError } from '../../src/errors.js';
import { AGGREGATIONS, loadMetersFile, type Meter, MeterCatalog, parseMeters } from '../../src/usage/meters.js';
import { WINDOW_SIZES } from '../../src/usage/windows.js';
import { catchError } from '../support/unit/fixtures.js';

const EXAMPLE = fileURLToPath(new URL('../../docs/meters.example.yaml', import.meta.url));

/** Runs `fn`, checks it threw the meters-file ConfigError and returns its message. */
function metersError(fn: () => unknown): string {
  const error = catchError(fn);
  expect(error).toBeInstanceOf(ConfigError);
  expect(error).toBeInstanceOf(OrdoError);
  const configError = error as ConfigError;
  expect(configError.variable).toBe('ORDO_METERS_FILE');
  expect(configError.code).toBe('ORDO_CONFIG');
  expect(configError.retriable).toBe(false);
  expect(configError.message.startsWith('ORDO_METERS_FILE: ')).toBe(true);
  return configError.message;
}

function yamlError(text: string): string {
  return metersError(() => parseMeters(text, 'yaml', 'meters.yaml'));
}

function jsonError(text: string): string {
  return metersError(() => parseMeters(text, 'json', 'meters.json'));
}

const VALID_YAML = `
# Comments and flow style are both fine.
meters:
  - slug: api-requests
    description: API calls
    eventType: api.request
    aggregation: COUNT
  - slug: llm-tokens
    eventType: llm.completion
    aggregation: SUM
    valueProperty: dimensions.tokens
    groupBy: { region: cloud_region, model: model }
    windows: [MONTH, MINUTE, DAY, HOUR]
  - slug: active-users
    eventTypes: [api.request, web.login]
    aggregation: UNIQUE_COUNT
    valueProperty: dimensions.user_id
    windows: [DAY]
  - slug: storage_bytes
    eventType: storage.snapshot
    aggregation: LATEST
    valueProperty: value
`;

const VALID_JSON = JSON.stringify(
  {
    meters: [
      { slug: 'api-requests', description: 'API calls', eventType: 'api.request', aggregation: 'COUNT' },
      {
        slug: 'llm-tokens',
        eventType: 'llm.completion',
        aggregation: 'SUM',
        valueProperty: 'dimensions.tokens',
        groupBy: { region: 'cloud_region', model: 'model' },
        windows: ['MONTH', 'MINUTE', 'DAY', 'HOUR'],
      },
      {
        slug: 'active-users',
        eventTypes: ['api.request', 'web.login'],
        aggregation: 'UNIQUE_COUNT',
        valueProperty: 'dimensions.user_id',
        windows: ['DAY'],
      },
      { slug: 'storage_bytes', eventType: 'storage.snapshot', aggregation: 'LATEST', valueProperty: 'value' },
    ],
  },
  null,
  2,
);

const EXPECTED: Meter[] = [
  {
    slug: 'api-requests',
    description: 'API calls',
    eventTypes: ['api.request'],
    aggregation: 'COUNT',
    valueProperty: undefined,
    groupBy: {},
    windows: ['HOUR', 'DAY', 'MONTH'],
  },
  {
    slug: 'llm-tokens',
    description: undefined,
    eventTypes: ['llm.completion'],
    aggregation: 'SUM',
    valueProperty: { kind: 'dimension', name: 'tokens' },
    groupBy: { model: 'model', region: 'cloud_region' },
    windows: ['MINUTE', 'HOUR', 'DAY', 'MONTH'],
  },
  {
    slug: 'active-users',
    description: undefined,
    eventTypes: ['api.request', 'web.login'],
    aggregation: 'UNIQUE_COUNT',
    valueProperty: { kind: 'dimension', name: 'user_id' },
    groupBy: {},
    windows: ['DAY'],
  },
  {
    slug: 'storage_bytes',
    description: undefined,
    eventTypes: ['storage.snapshot'],
    aggregation: 'LATEST',
    valueProperty: { kind: 'value' },
    groupBy: {},
    windows: ['HOUR', 'DAY', 'MONTH'],
  },
];

describe('parseMeters on valid files', () => {
  it('reads YAML into meters with defaults applied', () => {
    expect(parseMeters(VALID_YAML, 'yaml', 'meters.yaml')).toStrictEqual(EXPECTED);
  });

  it('reads the same meters from JSON', () => {
    expect(parseMeters(VALID_JSON, 'json', 'meters.json')).toStrictEqual(EXPECTED);
  });

  it('sorts group-by names and windows fine to coarse', () => {
    const [, tokens] = parseMeters(VALID_YAML, 'yaml', 'meters.yaml');
    expect(Object.keys(tokens!.groupBy)).toEqual(['model', 'region']);
    expect(tokens!.windows).toEqual(['MINUTE', 'HOUR', 'DAY', 'MONTH']);
  });

  it('accepts an empty meters list (aggregation off)', () => {
    expect(parseMeters('meters: []\n', 'yaml', 'meters.yaml')).toEqual([]);
    expect(parseMeters('{"meters": []}', 'json', 'meters.json')).toEqual([]);
  });

  it('resolves anchors, aliases and merge keys', () => {
    const meters = parseMeters(
      `
meters:
  - &base
    slug: a
    eventType: e
    aggregation: SUM
    groupBy: &groups { model: model }
    windows: &windows [DAY]
  - <<: *base
    slug: b
    aggregation: MAX
  - slug: c
    eventType: f
    aggregation: AVG
    groupBy: *groups
    windows: *windows
`,
      'yaml',
      'meters.yaml',
    );
    expect(meters.map((m) => [m.slug, m.eventTypes, m.aggregation, m.groupBy, m.windows])).toEqual([
      ['a', ['e'], 'SUM', { model: 'model' }, ['DAY']],
      ['b', ['e'], 'MAX', { model: 'model' }, ['DAY']],
      ['c', ['f'], 'AVG', { model: 'model' }, ['DAY']],
    ]);
  });

  it('accepts every aggregation, and a dimension name containing dots', () => {
    for (const aggregation of AGGREGATIONS) {
      const [meter] = parseMeters(`meters: [{slug: m, eventType: e, aggregation: ${aggregation}}]`, 'yaml', 'meters.yaml');
      expect(meter!.aggregation).toBe(aggregation);
      expect(meter!.valueProperty).toEqual(aggregation === 'COUNT' ? undefined : { kind: 'value' });
    }
    const [meter] = parseMeters('meters: [{slug: m, eventType: e, aggregation: MIN, valueProperty: dimensions.a.b}]', 'yaml', 'm.yaml');
    expect(meter!.valueProperty).toEqual({ kind: 'dimension', name: 'a.b' });
  });

  it('accepts the limits: 63-character slug and group-by name, 1024-character names, 64 group-bys', () => {
    const groupBy = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`g${i}`, `d${i}`]));
    groupBy[`_${'x'.repeat(62)}`] = 'y'.repeat(1024);
    delete groupBy.g0;
    const text = JSON.stringify({
      meters: [{ slug: `0${'a'.repeat(62)}`, eventType: 'e'.repeat(1024), aggregation: 'SUM', valueProperty: `dimensions.${'v'.repeat(1024)}`, groupBy }],
    });
    const [meter] = parseMeters(text, 'json', 'meters.json');
    expect(Object.keys(meter!.groupBy)).toHaveLength(64);
    expect(meter!.slug).toHaveLength(63);
  });

  it('ignores a byte-order mark', () => {
    expect(parseMeters(`\uFEFF${VALID_JSON}`, 'json', 'meters.json')).toStrictEqual(EXPECTED);
    expect(parseMeters(`\uFEFF${VALID_YAML}`, 'yaml', 'meters.yaml')).toStrictEqual(EXPECTED);
  });

  it('gives the same meters from YAML and JSON for any valid definitions', () => {
    const groupName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).filter((name) => name !== 'subject' && name !== '__proto__');
    const text = fc.string({ minLength: 1, maxLength: 30 });
    const spec = fc.record({
      slug: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,62}$/),
      description: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
      eventTypes: fc.uniqueArray(text, { minLength: 1, maxLength: 3 }),
      aggregation: fc.constantFrom(...AGGREGATIONS),
      dimension: fc.option(text, { nil: undefined }),
      groupBy: fc.dictionary(groupName, text, { maxKeys: 5, noNullPrototype: true }),
      windows: fc.option(fc.shuffledSubarray([...WINDOW_SIZES], { minLength: 1 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(spec, { maxLength: 4, selector: (s) => s.slug }), (specs) => {
        const file = {
          meters: specs.map((s) => ({
            slug: s.slug,
            description: s.description,
            ...(s.eventTypes.length === 1 ? { eventType: s.eventTypes[0] } : { eventTypes: s.eventTypes }),
            aggregation: s.aggregation,
            valueProperty: s.aggregation === 'COUNT' || s.dimension === undefined ? undefined : `dimensions.${s.dimension}`,
            groupBy: s.groupBy,
            windows: s.windows,
          })),
        };
        const expected: Meter[] = specs.map((s) => ({
          slug: s.slug,
          description: s.description,
          eventTypes: s.eventTypes,
          aggregation: s.aggregation,
          valueProperty:
            s.aggregation === 'COUNT' ? undefined : s.dimension === undefined ? { kind: 'value' } : { kind: 'dimension', name: s.dimension },
          groupBy: Object.fromEntries(Object.entries(s.groupBy).sort(([a], [b]) => (a < b ? -1 : 1))),
          windows: s.windows === undefined ? ['HOUR', 'DAY', 'MONTH'] : WINDOW_SIZES.filter((w) => s.windows!.includes(w)),
        }));
        const fromYaml = parseMeters(stringify(file), 'yaml', 'meters.yaml');
        const fromJson = parseMeters(JSON.stringify(file), 'json', 'meters.json');
        expect(fromYaml).toStrictEqual(expected);
        expect(fromJson).toStrictEqual(expected);
        for (const meter of fromYaml) expect(Object.keys(meter.groupBy)).toEqual(Object.keys(meter.groupBy).sort());
      }),
    );
  });
});

describe('the example file', () => {
  it('docs/meters.example.yaml loads and covers several aggregations', () => {
    const meters = loadMetersFile(EXAMPLE);
    expect(meters.length).toBeGreaterThanOrEqual(4);
    expect(new Set(meters.map((m) => m.aggregation)).size).toBeGreaterThanOrEqual(4);
    const catalog = new MeterCatalog(meters);
    expect(catalog.get('llm-tokens')).toMatchObject({
      eventTypes: ['llm.completion', 'llm.embedding'],
      aggregation: 'SUM',
      valueProperty: { kind: 'dimension', name: 'tokens' },
      groupBy: { model: 'model', region: 'cloud_region' },
      windows: ['MINUTE', 'HOUR', 'DAY', 'MONTH'],
    });
    expect(catalog.forEventType('api.request').map((m) => m.slug)).toEqual(['api-requests', 'active-users']);
  });
});

/** One valid meter with `fields` merged in; a field set to undefined is left out. */
function oneMeter(fields: Record<string, unknown>): { meters: Record<string, unknown>[] } {
  return { meters: [{ slug: 'm', eventType: 'e', aggregation: 'SUM', ...fields }] };
}

const AGGREGATION_LIST = 'SUM, COUNT, MIN, MAX, AVG, LATEST, UNIQUE_COUNT';
const METER_KEY_LIST = 'slug, description, eventType, eventTypes, aggregation, valueProperty, groupBy, windows';

/** [case, file content, expected "<path>: <wording>" after the origin]. Each runs as YAML and as JSON. */
const BAD_FILES: [string, unknown, string][] = [
  ['a list at the top', [{ slug: 'm' }], 'the top level must be a mapping with a "meters" list, got a list'],
  ['a string at the top', 'meters', 'the top level must be a mapping with a "meters" list, got "meters"'],
  ['no meters key', {}, 'missing the "meters" list'],
  ['a misspelt top-level key', { meter: [] }, 'meter: unknown key (did you mean "meters"?); allowed keys are meters'],
  ['meters not a list', { meters: { slug: 'm' } }, 'meters: must be a list of meters, got a mapping'],
  ['meters null', { meters: null }, 'meters: must be a list of meters, got null'],
  ['a meter that is not a mapping', { meters: ['api-requests'] }, 'meters[0]: must be a mapping with slug, eventType and aggregation, got "api-requests"'],
  ['a misspelt key', oneMeter({ agregation: 'SUM' }), `meters[0].agregation: unknown key (did you mean "aggregation"?); allowed keys are ${METER_KEY_LIST}`],
  ['a wrongly cased key', oneMeter({ eventtypes: ['a'] }), 'meters[0].eventtypes: unknown key (did you mean "eventTypes"?)'],
  ['an unrelated key', oneMeter({ 'unit of measure': 'ms' }), `meters[0]["unit of measure"]: unknown key; allowed keys are ${METER_KEY_LIST}`],
  ['a missing slug', oneMeter({ slug: undefined }), 'meters[0].slug: missing; every meter needs a slug'],
  ['a numeric slug', oneMeter({ slug: 42 }), 'meters[0].slug: must be a string, got the number 42'],
  ['an upper-case slug', oneMeter({ slug: 'API' }), 'meters[0].slug: "API" is not a valid slug: 1-63 lowercase letters'],
  ['a slug with a space', oneMeter({ slug: 'api requests' }), 'meters[0].slug: "api requests" is not a valid slug'],
  ['a slug starting with -', oneMeter({ slug: '-api' }), 'meters[0].slug: "-api" is not a valid slug'],
  ['an empty slug', oneMeter({ slug: '' }), 'meters[0].slug: "" is not a valid slug'],
  ['a 64-character slug', oneMeter({ slug: 'a'.repeat(64) }), 'meters[0].slug: "aaaa'],
  [
    'a duplicate slug',
    { meters: [...oneMeter({ slug: 'x' }).meters, ...oneMeter({ slug: 'y' }).meters, ...oneMeter({ slug: 'x', aggregation: 'MAX' }).meters] },
    'meters[2].slug: "x" is already the slug of meters[0]',
  ],
  ['a non-string description', oneMeter({ description: 5 }), 'meters[0].description: must be a string, got the number 5'],
  ['both eventType and eventTypes', oneMeter({ eventTypes: ['a'] }), 'meters[0]: give eventType or eventTypes, not both'],
  ['neither eventType nor eventTypes', oneMeter({ eventType: undefined }), 'meters[0]: missing eventType (one event type) or eventTypes (a list)'],
  ['an empty eventType', oneMeter({ eventType: '' }), 'meters[0].eventType: must be a non-empty string, got ""'],
  ['a list as eventType', oneMeter({ eventType: ['a', 'b'] }), 'meters[0].eventType: must be a non-empty string, got a list'],
  ['a null eventType', oneMeter({ eventType: null }), 'meters[0].eventType: must be a non-empty string, got null'],
  ['a too long eventType', oneMeter({ eventType: 'e'.repeat(1025) }), 'meters[0].eventType: is longer than 1024 characters'],
  ['a string as eventTypes', oneMeter({ eventType: undefined, eventTypes: 'a' }), 'meters[0].eventTypes: must be a list of event types, got "a"'],
  ['an empty eventTypes', oneMeter({ eventType: undefined, eventTypes: [] }), 'meters[0].eventTypes: must list at least one event type'],
  ['an empty event type in eventTypes', oneMeter({ eventType: undefined, eventTypes: ['a', ''] }), 'meters[0].eventTypes[1]: must be a non-empty string'],
  ['a number in eventTypes', oneMeter({ eventType: undefined, eventTypes: [7] }), 'meters[0].eventTypes[0]: must be a non-empty string, got the number 7'],
  ['a repeated event type', oneMeter({ eventType: undefined, eventTypes: ['a', 'b', 'a'] }), 'meters[0].eventTypes[2]: "a" is listed twice'],
  ['an unknown aggregation', oneMeter({ aggregation: 'SUMM' }), `meters[0].aggregation: "SUMM" is not one of ${AGGREGATION_LIST}`],
  ['a lower-case aggregation', oneMeter({ aggregation: 'sum' }), `meters[0].aggregation: "sum" is not one of ${AGGREGATION_LIST} (they are upper case)`],
  ['a missing aggregation', oneMeter({ aggregation: undefined }), `meters[0].aggregation: missing; give one of ${AGGREGATION_LIST}`],
  ['a numeric aggregation', oneMeter({ aggregation: 1 }), 'meters[0].aggregation: the number 1 is not one of SUM'],
  ['a valueProperty on COUNT', oneMeter({ aggregation: 'COUNT', valueProperty: 'dimensions.tokens' }), 'meters[0].valueProperty: COUNT counts events and reads no value'],
  ['even "value" on COUNT', oneMeter({ aggregation: 'COUNT', valueProperty: 'value' }), 'meters[0].valueProperty: COUNT counts events'],
  ['a singular "dimension."', oneMeter({ valueProperty: 'dimension.tokens' }), 'meters[0].valueProperty: "dimension.tokens" is not "value" (the event\'s value) or "dimensions.<name>"'],
  ['a bare dimension name', oneMeter({ valueProperty: 'tokens' }), 'meters[0].valueProperty: "tokens" is not "value"'],
  ['no dimension name', oneMeter({ valueProperty: 'dimensions.' }), 'meters[0].valueProperty: "dimensions." is not "value"'],
  ['a too long dimension name', oneMeter({ valueProperty: `dimensions.${'d'.repeat(1025)}` }), 'meters[0].valueProperty: "dimensions.ddd'],
  ['an upper-case "Value"', oneMeter({ valueProperty: 'Value' }), 'meters[0].valueProperty: "Value" is not "value"'],
  ['a mapping as valueProperty', oneMeter({ valueProperty: { kind: 'value' } }), 'meters[0].valueProperty: a mapping is not "value"'],
  ['a list as groupBy', oneMeter({ groupBy: ['model'] }), 'meters[0].groupBy: must be a mapping of group-by name to dimension name, got a list'],
  ['a null groupBy', oneMeter({ groupBy: null }), 'meters[0].groupBy: must be a mapping of group-by name to dimension name, got null'],
  ['a group-by name with a dash', oneMeter({ groupBy: { 'cloud-region': 'region' } }), 'meters[0].groupBy["cloud-region"]: "cloud-region" is not a valid group-by name'],
  ['a group-by name starting with a digit', oneMeter({ groupBy: { '1st': 'a' } }), 'meters[0].groupBy["1st"]: "1st" is not a valid group-by name'],
  ['a 64-character group-by name', oneMeter({ groupBy: { ['g'.repeat(64)]: 'a' } }), `meters[0].groupBy.${'g'.repeat(64)}: "ggg`],
  ['an empty group-by name', oneMeter({ groupBy: { '': 'a' } }), 'meters[0].groupBy[""]: "" is not a valid group-by name'],
  ['subject as a group-by name', oneMeter({ groupBy: { subject: 'customer' } }), 'meters[0].groupBy.subject: "subject" is reserved'],
  ['an empty dimension name', oneMeter({ groupBy: { model: '' } }), 'meters[0].groupBy.model: must be a dimension name (a non-empty string), got ""'],
  ['a numeric dimension name', oneMeter({ groupBy: { model: 5 } }), 'meters[0].groupBy.model: must be a dimension name (a non-empty string), got the number 5'],
  ['a too long dimension name', oneMeter({ groupBy: { model: 'm'.repeat(1025) } }), 'meters[0].groupBy.model: the dimension name is longer than 1024 characters'],
  [
    '65 group-bys',
    oneMeter({ groupBy: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`g${i}`, `d${i}`])) }),
    'meters[0].groupBy: has 65 entries; at most 64',
  ],
  ['a string as windows', oneMeter({ windows: 'HOUR' }), 'meters[0].windows: must be a list of window sizes (MINUTE, HOUR, DAY, MONTH), got "HOUR"'],
  ['no windows', oneMeter({ windows: [] }), 'meters[0].windows: must list at least one window size (MINUTE, HOUR, DAY, MONTH)'],
  ['an unknown window', oneMeter({ windows: ['HOUR', 'WEEK'] }), 'meters[0].windows[1]: "WEEK" is not one of MINUTE, HOUR, DAY, MONTH'],
  ['a lower-case window', oneMeter({ windows: ['hour'] }), 'meters[0].windows[0]: "hour" is not one of MINUTE, HOUR, DAY, MONTH'],
  ['a repeated window', oneMeter({ windows: ['HOUR', 'DAY', 'HOUR'] }), 'meters[0].windows[2]: "HOUR" is listed twice'],
  [
    'a problem in a later meter',
    { meters: [...oneMeter({ slug: 'a' }).meters, ...oneMeter({ slug: 'b' }).meters, ...oneMeter({ slug: 'c', aggregation: 'SUMM' }).meters] },
    `meters[2].aggregation: "SUMM" is not one of ${AGGREGATION_LIST}`,
  ],
];

describe('parseMeters rejects bad definitions, naming the file and the item', () => {
  it.each(BAD_FILES)('%s (YAML)', (_, content, expected) => {
    expect(yamlError(stringify(content))).toContain(`ORDO_METERS_FILE: meters.yaml: ${expected}`);
  });

  it.each(BAD_FILES)('%s (JSON)', (_, content, expected) => {
    expect(jsonError(JSON.stringify(content))).toContain(`ORDO_METERS_FILE: meters.json: ${expected}`);
  });

  it('rejects __proto__ as a group-by name', () => {
    expect(yamlError('meters: [{slug: m, eventType: e, aggregation: SUM, groupBy: {"__proto__": x}}]')).toContain(
      'meters.yaml: meters[0].groupBy.__proto__: "__proto__" is reserved',
    );
    expect(jsonError('{"meters": [{"slug": "m", "eventType": "e", "aggregation": "SUM", "groupBy": {"__proto__": "x"}}]}')).toContain(
      'meters.json: meters[0].groupBy.__proto__: "__proto__" is reserved',
    );
  });

  it('rejects an empty file and a file of only comments', () => {
    expect(yamlError('')).toContain('meters.yaml: the file is empty');
    expect(yamlError('# nothing yet\n')).toContain('meters.yaml: the file is empty');
    expect(yamlError('meters:\n')).toContain('meters.yaml: meters: must be a list of meters, got null');
  });

  it('reports binary and tagged YAML values by kind', () => {
    expect(yamlError('meters: [{slug: !!binary bWV0ZXI=, eventType: e, aggregation: SUM}]')).toContain('meters[0].slug: must be a string, got binary data');
    expect(yamlError('meters: [{slug: m, eventType: e, aggregation: SUM, description: true}]')).toContain(
      'meters[0].description: must be a string, got the boolean true',
    );
  });

  it('gives the line of the offending item', () => {
    const text = [
      'meters:', // 1
      '  - slug: a', // 2
      '    eventType: e', // 3
      '    aggregation: SUM', // 4
      '  - slug: b', // 5
      '    eventType: e', // 6
      '    aggregation: SUMM', // 7
      '    groupBy:', // 8
      '      subject: customer', // 9
    ].join('\n');
    expect(yamlError(text)).toMatch(/meters\.yaml: meters\[1\]\.aggregation: "SUMM" is not one of .* \(line 7\)$/);
    expect(yamlError(text.replace('SUMM', 'SUM'))).toMatch(/meters\[1\]\.groupBy\.subject: .* \(line 9\)$/);
    // A missing key points at its meter; a misspelt key at itself.
    expect(yamlError(text.replace('    aggregation: SUMM', '    aggregation: SUM\n    agregation: MAX'))).toMatch(/meters\[1\]\.agregation: .* \(line 8\)$/);
    expect(yamlError(text.replace('  - slug: b', '  - description: b'))).toMatch(/meters\[1\]\.slug: missing; .* \(line 5\)$/);
    expect(jsonError(JSON.stringify(oneMeter({ windows: ['DAY', 'WEEK'] }), null, 2))).toMatch(/meters\[0\]\.windows\[1\]: "WEEK" .* \(line 9\)$/);
  });
});

describe('parseMeters rejects malformed text', () => {
  it('rejects duplicate YAML keys with their position', () => {
    const message = yamlError('meters:\n  - slug: a\n    slug: b\n    eventType: e\n    aggregation: SUM\n');
    expect(message).toContain('ORDO_METERS_FILE: meters.yaml:3:5: invalid YAML: Map keys must be unique');
  });

  it('rejects YAML syntax errors with their position', () => {
    expect(yamlError('meters:\n  - slug: a\n   eventType: e\n')).toMatch(/^ORDO_METERS_FILE: meters\.yaml:3:\d+: invalid YAML: /);
    expect(yamlError('meters: [a, b\n')).toMatch(/^ORDO_METERS_FILE: meters\.yaml:\d+:\d+: invalid YAML: /);
    expect(yamlError('meters:\n  - slug: a\n    windows: *nowhere\n')).toContain('meters.yaml:3:14: invalid YAML: alias *nowhere has no anchor &nowhere before it');
    expect(yamlError('meters: [{windows: *w}, {windows: &w [DAY]}]\n')).toContain('meters.yaml:1:20: invalid YAML: alias *w has no anchor');
    expect(yamlError('meters: []\n---\nmeters: []\n')).toMatch(/^ORDO_METERS_FILE: meters\.yaml:2:1: invalid YAML: .*multiple documents/);
  });

  it('keeps syntax error messages to one line', () => {
    expect(yamlError('meters:\n  - slug: a\n   eventType: e\n')).not.toContain('\n');
    expect(jsonError('meters:\n  - slug: a\n')).not.toContain('\n');
    expect(jsonError('{\n"meters":\n[\n1,\n]\n}')).not.toContain('\n');
  });

  it('rejects a YAML alias bomb', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) lines.push(`${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10).fill(`*${'abcdefgh'[i - 1]}`).join(', ')}]`);
    expect(yamlError(lines.join('\n'))).toContain('meters.yaml: invalid YAML: ');
  });

  it('rejects JSON syntax errors with their position', () => {
    expect(jsonError('{\n  "meters": [],\n}')).toMatch(/^ORDO_METERS_FILE: meters\.json:3:1: invalid JSON: /);
    // V8 gives a position for some errors only.
    expect(jsonError('{"meters": [}')).toMatch(/^ORDO_METERS_FILE: meters\.json(?::1:\d+)?: invalid JSON: [^\n]+$/);
    expect(jsonError('{"meters":\n [\n}')).toMatch(/^ORDO_METERS_FILE: meters\.json(?::3:\d+)?: invalid JSON: [^\n]+$/);
    expect(jsonError('')).toContain('ORDO_METERS_FILE: meters.json: invalid JSON: ');
    // YAML is not JSON.
    expect(jsonError('meters: []\n')).toMatch(/^ORDO_METERS_FILE: meters\.json(?::1:1)?: invalid JSON: [^\n]+$/);
  });

  it('rejects duplicate JSON keys, which JSON.parse would silently drop', () => {
    const text = '{"meters": [{"slug": "m", "eventType": "e",\n "aggregation": "SUM", "aggregation": "COUNT"}]}';
    expect(jsonError(text)).toContain('meters.json:2:24: invalid JSON: a key appears twice in one object');
  });
});

describe('loadMetersFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ordo-meters-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('chooses the format by extension', () => {
    for (const name of ['meters.yaml', 'meters.yml', 'METERS.YAML']) {
      writeFileSync(join(dir, name), VALID_YAML);
      expect(loadMetersFile(join(dir, name))).toStrictEqual(EXPECTED);
    }
    writeFileSync(join(dir, 'meters.json'), VALID_JSON);
    expect(loadMetersFile(join(dir, 'meters.json'))).toStrictEqual(EXPECTED);
  });

  it('starts errors with the path it was given', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, stringify(oneMeter({ aggregation: 'SUMM' })));
    expect(metersError(() => loadMetersFile(path))).toContain(`ORDO_METERS_FILE: ${path}: meters[0].aggregation: "SUMM" is not one of`);
  });

  it('rejects an unknown extension', () => {
    const path = join(dir, 'meters.txt');
    writeFileSync(path, VALID_YAML);
    expect(metersError(() => loadMetersFile(path))).toBe(
      `ORDO_METERS_FILE: ${path}: cannot tell the format from the extension ".txt"; name the file .yaml, .yml or .json`,
    );
    expect(metersError(() => loadMetersFile(join(dir, 'meters')))).toContain('cannot tell the format from no extension');
  });

  it('rejects a missing file or a directory', () => {
    const missing = join(dir, 'missing.yaml');
    expect(metersError(() => loadMetersFile(missing))).toBe(`ORDO_METERS_FILE: ${missing}: cannot read the file: no such file`);
    const folder = join(dir, 'folder.yaml');
    mkdirSync(folder);
    expect(metersError(() => loadMetersFile(folder))).toBe(`ORDO_METERS_FILE: ${folder}: cannot read the file: it is a directory`);
  });
});

describe('MeterCatalog', () => {
  const meters = parseMeters(VALID_YAML, 'yaml', 'meters.yaml');
  const catalog = new MeterCatalog(meters);

  it('keeps the meters in file order', () => {
    expect(catalog.meters).toStrictEqual(EXPECTED);
  });

  it('finds a meter by slug', () => {
    expect(catalog.get('llm-tokens')).toBe(meters[1]);
    expect(catalog.get('storage_bytes')).toBe(meters[3]);
    expect(catalog.get('missing')).toBeUndefined();
  });

  it('finds every meter of an event type, in file order', () => {
    expect(catalog.forEventType('api.request')).toEqual([meters[0], meters[2]]);
    expect(catalog.forEventType('web.login')).toEqual([meters[2]]);
    expect(catalog.forEventType('llm.completion')).toEqual([meters[1]]);
    expect(catalog.forEventType('unknown.type')).toEqual([]);
    expect(new MeterCatalog([]).forEventType('api.request')).toEqual([]);
  });

  it('lists a meter once per event type even if given twice', () => {
    const meter: Meter = { ...EXPECTED[0]!, eventTypes: ['a', 'a'] };
    expect(new MeterCatalog([meter]).forEventType('a')).toEqual([meter]);
  });

  it('rejects two meters with the same slug', () => {
    expect(metersError(() => new MeterCatalog([EXPECTED[0]!, EXPECTED[0]!]))).toContain('meter slug "api-requests" is defined twice');
  });
});
