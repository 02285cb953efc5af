import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { ConfigError, OrdoError, TransientError } from '../errors.js';
import { type RegistryConnection, registryClientArgs, registryCredentialsVariable } from './registry-client.js';
import type { SchemaIdGuard } from './schema-ids.js';

/**
 * What the pure decode step needs: the writer schema for an id, resolved ahead of time.
 * `undefined` = not fetched; `null` = the registry says the id does not exist.
 */
export interface SchemaLookup {
  writerType(schemaId: number): avro.Type | null | undefined;
}

/** Wraps @kafkajs/confluent-schema-registry: registers our schemas, prefetches writer schemas by id. */
export class SchemaCatalog implements SchemaLookup {
  private readonly registry: SchemaRegistry;
  /** Fetched writer schemas; null for a schema that is not Avro (never ours to read). */
  private readonly types = new Map<number, avro.Type | null>();
  /** When the registry said an id does not exist: asked again after `missingTtlMs` (it may be registered late). */
  private readonly missingSince = new Map<number, number>();

  /**
   * `guard`, when given, checks every schema before its id is used (fetched for decoding or
   * returned by a registration): an id must keep naming the schema it named before.
   */
  constructor(
    private readonly connection: string | RegistryConnection,
    private readonly missingTtlMs = 60_000,
    private readonly guard?: SchemaIdGuard,
  ) {
    this.registry = new SchemaRegistry(registryClientArgs(connection), { [SchemaType.AVRO]: {} });
  }

  /** Registers `schema` under `subject` (idempotent) and returns its id. */
  async register(subject: string, schema: avro.Schema): Promise<number> {
    const id = await this.registerRacing(subject, schema);
    await this.guard?.verify(id, avro.Type.forSchema(schema));
    return id;
  }

  /** POSTs the schema; a first registration that loses a race with another role's is re-read, not failed. */
  private async registerRacing(subject: string, schema: avro.Schema): Promise<number> {
    const confluent = { type: SchemaType.AVRO, schema: JSON.stringify(schema) } as const;
    for (let attempt = 1; ; attempt++) {
      try {
        const { id } = await this.registry.register(confluent, { subject });
        return id;
      } catch (cause) {
        // Another role may have registered it at the same moment (roles started together): the
        // loser of a subject's first registration gets a conflict ("A rule named
        // 'COMPATIBILITY' already exists") or an error; re-read before calling it a failure.
        const id = await this.registry.getRegistryIdBySchema(subject, confluent).catch(() => undefined);
        if (id !== undefined) return id;
        const status = (cause as { status?: number }).status;
        const message = `could not register schema under subject ${subject}: ${(cause as Error).message}`;
        refuseCredentials(status, this.connection);
        if (status === 409 && isFirstRegistrationRace(cause)) {
          if (attempt < FIRST_REGISTRATION_ATTEMPTS) {
            await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
            continue;
          }
          throw new TransientError(message, { cause });
        }
        // 409/422: the registry refuses this schema (incompatible or invalid); retrying will not help.
        if (status === 409 || status === 422) throw new OrdoError(message, { cause });
        throw new TransientError(message, { cause });
      }
    }
  }

  writerType(schemaId: number): avro.Type | null | undefined {
    return this.types.get(schemaId) ?? (this.missingSince.has(schemaId) ? null : undefined);
  }

  /** Fetches every id not yet known. A 404 marks the id unknown; anything else is transient. */
  async prefetch(schemaIds: Iterable<number>): Promise<void> {
    for (const id of schemaIds) {
      if (this.types.has(id)) continue;
      const missing = this.missingSince.get(id);
      if (missing !== undefined && Date.now() - missing < this.missingTtlMs) continue;
      let schema: unknown;
      try {
        schema = await this.registry.getSchema(id);
      } catch (cause) {
        refuseCredentials((cause as { status?: number }).status, this.connection);
        if (isNotFound(cause)) {
          this.missingSince.set(id, Date.now());
          continue;
        }
        throw new TransientError(`schema registry lookup of id ${id} failed: ${(cause as Error).message}`, { cause });
      }
      // The library returns an avsc Type for Avro schemas; anything else is not ours to read.
      const type = schema instanceof avro.Type ? schema : null;
      if (type !== null) await this.guard?.verify(id, type);
      this.types.set(id, type);
      this.missingSince.delete(id);
    }
  }
}

const FIRST_REGISTRATION_ATTEMPTS = 5;

/** Apicurio's answer to a subject's first registration racing another: "A rule named 'COMPATIBILITY' already exists". */
function isFirstRegistrationRace(error: unknown): boolean {
  return /rule named '?\w+'? already exists/i.test((error as Error | undefined)?.message ?? '');
}

/** 401/403: the registry refuses who we are; no retry helps, exit 78 naming the variable. */
function refuseCredentials(status: number | undefined, connection: string | RegistryConnection): void {
  if (status === 401 || status === 403) {
    throw new ConfigError(registryCredentialsVariable(connection), `the schema registry refused the credentials (HTTP ${status})`);
  }
}

function isNotFound(error: unknown): boolean {
  // The client reports a refused connection as status 400, so only a real 404 means "no such id".
  return (error as { status?: number } | undefined)?.status === 404;
}
