import type avro from 'avsc';
import { SchemaConflictError } from '../errors.js';

/** What Ordo remembers of the schema behind a registry id. */
export interface SchemaSighting {
  /** SHA-256 of the schema's Parsing Canonical Form: what decides how bytes decode. */
  sha256: string;
  /** The schema's full name (for the error message). */
  name: string;
  /** When and where it was first recorded. */
  seenAt: string;
  node: string;
}

/** Checks, before a schema is used for an id, that the id still means what it meant before. */
export interface SchemaIdGuard {
  verify(schemaId: number, type: avro.Type): Promise<void>;
}

export function sightingOf(type: avro.Type, node: string, now = new Date()): SchemaSighting {
  // avsc hashes the Parsing Canonical Form: docs, defaults, aliases and spacing do not count.
  return { sha256: type.fingerprint('sha256').toString('hex'), name: type.name ?? type.typeName, seenAt: now.toISOString(), node };
}

/**
 * The pure part of the ledger: per schema id the first sighting recorded, plus any later
 * one that disagrees with it. A disagreement is never resolved here: it stops Ordo.
 */
export class SchemaSightings {
  private readonly first = new Map<number, SchemaSighting>();
  private readonly conflicting = new Map<number, SchemaSighting>();

  get size(): number {
    return this.first.size;
  }

  /** Takes one record of the ledger topic, in topic order. */
  observe(schemaId: number, sighting: SchemaSighting): void {
    const known = this.first.get(schemaId);
    if (known === undefined) this.first.set(schemaId, sighting);
    else if (known.sha256 !== sighting.sha256 && !this.conflicting.has(schemaId)) this.conflicting.set(schemaId, sighting);
  }

  /** `known`: the id is recorded with this schema; `unknown`: not recorded yet; throws if it meant another schema. */
  check(schemaId: number, seen: SchemaSighting): 'known' | 'unknown' {
    const known = this.first.get(schemaId);
    if (known === undefined) return 'unknown';
    const other = this.conflicting.get(schemaId);
    if (known.sha256 !== seen.sha256) throw conflict(schemaId, known, seen);
    if (other !== undefined) throw conflict(schemaId, known, other);
    return 'known';
  }
}

function conflict(schemaId: number, before: SchemaSighting, now: SchemaSighting): SchemaConflictError {
  return new SchemaConflictError(
    schemaId,
    `schema registry id ${schemaId} now names a different schema (${now.name}, sha256 ${now.sha256.slice(0, 16)}…) than Ordo recorded under it ` +
      `on ${before.seenAt} by ${before.node} (${before.name}, sha256 ${before.sha256.slice(0, 16)}…). The registry has lost or reassigned its ids ` +
      `(was its storage reset?); records framed with id ${schemaId} would be decoded with the wrong schema, so Ordo stops. ` +
      `Restore the registry's storage (docs/operations.md#schema-registry-ids), then restart`,
  );
}
