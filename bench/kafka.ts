import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/config/config.js';
import type { SecurityConfig } from '../src/config/security.js';
import { kafkaSecurityOptions } from '../src/kafka/client.js';
import { waitUntilServed } from '../src/kafka/topics.js';

/** TLS / SASL / registry credentials from the same KAFKA_* / SCHEMA_REGISTRY_* variables as Ordo. */
export function benchSecurity(): SecurityConfig {
  return loadConfig(process.env).security;
}

/** A quiet kafkajs client for the bench's own producers, readers and baselines. */
export function benchKafka(brokers: string[], clientId: string): Kafka {
  return new Kafka({ brokers, clientId, logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 }, ...kafkaSecurityOptions(benchSecurity().kafka) });
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Wall-clock ms since the epoch with sub-millisecond resolution (Date.now() is whole ms). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** Rejects with a TimeoutError naming `what` if `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` every `everyMs` until it is true (-> true), `abort` returns an error, or `ms` pass (-> false). */
export async function waitUntil(done: () => boolean, ms: number, options: { everyMs?: number; abort?: () => Error | undefined } = {}): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (done()) return true;
    const error = options.abort?.();
    if (error) throw error;
    if (Date.now() >= deadline) return false;
    await sleep(options.everyMs ?? 10);
  }
}

export async function createTopics(kafka: Kafka, topics: string[], partitions: number, configEntries: { name: string; value: string }[] = []): Promise<void> {
  const admin = kafka.admin();
  await withTimeout(admin.connect(), 30_000, 'admin connect');
  try {
    await withTimeout(
      admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1, configEntries })), waitForLeaders: true }),
      30_000,
      `creating ${topics.join(', ')}`,
    );
    // A leader named in the metadata may not serve the partition yet (a loaded broker took
    // long enough for a pre-produce to fail with UNKNOWN_TOPIC_OR_PARTITION): wait until it does.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await withTimeout(waitUntilServed(admin, topics), 15_000, `offsets of ${topics.join(', ')}`);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  } finally {
    await admin.disconnect();
  }
}

/** Best effort: deletes every topic starting with `prefix` and the given consumer groups. Never throws. */
export async function cleanUp(kafka: Kafka, prefix: string, groups: string[] = []): Promise<{ topics: string[]; error?: string }> {
  const admin = kafka.admin();
  let topics: string[] = [];
  try {
    await withTimeout(admin.connect(), 15_000, 'admin connect');
    topics = (await withTimeout(admin.listTopics(), 15_000, 'list topics')).filter((t) => t.startsWith(prefix));
    if (groups.length > 0) await withTimeout(admin.deleteGroups(groups), 15_000, 'delete groups').catch(() => undefined);
    if (topics.length > 0) await withTimeout(admin.deleteTopics({ topics, timeout: 20_000 }), 25_000, `delete topics ${prefix}*`);
    return { topics };
  } catch (error) {
    return { topics, error: (error as Error).message };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
