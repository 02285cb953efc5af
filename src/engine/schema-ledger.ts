import type { Kafka, Producer } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { OrdoError, TransientError } from '../errors.js';
import { type TopicSpec, ensureTopics } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import type { SourceRecord } from '../model/records.js';
import { type SchemaIdGuard, type SchemaSighting, SchemaSightings, sightingOf } from '../schema/schema-ids.js';
import type avro from 'avsc';
import { Liveness } from './liveness.js';
import { retrying } from './retry.js';
import { TopicReader } from './topic-reader.js';

/** How long reading the ledger topic to its end may take (it holds one small record per id). */
const CATCH_UP_MS = 60_000;

export interface SchemaLedgerOptions {
  kafka: Kafka;
  /** Compacted, one partition; key = schema id (decimal), value = a SchemaSighting as JSON. */
  topic: string;
  /** The node id (written with each new sighting) and the reader's own consumer group. */
  node: string;
  groupId: string;
  createTopic: boolean;
  replicationFactor: number;
  /** Bounds the retries of the topic's creation (ORDO_STUCK_AFTER_MS). */
  stuckAfterMs: number;
  logger: Logger;
}

/** The ledger's topic: compacted, one partition (also what `ordo topics` lists). */
export function schemaLedgerTopicSpec(topic: string): TopicSpec {
  return { topic, partitions: 1, compacted: true };
}

/**
 * Remembers, in a compacted topic, which schema each registry id named when Ordo first
 * used it, and refuses a registry that later answers the same id with another schema
 * (e.g. one restarted with empty storage, handing out id 1 again). Every worker, and every
 * restart, reads the whole topic first, so what one worker saw binds all of them.
 *
 * New ids are rare (a writer schema version, Ordo's own schemas), so each one costs a
 * round trip: catch up, check, record, catch up again and check that no other worker
 * recorded a different schema for it meanwhile.
 */
export class SchemaLedger implements SchemaIdGuard {
  private readonly sightings = new SchemaSightings();
  private readonly reader: TopicReader;
  private producer: Producer | undefined;

  constructor(private readonly options: SchemaLedgerOptions) {
    this.reader = new TopicReader({
      kafka: options.kafka,
      topic: options.topic,
      groupId: options.groupId,
      apply: (records) => this.apply(records),
      logger: options.logger,
      liveness: new Liveness(options.stuckAfterMs),
    });
  }

  /** Creates the topic if needed, reads it to the end and connects the producer. */
  async start(): Promise<void> {
    const o = this.options;
    // A fresh cluster (or one just restarted) may not have a leader for it yet: the engine's
    // retry loop waits that out, like every other start-up step.
    const created = await retrying(
      async () => {
        const admin = o.kafka.admin();
        try {
          await admin.connect();
          await ensureTopics(admin, [schemaLedgerTopicSpec(o.topic)], { create: o.createTopic, replicationFactor: o.replicationFactor });
        } finally {
          await admin.disconnect().catch(() => undefined);
        }
      },
      { what: 'schema ledger topic', meta: { topic: o.topic }, log: o.logger, liveness: new Liveness(o.stuckAfterMs) },
    );
    if (!created.ok) throw created.why === 'abandoned' ? new OrdoError('schema ledger start abandoned') : created.error;
    try {
      await this.reader.start();
      await this.caughtUp();
      this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      await this.producer.connect();
    } catch (error) {
      await this.stop();
      throw error;
    }
    o.logger.info('schema ids recorded so far', { topic: o.topic, ids: this.sightings.size });
  }

  async verify(schemaId: number, type: avro.Type): Promise<void> {
    const seen = sightingOf(type, this.options.node);
    if (this.sightings.check(schemaId, seen) === 'known') return;
    try {
      await this.record(schemaId, seen);
    } catch (error) {
      if (error instanceof OrdoError) throw error;
      throw new TransientError(`recording schema id ${schemaId} in ${this.options.topic} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private async record(schemaId: number, seen: SchemaSighting): Promise<void> {
    await this.caughtUp();
    if (this.sightings.check(schemaId, seen) === 'known') return;
    if (!this.producer) throw new Error('SchemaLedger.verify before start');
    await this.producer.send({ topic: this.options.topic, acks: -1, messages: [{ key: String(schemaId), value: JSON.stringify(seen) }] });
    await this.caughtUp();
    if (this.sightings.check(schemaId, seen) !== 'known') throw new Error(`schema id ${schemaId} was recorded but not read back from ${this.options.topic}`);
    this.options.logger.info('schema id recorded', { schemaId, schema: seen.name, sha256: seen.sha256 });
  }

  /** Reads the topic to its current end; a reader that cannot (its consumer crashed) is an error, not a hang. */
  private async caughtUp(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new TransientError(`could not read ${this.options.topic} to its end within ${CATCH_UP_MS} ms`)), CATCH_UP_MS);
    });
    try {
      await Promise.race([this.reader.caughtUp(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    await this.producer?.disconnect().catch(() => undefined);
    await this.reader.stop();
  }

  private apply(records: readonly SourceRecord[]): void {
    for (const record of records) {
      const id = Number(record.key?.toString('utf8'));
      if (!Number.isSafeInteger(id) || record.value === null) continue;
      try {
        const value = JSON.parse(record.value.toString('utf8')) as Partial<SchemaSighting>;
        if (typeof value.sha256 !== 'string') continue;
        this.sightings.observe(id, { sha256: value.sha256, name: String(value.name ?? '?'), seenAt: String(value.seenAt ?? '?'), node: String(value.node ?? '?') });
      } catch {
        this.options.logger.warn('unreadable schema ledger record skipped', { topic: this.options.topic, offset: record.offset });
      }
    }
  }
}

/** The ledger reader's consumer group: one per role instance (every instance reads it all). */
export function schemaLedgerGroupId(config: Pick<OrdoConfig, 'groupId' | 'nodeId'>): string {
  return `${config.groupId}-schemas-${config.nodeId}`.slice(0, 249);
}

/** The record of which schema each registry id names, read to its end before anything is decoded. */
export async function startSchemaLedger(
  config: Pick<OrdoConfig, 'topics' | 'nodeId' | 'groupId' | 'createTopics' | 'replicationFactor' | 'stuckAfterMs'>,
  kafka: Kafka,
  logger: Logger,
): Promise<SchemaLedger> {
  const ledger = new SchemaLedger({
    kafka,
    topic: config.topics.schemas,
    node: config.nodeId,
    groupId: schemaLedgerGroupId(config),
    createTopic: config.createTopics,
    replicationFactor: config.replicationFactor,
    stuckAfterMs: config.stuckAfterMs,
    logger: logger.child({ topic: config.topics.schemas }),
  });
  await ledger.start();
  return ledger;
}
