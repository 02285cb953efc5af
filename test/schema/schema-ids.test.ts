import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SchemaConflictError } from '../../src/errors.js';
import { SchemaSightings, sightingOf } from '../../src/schema/schema-ids.js';
import { usageEventSchema, usageEventType } from '../../src/schema/usage-event.js';
import { catchError } from '../support/unit/fixtures.js';

const other = avro.Type.forSchema({ type: 'record', name: 'Other', namespace: 'dev.example', fields: [{ name: 'id', type: 'long' }] });

describe('sightingOf', () => {
  it('fingerprints what decides decoding: docs, defaults and spacing do not count, a field type does', () => {
    const schema = usageEventSchema as { fields: { name: string; type: unknown; doc?: string }[] };
    const documented = avro.Type.forSchema({ ...schema, doc: 'another doc', fields: schema.fields.map((f) => ({ ...f, doc: `about ${f.name}` })) } as avro.Schema);
    const retyped = avro.Type.forSchema({ ...schema, fields: schema.fields.map((f) => (f.name === 'time' ? { ...f, type: 'int' } : f)) } as avro.Schema);
    const base = sightingOf(usageEventType, 'n');
    expect(sightingOf(documented, 'n').sha256).toBe(base.sha256);
    expect(sightingOf(retyped, 'n').sha256).not.toBe(base.sha256);
    expect(base.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(base.name).toBe('dev.ordo.v1.UsageEvent');
  });
});

describe('SchemaSightings', () => {
  const mine = sightingOf(usageEventType, 'ordo-0', new Date('2026-11-30T10:00:00Z'));
  const theirs = sightingOf(other, 'ordo-1', new Date('2026-11-30T11:00:00Z'));

  it('knows an id once observed with the same schema, and not before', () => {
    const sightings = new SchemaSightings();
    expect(sightings.check(7, mine)).toBe('unknown');
    sightings.observe(7, mine);
    sightings.observe(7, { ...mine, node: 'ordo-2', seenAt: 'later' }); // the same schema again
    expect(sightings.check(7, mine)).toBe('known');
    expect(sightings.check(8, theirs)).toBe('unknown');
  });

  it('refuses an id that now names another schema, naming the id, both schemas and when it was first seen (fatal)', () => {
    const sightings = new SchemaSightings();
    sightings.observe(1, mine);
    const error = catchError(() => sightings.check(1, theirs)) as SchemaConflictError;
    expect(error).toBeInstanceOf(SchemaConflictError);
    expect(error.code).toBe('ORDO_SCHEMA_CONFLICT');
    expect(error.retriable).toBe(false);
    expect(error.schemaId).toBe(1);
    expect(error.message).toContain('schema registry id 1 now names a different schema (dev.example.Other');
    expect(error.message).toContain('on 2026-11-30T10:00:00.000Z by ordo-0 (dev.ordo.v1.UsageEvent');
  });

  it('keeps the first record of an id: a later, different record for it is a conflict for everyone', () => {
    const sightings = new SchemaSightings();
    sightings.observe(3, mine);
    sightings.observe(3, theirs); // another worker saw a reset registry
    expect(catchError(() => sightings.check(3, mine))).toBeInstanceOf(SchemaConflictError);
    expect(catchError(() => sightings.check(3, theirs))).toBeInstanceOf(SchemaConflictError);
  });
});
