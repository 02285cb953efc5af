import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServiceTime } from '../../src/clock/service-time.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { type Meter, parseMeters } from '../../src/usage/meters.js';
import { type ReadRecord, type TestMessage, decodeEvent, header } from './cluster.js';
import type { OracleEvent } from './usage-oracle.js';

const DAY = 86_400_000;

/** Meters over every aggregation, window size and value source the pipeline supports. */
export const TEST_METERS_YAML = `
meters:
  - slug: api-calls
    eventType: api.request
    aggregation: COUNT
    groupBy: { region: region }
  - slug: api-spend
    eventType: api.request
    aggregation: SUM
    windows: [MINUTE, HOUR, DAY, MONTH]
  - slug: llm-tokens
    eventType: llm.completion
    aggregation: SUM
    valueProperty: dimensions.tokens
    groupBy: { model: model }
  - slug: min-price
    eventType: api.request
    aggregation: MIN
    windows: [DAY]
  - slug: max-price
    eventType: api.request
    aggregation: MAX
    groupBy: { region: region }
    windows: [HOUR, DAY]
  - slug: avg-value
    eventTypes: [api.request, llm.completion]
    aggregation: AVG
    windows: [DAY, MONTH]
  - slug: last-balance
    eventType: api.request
    aggregation: LATEST
    windows: [DAY]
  - slug: active-users
    eventTypes: [api.request, llm.completion]
    aggregation: UNIQUE_COUNT
    valueProperty: dimensions.user
    windows: [DAY, MONTH]
`;

export const TEST_METERS: Meter[] = parseMeters(TEST_METERS_YAML, 'yaml', 'test-meters.yaml');

/** Writes the test meters to a temporary file and returns its path. */
export function writeTestMeters(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'ordo-meters-')), 'meters.yaml');
  writeFileSync(path, TEST_METERS_YAML);
  return path;
}

export interface UsageWorkload {
  messages: TestMessage[];
  /** `source/id` of every event that must be aggregated exactly once (and appear once on the ordered topic). */
  accepted: Set<string>;
  duplicates: number;
  /** `source/id` of events beyond the allowed lateness (late topic). */
  late: Set<string>;
  /** Record keys of events with a value a meter cannot read (DLQ, invalid-value). */
  bad: Set<string>;
}

/** A small deterministic PRNG, so a failing workload can be reproduced from its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * `count` records: metered events over `subjects` customers, 80 % from the last 90
 * minutes and the rest spread over the last `spreadDays` (all within lateness), plus about 2 % exact re-sends, 1 % events beyond
 * `latenessMs`, and 0.5 % events whose metered value is not a decimal.
 */
export function makeUsageWorkload(
  encode: (e: UsageEvent) => Buffer,
  options: { count: number; subjects: number; now: number; latenessMs: number; spreadDays: number; seed?: number; idPrefix?: string },
): UsageWorkload {
  const rnd = random(options.seed ?? 42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const messages: TestMessage[] = [];
  const acceptedMessages: TestMessage[] = [];
  const accepted = new Set<string>();
  const late = new Set<string>();
  const bad = new Set<string>();
  let duplicates = 0;
  const prefix = options.idPrefix ?? 'ev';
  for (let i = 0; messages.length < options.count; i++) {
    const roll = rnd();
    if (roll < 0.02 && acceptedMessages.length > 0) {
      messages.push(pick(acceptedMessages)); // an upstream retry: the very same record
      duplicates += 1;
      continue;
    }
    const subject = `cust-${Math.floor(rnd() * options.subjects)}`;
    const type = rnd() < 0.6 ? 'api.request' : 'llm.completion';
    const cents = Math.floor(rnd() * 2_000_000) - 100_000;
    const event: UsageEvent = {
      id: `${prefix}-${i}`,
      source: pick(['gateway', 'llm-proxy']),
      type,
      subject,
      // Most usage is recent; a fifth trickles in from the last days (still within lateness).
      time: options.now - Math.floor(rnd() < 0.8 ? rnd() * 90 * 60_000 : rnd() * options.spreadDays * DAY),
      value: (cents / 10_000).toFixed(rnd() < 0.5 ? 4 : 2),
      dimensions: {
        region: pick(['eu-west-1', 'us-east-1', 'ap-south-1']),
        model: pick(['small', 'large', 'xl']),
        user: `user-${Math.floor(rnd() * 40)}`,
        tokens: String(Math.floor(rnd() * 5000)) + (rnd() < 0.3 ? '.5' : ''),
      },
    };
    const key = `${event.source}/${event.id}`;
    if (roll < 0.03) {
      event.time = options.now - options.latenessMs - DAY - Math.floor(rnd() * 2 * DAY);
      late.add(key);
    } else if (roll < 0.035) {
      event.type = 'llm.completion';
      event.dimensions.tokens = pick(['NaN', 'Infinity', '1e5', 'lots', '']);
      bad.add(subject + '#' + event.id);
    } else {
      accepted.add(key);
    }
    const message = { key: subject, value: encode(event), headers: { 'test-id': subject + '#' + event.id } };
    messages.push(message);
    if (accepted.has(key)) acceptedMessages.push(message);
  }
  return { messages, accepted, duplicates, late, bad };
}

/** The ordered output as oracle input: each event with the order key Ordo gave it. */
export function oracleEvents(ordered: readonly ReadRecord[]): OracleEvent[] {
  return ordered.map((m) => {
    const origin = header(m, 'origin-service-time');
    return {
      event: decodeEvent(m.value),
      orderTime: parseServiceTime(origin ?? (header(m, 'service-time') as string)),
      orderNode: origin !== undefined ? (header(m, 'origin-service-node') ?? '') : (header(m, 'service-node') as string),
    };
  });
}

