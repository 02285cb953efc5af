import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import avro from 'avsc';
import { OrdoError, TransientError } from '../../src/errors.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { usageEventSchema } from '../../src/schema/usage-event.js';
import { REGISTRY_URL, uniqueName } from '../support/cluster.js';

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('SchemaCatalog against the real registry', () => {
  it('registers idempotently and resolves the id to an Avro type', async () => {
    const catalog = new SchemaCatalog(REGISTRY_URL);
    const subject = `${uniqueName('it-catalog')}-value`;
    const id = await catalog.register(subject, usageEventSchema);
    expect(await catalog.register(subject, usageEventSchema)).toBe(id);
    await catalog.prefetch([id]);
    expect(catalog.writerType(id)).toBeInstanceOf(avro.Type);
  });

  it('first registrations of a subject racing (roles started together) all get the one id', async () => {
    // Apicurio answers the losers "A rule named 'COMPATIBILITY' already exists" (409).
    for (let round = 0; round < 3; round++) {
      const subject = `${uniqueName('it-catalog-race')}-value`;
      const ids = await Promise.all(Array.from({ length: 6 }, () => new SchemaCatalog(REGISTRY_URL).register(subject, usageEventSchema)));
      expect(new Set(ids).size).toBe(1);
    }
  });

  it('marks an id the registry does not know as unknown (null), not as an error', async () => {
    const catalog = new SchemaCatalog(REGISTRY_URL);
    await catalog.prefetch([1_999_999_999]);
    expect(catalog.writerType(1_999_999_999)).toBeNull();
  });

  it('refuses a schema the subject\'s compatibility rule rejects, as final (not retriable)', async () => {
    const catalog = new SchemaCatalog(REGISTRY_URL);
    const subject = `${uniqueName('it-catalog-compat')}-value`;
    await catalog.register(subject, usageEventSchema);
    const config = await fetch(`${REGISTRY_URL}/config/${subject}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'BACKWARD' }),
    });
    expect(config.status).toBe(200);
    const incompatible = { type: 'record', name: 'UsageEvent', namespace: 'dev.ordo.v1', fields: [{ name: 'id', type: 'long' }] } as avro.Schema;
    const error = await catalog.register(subject, incompatible).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(OrdoError);
    expect(error).not.toBeInstanceOf(TransientError);
    expect((error as OrdoError).retriable).toBe(false);
  });

  it('reports an unreachable registry as transient (retry the batch), never as a bad record', async () => {
    const catalog = new SchemaCatalog(`http://127.0.0.1:${await closedPort()}/apis/ccompat/v7`);
    const error = await catalog.prefetch([1]).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as TransientError).retriable).toBe(true);
    expect(catalog.writerType(1)).toBeUndefined();
  });
});
