import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { HybridClock } from '../../src/clock/hybrid-clock.js';
import { formatServiceTime } from '../../src/clock/service-time.js';
import type { OrdoConfig } from '../../src/config/config.js';
import type { Worker } from '../../src/engine/worker.js';
import type { OrdoMetrics } from '../../src/metrics/metrics.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import {
  createTopics, decodeEvent, deleteTopicsWithPrefix, header, produce, readAll, testKafka, uniqueName, usageEventEncoder,
  type ReadRecord, type TestMessage,
} from '../support/cluster.js';
import { expectExactlyOnce, expectGaplessSeq, expectStampsIncreasePerKey, orderKeyOf } from '../support/exactly-once.js';
import { sleep } from '../support/process.js';
import { startPipeline, testConfig } from '../support/worker.js';

const prefix = uniqueName('it-order');
const kafka = testKafka();
const WINDOW_MS = 3_000;
const SUBJECTS = 12;
const HOPS = 6;

/** An upstream service whose wall clock is off by `skewMs` (within Ordo's 500 ms max skew). */
function service(name: string, skewMs: number): HybridClock {
  return new HybridClock({ node: name, physical: { now: () => Date.now() + skewMs }, maxSkewMs: 60_000 });
}

interface Sent {
  message: TestMessage;
  id: string;
  subject: string;
  /** The id this event was caused by (the previous hop of its chain), if any. */
  cause: string | undefined;
}

/**
 * Causal chains per subject across four services with skewed clocks: each hop receives the
 * previous hop's service-time (A -> B -> C -> ...), as a real call chain would pass it.
 */
function chains(encode: (e: UsageEvent) => Buffer, wave: string): Sent[] {
  const services = [service('svc-a', -200), service('svc-b', 150), service('svc-c', 0), service('svc-d', 300)];
  const out: Sent[] = [];
  for (let s = 0; s < SUBJECTS; s++) {
    const subject = `cust-${s}`;
    let context: bigint | undefined;
    let cause: string | undefined;
    for (let hop = 0; hop < HOPS; hop++) {
      const svc = services[(s + hop) % services.length]!;
      const time = context === undefined ? svc.now() : svc.receive(context);
      const id = `${wave}-${subject}-${hop}`;
      const event: UsageEvent = { id, source: svc.node, type: 'api.request', subject, time: Date.now(), value: '1', dimensions: {} };
      out.push({ id, subject, cause, message: { key: subject, value: encode(event), headers: { 'service-time': formatServiceTime(time), 'service-node': svc.node } } });
      context = time;
      cause = id;
    }
  }
  return out;
}

/** Sum of a metric's samples whose labels include `labels`. */
async function sum(metrics: OrdoMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return metric.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}

function shuffle<T>(items: T[], seed: number): T[] {
  const a = [...items];
  let x = seed;
  for (let i = a.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Per subject in offset order: seq 1..n, non-late records in order-key order, every chain's cause before its effect. */
function expectOrdered(records: ReadRecord[], sent: Sent[], lateIds: Set<string>): void {
  const bySubject = new Map<string, ReadRecord[]>();
  for (const r of records) bySubject.set(r.key!.toString(), [...(bySubject.get(r.key!.toString()) ?? []), r]);
  const causeOf = new Map(sent.map((s) => [s.id, s.cause]));
  for (const [subject, list] of bySubject) {
    list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
    expect(list.map((r) => Number(header(r, 'ordo-seq'))), `ordo-seq of ${subject}`).toEqual(list.map((_, i) => i + 1));
    const inOrder = list.filter((r) => header(r, 'ordo-late') === undefined);
    for (let i = 1; i < inOrder.length; i++) {
      const [t0, n0] = orderKeyOf(inOrder[i - 1]!);
      const [t1, n1] = orderKeyOf(inOrder[i]!);
      expect(t1 > t0 || (t1 === t0 && n1 >= n0), `order keys of ${subject} at ${i}`).toBe(true);
    }
    const position = new Map(list.map((r, i) => [decodeEvent(r.value).id, i]));
    for (const r of inOrder) {
      const id = decodeEvent(r.value).id;
      const cause = causeOf.get(id);
      if (cause !== undefined && !lateIds.has(cause)) expect(position.get(cause)! < position.get(id)!, `${cause} before ${id}`).toBe(true);
    }
  }
  const flagged = records.filter((r) => header(r, 'ordo-late') === 'true').map((r) => decodeEvent(r.value).id);
  expect(new Set(flagged)).toEqual(lateIds);
}

describe('ordered output through the real broker', () => {
  let config: OrdoConfig;
  let producer: Producer;
  let encode: (e: UsageEvent) => Buffer;
  const all: Sent[] = [];
  const late = new Set<string>();
  const workers: { worker: Worker; metrics: OrdoMetrics }[] = [];
  const violations = async (reason: string): Promise<number> => {
    let n = 0;
    for (const w of workers) n += await sum(w.metrics, 'ordo_ordering_violations_total', { reason });
    return n;
  };

  beforeAll(async () => {
    config = testConfig(prefix, { ORDO_REORDER_WINDOW_MS: String(WINDOW_MS), ORDO_MAX_BATCH_RECORDS: '50' });
    await createTopics(kafka, [config.topics.input], 3);
    encode = await usageEventEncoder(config.topics.input);
    producer = kafka.producer();
    await producer.connect();
    workers.push(await startPipeline(config));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.worker.stop()));
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('emits shuffled causal chains in causal order per subject, gapless ordo-seq; late deliveries are exactly the violations', async () => {
    const wave = chains(encode, 'w1');
    // Five chains lose their first hop in transit: it arrives after its successors left the buffer.
    const heldBack = wave.filter((s) => s.id.endsWith('-0')).slice(0, 5);
    const onTime = shuffle(wave.filter((s) => !heldBack.includes(s)), 7);
    await produce(producer, config.topics.input, onTime.map((s) => s.message));
    await readAll(kafka, config.topics.ordered, onTime.length, { timeoutMs: 60_000, settleMs: 100 });
    for (const s of heldBack) late.add(s.id);
    await produce(producer, config.topics.input, heldBack.map((s) => s.message));
    all.push(...wave);

    const records = await readAll(kafka, config.topics.ordered, wave.length, { timeoutMs: 60_000 });
    expectExactlyOnce(records, wave.map((s) => s.id));
    expectOrdered(records, all, late);
    expectStampsIncreasePerKey(records);
    expectGaplessSeq(records);
    expect(await violations('late')).toBe(heldBack.length);
    expect((await violations('duplicate-key')) + (await violations('sequence-gap')) + (await violations('sequence-regression'))).toBe(0);
  });

  it('keeps buffered events across a restart and continues every sequence with no repeat and no gap; and across a rebalance', async () => {
    const wave2 = chains(encode, 'w2');
    await produce(producer, config.topics.input, shuffle(wave2.map((s) => s.message), 11));
    all.push(...wave2);
    // Stop while wave 2 sits in the reorder buffer (it is held for WINDOW_MS).
    const first = workers[0]!;
    const deadline = Date.now() + 20_000;
    while ((await sum(first.metrics, 'ordo_events_in_total')) < all.length && Date.now() < deadline) await sleep(50);
    expect(await sum(first.metrics, 'ordo_reorder_buffer_events')).toBeGreaterThan(0);
    await first.worker.stop();

    // A new owner restores the buffer; a third wave arrives while a second worker joins.
    workers.push(await startPipeline(config));
    // (Each wave's chains are made just before they are sent: an event sent seconds after
    // its origin time would rightly be late.)
    const wave3 = chains(encode, 'w3');
    all.push(...wave3);
    await produce(producer, config.topics.input, shuffle(wave3.map((s) => s.message), 13));
    const joining = startPipeline({ ...config, nodeId: 'ordo-test-2' });
    for (let i = 0; i < 4; i++) {
      const wave = chains(encode, `w4-${i}`);
      all.push(...wave);
      await produce(producer, config.topics.input, shuffle(wave.map((s) => s.message), 17 + i));
      await sleep(500);
    }
    workers.push(await joining);
    const wave5 = chains(encode, 'w5');
    all.push(...wave5);
    await produce(producer, config.topics.input, shuffle(wave5.map((s) => s.message), 23));

    const records = await readAll(kafka, config.topics.ordered, all.length, { timeoutMs: 90_000 });
    expectExactlyOnce(records, all.map((s) => s.id));
    expectOrdered(records, all, late);
    expectStampsIncreasePerKey(records);
    expectGaplessSeq(records);
  });
});
