import { QueryError } from '../errors.js';
import type { SchemaCatalog } from '../schema/schema-catalog.js';
import { ResolverCache } from '../schema/resolvers.js';
import { type UsageEvent, encodeUsageEvent, usageEventSchema, usageEventType } from '../schema/usage-event.js';
import { unframe } from '../schema/wire-format.js';

/**
 * Reads a letter's value as a UsageEvent where it still decodes (its writer schema from the
 * registry, unvalidated: an `invalid-value` letter is shown as it was), and encodes a
 * corrected event with the UsageEvent schema registered under `<input>-value`, as the ingest
 * role does, so the pipeline decodes the replay like any other event.
 */
export class LetterCodec {
  private readonly resolvers = new ResolverCache(usageEventType);
  private schemaId: Promise<number> | undefined;

  constructor(
    private readonly catalog: SchemaCatalog,
    private readonly inputTopic: string,
  ) {}

  /** The event the value holds, or undefined when it does not decode (no value, unknown or incompatible schema, bad Avro). */
  async decode(value: Buffer | null): Promise<UsageEvent | undefined> {
    try {
      const { schemaId, body } = unframe(value);
      await this.catalog.prefetch([schemaId]);
      const writer = this.catalog.writerType(schemaId);
      if (writer === null || writer === undefined) return undefined;
      const resolver = this.resolvers.resolverFor(writer);
      if (resolver instanceof Error) return undefined;
      return usageEventType.fromBuffer(body, resolver, false) as UsageEvent;
    } catch {
      return undefined;
    }
  }

  /** The corrected event framed with the registered schema id (registered on first use; 503 if the registry cannot be reached). */
  async encode(event: UsageEvent): Promise<Buffer> {
    const pending = (this.schemaId ??= this.catalog.register(`${this.inputTopic}-value`, usageEventSchema));
    let id: number;
    try {
      id = await pending;
    } catch (error) {
      this.schemaId = undefined;
      throw new QueryError('registry-unavailable', `the UsageEvent schema could not be registered: ${(error as Error).message}; nothing was replayed`, 503, { headers: { 'retry-after': '5' } });
    }
    return encodeUsageEvent(id, event);
  }
}
