import { randomUUID } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import type { OrdoConfig } from '../config/config.js';
import { createKafka } from '../kafka/client.js';
import type { Logger } from '../observability/logger.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { usageEventSchema } from '../schema/usage-event.js';
import { CommandError, retrying } from './command-error.js';
import { type EventToProduce, encodeEvent } from './event-input.js';

/** Events per send within the transaction (each send is one batch per partition). */
const SEND_CHUNK = 1_000;

export interface Produced {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  id: string;
}

/**
 * Writes the events to `topic` in ONE transaction, keyed by subject, each with its schema
 * registered under `<topic>-value`: all are written or none (a failed send aborts).
 * Partitions are computed with the producer's own partitioner (murmur2 of the key, like
 * Java clients), so each event's offset is its partition's base offset plus its position.
 */
export async function produceEvents(config: OrdoConfig, topic: string, events: EventToProduce[], logger: Logger): Promise<Produced[]> {
  if (events.length === 0) return [];
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const admin = kafka.admin();
  await admin.connect();
  let partitionMetadata;
  try {
    if (!(await admin.listTopics()).includes(topic)) {
      throw new CommandError(`topic ${topic} does not exist: start the pipeline (it creates its topics) or run \`ordo topics --create\``);
    }
    partitionMetadata = (await retrying(() => admin.fetchTopicMetadata({ topics: [topic] }))).topics[0]!.partitions;
  } finally {
    await admin.disconnect();
  }
  // Registered once the topic is known to exist: a mistyped --topic leaves no subject behind.
  const schemaId = await new SchemaCatalog({ url: config.registryUrl, security: config.security.registry }).register(`${topic}-value`, usageEventSchema);
  const partitioner = Partitioners.DefaultPartitioner();
  const messages = events.map(({ event, headers }) => {
    const message = { key: event.subject, value: encodeEvent(schemaId, event), headers };
    return { ...message, partition: partitioner({ topic, partitionMetadata, message }) };
  });

  const producer = kafka.producer({
    transactionalId: `${config.clientId}-events-produce-${randomUUID()}`,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const transaction = await producer.transaction();
    const out: Produced[] = [];
    try {
      // In chunks, so that no request outgrows the broker's size limits; one transaction still.
      for (let from = 0; from < messages.length; from += SEND_CHUNK) {
        const chunk = messages.slice(from, from + SEND_CHUNK);
        const results = await transaction.send({ topic, messages: chunk });
        const base = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset ?? '0')]));
        const seen = new Map<number, bigint>();
        for (const [i, m] of chunk.entries()) {
          const position = seen.get(m.partition) ?? 0n;
          seen.set(m.partition, position + 1n);
          out.push({ topic, partition: m.partition, offset: ((base.get(m.partition) ?? 0n) + position).toString(), key: m.key, id: events[from + i]!.event.id });
        }
      }
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
    return out;
  } finally {
    await producer.disconnect();
  }
}
