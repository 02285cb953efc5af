import { describe, expect, it } from 'vitest';
import { USAGE_PARAMETERS, parseTimestamp, parseUsageQuery } from '../../src/api/query-params.js';
import type { UsageQuery } from '../../src/api/read-model.js';
import { QueryError } from '../../src/errors.js';
import { type Meter, MeterCatalog } from '../../src/usage/meters.js';
import { catchError } from '../support/unit/fixtures.js';

const tokens: Meter = {
  slug: 'tokens',
  description: 'LLM tokens',
  eventTypes: ['llm.completion'],
  aggregation: 'SUM',
  valueProperty: { kind: 'value' },
  groupBy: { model: 'model', region: 'region' },
  windows: ['HOUR', 'DAY', 'MONTH'],
};
const meters = new MeterCatalog([tokens]);

const NOV_1 = Date.UTC(2026, 10, 1);
const NOV_2 = Date.UTC(2026, 10, 2);
const RANGE = 'from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z';

function parse(query: string, slug = 'tokens'): UsageQuery {
  return parseUsageQuery(slug, new URLSearchParams(query), meters);
}

const defaults: UsageQuery = {
  meter: 'tokens',
  subjects: undefined,
  from: NOV_1,
  to: NOV_2,
  windowSize: undefined,
  timeZone: 'UTC',
  groupBy: [],
  filter: {},
};

describe('parseUsageQuery: good parameter sets', () => {
  it.each<[string, string, Partial<UsageQuery>]>([
    ['the required range only', RANGE, {}],
    ['offsets, percent-encoded', 'from=2026-11-01T01:00:00%2B01:00&to=2026-11-01T19:00:00-05:00', { to: NOV_2 }],
    ['an unencoded "+" offset (decoded as a space)', 'from=2026-11-01T01:00:00+01:00&to=2026-11-02T00:00:00Z', {}],
    ['lower-case t and z, a fraction', 'from=2026-11-01t00:00:00.000z&to=2026-11-01T23:59:59.999000Z', { to: NOV_2 - 1 }],
    ['repeated subjects, duplicates dropped', `${RANGE}&subject=acme&subject=globex&subject=acme`, { subjects: ['acme', 'globex'] }],
    ['subjects with commas are not split', `${RANGE}&subject=a%2Cb`, { subjects: ['a,b'] }],
    ['groupBy repeated and comma-separated', `${RANGE}&groupBy=subject,model&groupBy=region&groupBy=model`, { groupBy: ['subject', 'model', 'region'] }],
    ['groupBy with spaces after commas', `${RANGE}&groupBy=subject,%20model`, { groupBy: ['subject', 'model'] }],
    ['repeated filters', `${RANGE}&filter[model]=gpt&filter[model]=claude&filter%5Bregion%5D=eu`, { filter: { model: ['gpt', 'claude'], region: ['eu'] } }],
    ['window size and time zone', `${RANGE}&windowSize=HOUR&windowTimeZone=America/New_York`, { windowSize: 'HOUR', timeZone: 'America/New_York' }],
    ['every window size', `${RANGE}&windowSize=MONTH`, { windowSize: 'MONTH' }],
  ])('%s', (_name, query, expected) => {
    expect(parse(query)).toEqual({ ...defaults, ...expected });
  });

  it('reads years 0-99 literally (Date.UTC would add 1900)', () => {
    expect(parseTimestamp('from', '0050-01-01T00:00:00Z')).toBe(new Date('0050-01-01T00:00:00.000Z').getTime());
    expect(parseTimestamp('from', '2024-02-29T12:00:00Z')).toBe(Date.UTC(2024, 1, 29, 12));
  });
});

describe('parseUsageQuery: bad parameter sets', () => {
  // Each error names the parameter and quotes the offending value.
  it.each<[string, string, string[]]>([
    ['missing from', 'to=2026-11-02T00:00:00Z', ['from', 'required']],
    ['missing to', 'from=2026-11-01T00:00:00Z', ['to', 'required']],
    ['a date without time', 'from=2026-11-01&to=2026-11-02T00:00:00Z', ['from', '"2026-11-01"', 'RFC 3339']],
    ['no offset', 'from=2026-11-01T00:00:00&to=2026-11-02T00:00:00Z', ['from', '"2026-11-01T00:00:00"']],
    ['a space for T', 'from=2026-11-01%2000:00:00Z&to=2026-11-02T00:00:00Z', ['from', '"2026-11-01 00:00:00Z"']],
    ['Date.parse-style text', 'from=2026-11-01T00:00:00Z&to=Mon%2C%2002%20Nov%202026%2000%3A00%3A00%20GMT', ['to', '"Mon, 02 Nov 2026 00:00:00 GMT"']],
    ['epoch milliseconds', 'from=1793491200000&to=2026-11-02T00:00:00Z', ['from', '"1793491200000"']],
    ['an expanded year', 'from=%2B002026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z', ['from', '"+002026-11-01T00:00:00Z"']],
    ['day 31 in November', 'from=2026-11-31T00:00:00Z&to=2026-12-02T00:00:00Z', ['from', '"2026-11-31T00:00:00Z"', '30 days']],
    ['29 February in a common year', 'from=2026-02-29T00:00:00Z&to=2026-12-02T00:00:00Z', ['from', '"2026-02-29T00:00:00Z"', '28 days']],
    ['month 13', 'from=2026-13-01T00:00:00Z&to=2026-12-02T00:00:00Z', ['from', 'month 13']],
    ['hour 24', 'from=2026-11-01T24:00:00Z&to=2026-12-02T00:00:00Z', ['from', 'hour 24']],
    ['a leap second', 'from=2026-11-01T00:00:60Z&to=2026-12-02T00:00:00Z', ['from', 'second 60']],
    ['offset +24:00', 'from=2026-11-01T00:00:00%2B24:00&to=2026-12-02T00:00:00Z', ['from', '+24:00']],
    ['sub-millisecond digits', 'from=2026-11-01T00:00:00.0001Z&to=2026-12-02T00:00:00Z', ['from', '"2026-11-01T00:00:00.0001Z"', 'millisecond']],
    ['from after to', 'from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z', ['from', 'to', '"2026-11-02T00:00:00Z"']],
    ['an empty range', 'from=2026-11-01T01:00:00%2B01:00&to=2026-11-01T00:00:00Z', ['from', 'before']],
    ['from twice', `${RANGE}&from=2026-11-01T00:00:00Z`, ['from', 'more than once']],
    ['windowSize in lower case', `${RANGE}&windowSize=hour`, ['windowSize', '"hour"', 'upper case']],
    ['an unknown window size', `${RANGE}&windowSize=WEEK`, ['windowSize', '"WEEK"', 'MINUTE, HOUR, DAY, MONTH']],
    ['an unknown time zone', `${RANGE}&windowTimeZone=Mars/Olympus_Mons`, ['windowTimeZone', 'Mars/Olympus_Mons']],
    ['an unknown parameter', `${RANGE}&subjects=acme`, ['"subjects"', ...USAGE_PARAMETERS]],
    ['filter without a name', `${RANGE}&filter=model`, ['"filter"', 'filter[<group>]']],
    ['filter with an empty name', `${RANGE}&filter[]=x`, ['"filter[]"']],
    ['an empty subject', `${RANGE}&subject=`, ['subject', 'empty']],
    ['an empty groupBy name', `${RANGE}&groupBy=model,,region`, ['groupBy', '"model,,region"']],
  ])('%s', (_name, query, fragments) => {
    const error = catchError(() => parse(query));
    expect(error).toBeInstanceOf(QueryError);
    expect(error).toMatchObject({ kind: 'bad-parameter', status: 400 });
    for (const fragment of fragments) expect((error as QueryError).message).toContain(fragment);
  });

  it('answers 404 for an unknown meter before looking at the parameters', () => {
    const error = catchError(() => parse('bogus=1', 'nope'));
    expect(error).toMatchObject({ kind: 'unknown-meter', status: 404 });
    expect((error as QueryError).message).toContain('"nope"');
    expect((error as QueryError).message).toContain('tokens');
  });

  it('cuts long values short in messages', () => {
    const error = catchError(() => parse(`from=${'9'.repeat(5_000)}&to=2026-11-02T00:00:00Z`)) as QueryError;
    expect(error.message.length).toBeLessThan(300);
    expect(error.message).toContain('(5000 chars)');
  });
});
