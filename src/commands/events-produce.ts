import { randomUUID } from 'node:crypto';
import type { OrdoConfig } from '../config/config.js';
import { createKafka } from '../kafka/client.js';
import { assignPartitions, sendInOneTransaction } from '../kafka/transactional-send.js';
import type { Logger } from '../observability/logger.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { usageEventSchema } from '../schema/usage-event.js';
import { CommandError, retrying } from './command-error.js';
import type { EventToProduce } from './event-input.js';
import { encodeUsageEvent } from '../schema/usage-event.js';

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
  const messages = assignPartitions(
    topic,
    partitionMetadata,
    events.map(({ event, headers }) => ({ key: event.subject, value: encodeUsageEvent(schemaId, event), headers })),
  );
  const producer = kafka.producer({
    transactionalId: `${config.clientId}-events-produce-${randomUUID()}`,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const written = await sendInOneTransaction(producer, topic, messages);
    const out: Produced[] = written.map((w, i) => ({ ...w, key: messages[i]!.key, id: events[i]!.event.id }));
    return out;
  } finally {
    await producer.disconnect();
  }
}
