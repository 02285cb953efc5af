import { randomUUID } from 'node:crypto';
import type { OrdoConfig } from '../config/config.js';
import { createKafka } from '../kafka/client.js';
import type { Logger } from '../observability/logger.js';
import { schemaIdsOf } from '../processors/decode.js';
import type { SourceRecord } from '../model/records.js';
import { SchemaCatalog } from '../schema/schema-catalog.js';
import { CommandError, retrying } from './command-error.js';
import { RecordDecoder, type RecordView } from './record-view.js';

export interface TailOptions {
  topic: string;
  /** Where each partition starts: its first offset, its end, or this offset (clamped to the partition). */
  from: 'earliest' | 'latest' | bigint;
  /** Keep waiting for new records; otherwise stop at the end offsets seen at start. */
  follow: boolean;
  /** Stop after this many records. */
  max: number | undefined;
  /** Only this partition. */
  partition: number | undefined;
  /** Ends a follow (SIGINT/SIGTERM). */
  signal: AbortSignal;
  write(view: RecordView): void;
  /** Called once the start offsets are fixed: later records will be seen. */
  onStart?: () => void;
}

/**
 * Reads a topic read_committed (what downstream consumers see) with a throwaway consumer
 * group that commits nothing and is deleted afterwards. Returns the number of records written.
 */
export async function tailTopic(config: OrdoConfig, options: TailOptions, logger: Logger): Promise<number> {
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const catalog = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry });
  const decoder = new RecordDecoder(catalog);
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `${config.clientId}-events-tail-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, readUncommitted: false, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 });
  try {
    if (!(await admin.listTopics()).includes(options.topic)) throw new CommandError(`topic ${options.topic} does not exist`);
    const offsets = (await retrying(() => admin.fetchTopicOffsets(options.topic))).filter((o) => options.partition === undefined || o.partition === options.partition);
    if (offsets.length === 0) throw new CommandError(`topic ${options.topic} has no partition ${options.partition}`);
    const start = new Map<number, bigint>();
    const end = new Map<number, bigint>();
    for (const o of offsets) {
      const low = BigInt(o.low);
      const high = BigInt(o.high);
      const from = options.from === 'earliest' ? low : options.from === 'latest' ? high : options.from;
      start.set(o.partition, from < low ? low : from > high ? high : from);
      end.set(o.partition, high);
    }
    const applied = new Map(start);
    let written = 0;
    const finished = (): boolean =>
      options.signal.aborted ||
      (options.max !== undefined && written >= options.max) ||
      (!options.follow && [...end].every(([p, high]) => (applied.get(p) ?? 0n) >= high));
    if (finished()) return 0;

    let wake: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (wake = resolve));
    const check = (): void => {
      if (finished()) wake();
    };
    options.signal.addEventListener('abort', wake, { once: true });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (!start.has(payload.partition)) return;
      const next = BigInt(payload.lastOffset) + 1n;
      if (next > (applied.get(payload.partition) ?? 0n)) applied.set(payload.partition, next);
      check();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) {
        logger.error('tail consumer crashed', { error: payload.error });
        wake();
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [options.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const from = start.get(batch.partition);
        if (from === undefined) return;
        const records: SourceRecord[] = batch.messages
          .filter((m) => BigInt(m.offset) >= from)
          .map((m) => ({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers ?? {}, timestamp: Number(m.timestamp) }));
        await catalog.prefetch(schemaIdsOf(records));
        for (const record of records) {
          if (finished()) break;
          options.write(decoder.view(record));
          written += 1;
        }
        check();
      },
    });
    for (const [partition, offset] of start) consumer.seek({ topic: options.topic, partition, offset: offset.toString() });
    options.onStart?.();
    await done;
    return written;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
