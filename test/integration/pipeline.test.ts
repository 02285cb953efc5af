import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime, makeServiceTime, parseServiceTime } from '../../src/clock/service-time.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { usageEventType } from '../../src/schema/usage-event.js';
import type { Worker } from '../../src/engine/worker.js';
import type { OrdoMetrics } from '../../src/metrics/metrics.js';
import {
  createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder,
  type ReadRecord, type TestMessage,
} from '../support/cluster.js';
import { startPipeline, testConfig } from '../support/worker.js';

const prefix = uniqueName('it-pipeline');
const kafka = testKafka();
let producer: Producer;
let worker: Worker;
let metrics: OrdoMetrics;
let ordered: ReadRecord[];
let dlq: ReadRecord[];

function event(id: string, subject: string, extra: Partial<UsageEvent> = {}): UsageEvent {
  return { id, source: 'svc', type: 'api.request', subject, time: Date.now(), value: '1', dimensions: {}, ...extra };
}

describe('pipeline against the real broker and registry', () => {
  const sent: { valid: TestMessage[]; chainA: string[]; chainB: string[] } = { valid: [], chainA: [], chainB: [] };
  const invalid = new Map<string, string>(); // key -> expected reason

  beforeAll(async () => {
    const config = testConfig(prefix);
    await createTopics(kafka, [config.topics.input], 3);
    const encode = await usageEventEncoder(config.topics.input);
    producer = kafka.producer();
    await producer.connect();

    // Two upstream services passing service time to each other: A -> B -> A -> B ...
    const a = new HybridClock({ node: 'svc-a' });
    const b = new HybridClock({ node: 'svc-b' });
    let context = a.now();
    for (let i = 0; i < 20; i++) {
      const fromA = i % 2 === 0;
      const clock = fromA ? a : b;
      const time = i === 0 ? context : clock.receive(context);
      context = time;
      const id = `chain-${i}`;
      (fromA ? sent.chainA : sent.chainB).push(id);
      sent.valid.push({
        key: 'cust-chain',
        value: encode(event(id, 'cust-chain', { source: fromA ? 'svc-a' : 'svc-b' })),
        headers: { 'service-time': formatServiceTime(time), 'service-node': clock.node, traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` },
      });
    }
    // Events without any time context.
    for (let i = 0; i < 30; i++) sent.valid.push({ key: `cust-${i % 5}`, value: encode(event(`plain-${i}`, `cust-${i % 5}`, { value: `${i}.25` })) });

    const bad: [string, TestMessage][] = [
      ['undecodable', { key: 'bad-1', value: Buffer.from('{"json":"not avro"}') }],
      ['unknown-schema', { key: 'bad-2', value: frame(2_000_000_000, usageEventType.toBuffer(event('x', 'bad-2'))) }],
      ['invalid-value', { key: 'bad-3', value: encode(event('nan', 'bad-3', { value: 'NaN' })) }],
      ['invalid-event', { key: 'bad-4', value: encode(event('', 'bad-4')) }],
      ['bad-service-time', { key: 'bad-5', value: encode(event('bst', 'bad-5')), headers: { 'service-time': 'not-a-time' } }],
      ['bad-service-time', { key: 'bad-6', value: encode(event('node-only', 'bad-6')), headers: { 'service-node': 'svc-x' } }],
      ['clock-skew', { key: 'bad-7', value: encode(event('skew', 'bad-7')), headers: { 'service-time': formatServiceTime(makeServiceTime(Date.now() + 3_600_000, 0)) } }],
      ['undecodable', { key: 'bad-8', value: null }],
    ];
    for (const [reason, message] of bad) invalid.set(message.key!, reason);

    await produce(producer, config.topics.input, [...sent.valid, ...bad.map(([, m]) => m)]);
    ({ worker, metrics } = await startPipeline(config));
    ordered = await readAll(kafka, config.topics.ordered, sent.valid.length);
    dlq = await readAll(kafka, config.topics.dlq, bad.length);
  });

  afterAll(async () => {
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('writes every valid event exactly once, keyed by subject, as Avro', () => {
    const ids = ordered.map((m) => decodeEvent(m.value).id).sort();
    expect(ids).toEqual(sent.valid.map((m) => decodeEvent(m.value as Buffer).id).sort());
    for (const m of ordered) expect(m.key?.toString()).toBe(decodeEvent(m.value).subject);
  });

  it('stamps with Ordo service time strictly above the origin context, and carries the order key as origin-service-*', () => {
    for (const m of ordered) {
      const stamp = parseServiceTime(header(m, 'service-time')!);
      expect(header(m, 'service-node')).toBe(testConfig(prefix).nodeId);
      const id = decodeEvent(m.value).id;
      if (id.startsWith('chain-')) {
        const origin = parseServiceTime(header(m, 'origin-service-time')!);
        expect(stamp > origin).toBe(true);
        expect(header(m, 'origin-service-node')).toBe(id === 'chain-0' || Number(id.slice(6)) % 2 === 0 ? 'svc-a' : 'svc-b');
        expect(header(m, 'traceparent')).toBe(`00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
      } else {
        // No context: the order key is Ordo's arrival stamp, taken before the one on output.
        expect(parseServiceTime(header(m, 'origin-service-time')!) < stamp).toBe(true);
        expect(header(m, 'origin-service-node')).toBe(testConfig(prefix).nodeId);
      }
    }
  });

  it('keeps the causal order of a chain of upstream services in origin time and in partition order', () => {
    const chain = ordered.filter((m) => decodeEvent(m.value).id.startsWith('chain-'));
    expect(chain.map((m) => decodeEvent(m.value).id)).toEqual(Array.from({ length: 20 }, (_, i) => `chain-${i}`));
    const origins = chain.map((m) => parseServiceTime(header(m, 'origin-service-time')!));
    const stamps = chain.map((m) => parseServiceTime(header(m, 'service-time')!));
    for (let i = 1; i < chain.length; i++) {
      expect(origins[i]! > origins[i - 1]!).toBe(true);
      expect(stamps[i]! > stamps[i - 1]!).toBe(true);
    }
  });

  it('dead-letters every bad record with its reason, source coordinates and original bytes', () => {
    expect(dlq).toHaveLength(invalid.size);
    for (const m of dlq) {
      const key = m.key!.toString();
      expect(header(m, 'ordo-dlq-reason'), key).toBe(invalid.get(key));
      expect(header(m, 'ordo-dlq-error')?.length).toBeGreaterThan(5);
      expect(header(m, 'ordo-source-topic')).toBe(`${prefix}-in`);
      expect(Number(header(m, 'ordo-source-partition'))).toBeGreaterThanOrEqual(0);
      expect(header(m, 'ordo-source-offset')).toMatch(/^\d+$/);
    }
    const undecodable = dlq.find((m) => m.key!.toString() === 'bad-1')!;
    expect(undecodable.value?.toString()).toBe('{"json":"not avro"}');
  });

  it('counts what it did in metrics', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/ordo_events_dead_lettered_total\{reason="clock-skew"\} 1/);
    expect(text).toMatch(/ordo_clock_skew_rejected_total 1/);
    expect(text).toMatch(new RegExp(`ordo_events_out_total\\{topic="${prefix}-ordered"\\} ${sent.valid.length}`));
  });
});
