// The schema registry restarts mid-stream (stopped and started through scripts/kafka, as an
// operator would) while a pipeline worker process runs: nothing is lost, nothing misread,
// nothing dead-lettered. After the restart a producer registers a new schema version (it
// must get a new id, not a reused one), and a restarted worker fetches the old ids again
// from the restarted registry (its schema id ledger must find them unchanged).
import avro from 'avsc';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { type UsageEvent, usageEventSchema, usageEventType } from '../../src/schema/usage-event.js';
import { frame } from '../../src/schema/wire-format.js';
import { REGISTRY_URL, type TestMessage, createTopics, decodeEvent, deleteTopicsWithPrefix, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { expectGaplessSeq } from '../support/exactly-once.js';
import { WorkerProcess } from '../support/process.js';
import { assertOwnRegistry, startRegistry, stopRegistry } from '../support/stack.js';
import { childEnv } from '../support/worker.js';
import { highWatermark, producePaced } from '../support/workload.js';

const kafka = testKafka();
const workers: WorkerProcess[] = [];
const prefixes: string[] = [];
let producer: Producer;

/** The producers' next schema version: one more optional field, which Ordo's reader skips. */
const v2Schema = {
  ...(usageEventSchema as object),
  fields: [...(usageEventSchema as { fields: object[] }).fields, { name: 'channel', type: ['null', 'string'], default: null }],
} as avro.Schema;
const v2Type = avro.Type.forSchema(v2Schema);

describe('schema registry restart mid-stream (real broker, registry and worker processes)', () => {
  beforeAll(async () => {
    assertOwnRegistry();
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('loses, misreads and dead-letters nothing; new schemas get new ids; a restarted worker reads the old ids as before', async () => {
    const prefix = uniqueName('registry-restart');
    prefixes.push(prefix);
    const input = `${prefix}-in`;
    await createTopics(kafka, [input], 3);
    const catalog = new SchemaCatalog(REGISTRY_URL);
    const v1Id = await catalog.register(`${input}-value`, usageEventSchema);

    const sent = new Map<string, UsageEvent>();
    let n = 0;
    /** `count` events, each framed with v1 or (when `v2Id` is given) every other one with v2. */
    const wave = (count: number, v2Id?: number): TestMessage[] =>
      Array.from({ length: count }, () => {
        const i = n++;
        const event: UsageEvent = { id: `e-${i}`, source: 'svc', type: 'api.request', subject: `s-${i % 40}`, time: Date.now(), value: `${i % 97}.${i % 10}5`, dimensions: { n: String(i) } };
        sent.set(event.id, event);
        const value = v2Id !== undefined && i % 2 === 1 ? frame(v2Id, v2Type.toBuffer({ ...event, channel: `c-${i}` })) : frame(v1Id, usageEventType.toBuffer(event));
        return { key: event.subject, value };
      });
    const spawn = (node: string): WorkerProcess => {
      const w = new WorkerProcess('pipeline', childEnv(prefix, node, { ORDO_MAX_BATCH_RECORDS: '200' }), node);
      workers.push(w);
      return w;
    };

    const a = spawn('node-a');
    await a.waitFor((l) => l.msg === 'task restored');
    const before = producePaced(producer, input, wave(1_200), 4_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await stopRegistry(); // mid-stream: the worker keeps decoding with the schemas it has
    await before;
    await producePaced(producer, input, wave(600), 2_000); // produced and consumed while the registry is down
    await startRegistry();

    // A new writer version after the restart: a new id, never one that named something else.
    const v2Id = await catalog.register(`${input}-value`, v2Schema);
    expect(v2Id).not.toBe(v1Id);
    const orderedId = await new SchemaCatalog(REGISTRY_URL).register(`${prefix}-ordered-value`, usageEventSchema);
    expect(v2Id).not.toBe(orderedId);
    await producePaced(producer, input, wave(1_000, v2Id), 3_000); // the running worker fetches v2 from the restarted registry

    // A restarted worker registers its schemas and fetches v1 and v2 again: same ids, same schemas.
    expect(await a.stop()).toBe(0);
    const b = spawn('node-b');
    await producePaced(producer, input, wave(600, v2Id), 2_000);
    await b.waitFor((l) => l.msg === 'task restored');

    const ordered = await readAll(kafka, `${prefix}-ordered`, sent.size, { timeoutMs: 180_000, settleMs: 3_000 });
    const received = ordered.map((r) => decodeEvent(r.value));
    expect(received.length).toBe(sent.size); // nothing twice
    expect(new Set(received.map((e) => e.id))).toEqual(new Set(sent.keys())); // nothing lost
    for (const e of received) expect({ ...e, dimensions: { ...e.dimensions } }).toEqual(sent.get(e.id)); // nothing misread
    expectGaplessSeq(ordered);
    expect(await highWatermark(kafka, `${prefix}-dlq`)).toBe(0); // nothing dead-lettered
    for (const w of [a, b]) expect(w.has((l) => l.level === 'error'), w.stderr.filter((s) => s.includes('"error"')).join('\n')).toBe(false);
    expect(await b.stop()).toBe(0);
  });
});
