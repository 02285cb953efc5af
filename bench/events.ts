import type { Message, Producer } from 'kafkajs';
import { HybridClock } from '../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../src/clock/service-time.js';
import { SchemaCatalog } from '../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventSchema, usageEventType } from '../src/schema/usage-event.js';
import { frame } from '../src/schema/wire-format.js';
import { benchSecurity, withTimeout } from './kafka.js';

const TRACEPARENT = `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'00f067aa0ba902b7'}-01`;

/**
 * Makes the benchmark's input: Confluent-framed Avro UsageEvents keyed by subject. A share
 * of them (`contextRatio`, spread evenly) carry an upstream service-time context
 * (`service-time`, `service-node`, `traceparent`), as if another service had stamped them.
 */
export class EventFactory {
  private readonly upstream = new HybridClock({ node: 'bench-upstream' });

  constructor(
    private readonly schemaId: number,
    private readonly subjects: number,
    private readonly contextRatio: number,
  ) {}

  /** Registers UsageEvent under `subject` (the id is what the framing carries). */
  static async register(registryUrl: string, subject: string, subjects: number, contextRatio: number): Promise<EventFactory> {
    const id = await withTimeout(new SchemaCatalog({ url: registryUrl, security: benchSecurity().registry }).register(subject, usageEventSchema), 30_000, `registering ${subject}`);
    return new EventFactory(id, subjects, contextRatio);
  }

  /** Event number `i`, with id `${idPrefix}${i}`, timestamped `at` (ms; fractions are dropped). */
  message(idPrefix: string, i: number, at: number): Message {
    const timestamp = Math.floor(at);
    const event = benchEvent(`${idPrefix}${i}`, i, i % this.subjects, Math.floor(i / this.subjects), timestamp);
    const message: Message = { key: event.subject, value: frame(this.schemaId, usageEventType.toBuffer(event)), timestamp: String(timestamp) };
    if (Math.floor((i + 1) * this.contextRatio) > Math.floor(i * this.contextRatio)) {
      message.headers = { 'service-time': formatServiceTime(this.upstream.now()), 'service-node': this.upstream.node, traceparent: TRACEPARENT };
    }
    return message;
  }
}

const REGIONS = ['eu-west-1', 'us-east-1', 'ap-south-1'] as const;
/** Distinct users per subject: what the active-users meter (UNIQUE_COUNT) counts. */
const USERS_PER_SUBJECT = 25;

/**
 * A bench `api.request` event: everything the bench meters (bench/meters.ts) read. `i` is
 * the event number, `subject` the customer's index and `round` how many events that
 * customer sent before (so its users cycle). A customer calls from one region, so the
 * per-region COUNT has one group per customer.
 */
export function benchEvent(id: string, i: number, subject: number, round: number, time: number): UsageEvent {
  return {
    id,
    source: 'bench',
    type: 'api.request',
    subject: `cust-${subject}`,
    time,
    value: `${(i % 97) + 1}.25`,
    dimensions: {
      region: REGIONS[subject % REGIONS.length]!,
      model: `m${i % 4}`,
      user: `user-${round % USERS_PER_SUBJECT}`,
      latency_ms: String(5 + ((i * 37) % 400)),
    },
  };
}

/** The event id of a UsageEvent value (Confluent framing: 5 header bytes, then Avro). */
export function eventId(value: Buffer | null): string | undefined {
  if (!value || value.length < 6) return undefined;
  try {
    return (usageEventType.fromBuffer(value.subarray(5)) as UsageEvent).id;
  } catch {
    return undefined;
  }
}

/** Sends `messages` in chunks with a few requests in flight; returns the elapsed ms. */
export async function produceAll(producer: Producer, topic: string, messages: Message[], options: { chunk?: number; inFlight?: number } = {}): Promise<number> {
  const chunk = options.chunk ?? 1_000;
  const inFlight = options.inFlight ?? 4;
  const started = Date.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < messages.length) {
      const from = next;
      next += chunk;
      await withTimeout(producer.send({ topic, messages: messages.slice(from, from + chunk), acks: -1 }), 60_000, `producing to ${topic}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return Date.now() - started;
}

/** Best effort: soft- then hard-deletes a registry subject. Never throws. */
export async function deleteSubject(registryUrl: string, subject: string): Promise<void> {
  const url = `${registryUrl.replace(/\/$/, '')}/subjects/${encodeURIComponent(subject)}`;
  for (const suffix of ['', '?permanent=true']) {
    await fetch(url + suffix, { method: 'DELETE', signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  }
}
