import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RecordView } from '../../src/commands/record-view.js';
import { viewsOfPassing } from '../../src/deliver/delivery.js';
import type { SourceRecord } from '../../src/model/records.js';

const record = (offset: number, key: string | null): SourceRecord => ({ topic: 't', partition: 0, offset: String(offset), key: key === null ? null : Buffer.from(key), value: Buffer.from('v'), headers: {}, timestamp: 0 });
const view = (r: SourceRecord): RecordView => ({ topic: r.topic, partition: r.partition, offset: r.offset, timestamp: '', key: r.key?.toString() ?? null, headers: {}, kind: 'text', value: 'v' });

describe('viewsOfPassing', () => {
  it('decodes exactly the records whose key passes the subject filter and the scope, each view in its record\'s place', async () => {
    const keys = fc.constantFrom('acme', 'globex', 'team-a/x', null);
    await fc.assert(
      fc.asyncProperty(fc.array(keys, { maxLength: 40 }), fc.option(fc.subarray(['acme', 'globex', 'team-a/x']), { nil: undefined }), fc.boolean(), async (recordKeys, subjects, scoped) => {
        const records = recordKeys.map((k, i) => record(i, k));
        const decoded: SourceRecord[] = [];
        const allows = scoped ? (s: string) => s.startsWith('team-a/') || s === 'acme' : undefined;
        const filter = subjects === undefined ? {} : { subjects };
        const views = await viewsOfPassing(records, filter, allows, (rs) => {
          decoded.push(...rs);
          return Promise.resolve(rs.map(view));
        });
        const passes = (k: string | null): boolean => (subjects === undefined && allows === undefined) || (k !== null && (subjects === undefined || subjects.includes(k)) && (allows === undefined || allows(k)));
        expect(views.map((v) => v?.offset)).toEqual(records.map((r) => (passes(r.key?.toString() ?? null) ? r.offset : undefined)));
        expect(decoded.map((r) => r.offset)).toEqual(records.filter((r) => passes(r.key?.toString() ?? null)).map((r) => r.offset));
      }),
    );
  });
});
