import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { createTopics, deleteTopicsWithPrefix, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { expectExactlyOnce, expectGaplessSeq, expectStampsIncreasePerKey } from '../support/exactly-once.js';
import { WorkerProcess, sleep } from '../support/process.js';
import { childEnv } from '../support/worker.js';
import { waitForOutput, makeWorkload, producePaced } from '../support/workload.js';

const kafka = testKafka();
const EVENTS = 12_000;
const workers: WorkerProcess[] = [];
const prefixes: string[] = [];
let producer: Producer;

async function setUp(name: string) {
  const prefix = uniqueName(name);
  prefixes.push(prefix);
  await createTopics(kafka, [`${prefix}-in`], 3);
  const encode = await usageEventEncoder(`${prefix}-in`);
  const workload = makeWorkload(encode, EVENTS, 60, 500);
  const spawnWorker = (node: string) => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, node, { ORDO_MAX_BATCH_RECORDS: '200' }), node);
    workers.push(w);
    return w;
  };
  /** Worker A runs, events are produced over `durationMs`; resolves once A has written `outputs`. */
  const startStream = async (durationMs: number, outputs: number, chunk?: number) => {
    const a = spawnWorker('node-a');
    await a.waitFor((l) => l.msg === 'task restored');
    const producing = producePaced(producer, `${prefix}-in`, workload.messages, durationMs, chunk);
    await waitForOutput(kafka, `${prefix}-ordered`, outputs);
    return { a, producing };
  };
  /** Reads the whole ordered output and checks it: every valid event once, stamps rising per key. */
  const readVerified = async () => {
    const ordered = await readAll(kafka, `${prefix}-ordered`, EVENTS, { timeoutMs: 150_000, settleMs: 3_000 });
    expectExactlyOnce(ordered, workload.validIds);
    expectStampsIncreasePerKey(ordered);
    expectGaplessSeq(ordered);
    return ordered;
  };
  return { prefix, workload, spawnWorker, startStream, readVerified };
}

describe('exactly-once under process failure (real broker, real worker processes)', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('a worker SIGKILLed mid-stream and restarted: every valid event exactly once, bad ones dead-lettered once', async () => {
    const { prefix, workload, spawnWorker, startStream, readVerified } = await setUp('fault-kill');
    const { a, producing } = await startStream(10_000, 2_500);
    a.signal('SIGKILL');
    expect(await a.exited).toBe(-1);

    const b = spawnWorker('node-b');
    await producing;
    await readVerified();
    const dlq = await readAll(kafka, `${prefix}-dlq`, workload.badKeys.length, { timeoutMs: 30_000, settleMs: 2_000 });
    expect(dlq.map((m) => m.key!.toString()).sort()).toEqual([...workload.badKeys].sort());
    expect(b.has((l) => l.msg === 'task restored')).toBe(true);
    expect(await b.stop()).toBe(0);
  });

  it('a paused (SIGSTOP) worker whose partitions moved is fenced when it resumes; output still exactly once', async () => {
    const { spawnWorker, startStream, readVerified } = await setUp('fault-stop');
    const { a, producing } = await startStream(20_000, 1_500, 100);
    a.signal('SIGSTOP');

    const b = spawnWorker('node-b');
    // B gets every partition once A's session times out, and its producers fence A's.
    await b.waitFor((l) => l.msg === 'partitions assigned' && Array.isArray(l.partitions) && l.partitions.length === 3, 60_000);
    await b.waitFor((l) => l.msg === 'task restored', 30_000);
    await sleep(2_000);
    a.signal('SIGCONT');
    await a.waitFor((l) => l.msg === 'task fenced: another worker owns this partition now', 30_000);

    await producing;
    await readVerified();
    // On a failure, the worker's own last words say why.
    expect(await a.stop(), a.stderr.slice(-25).join('\n')).toBe(0);
    expect(await b.stop(), b.stderr.slice(-25).join('\n')).toBe(0);
  });

  it('a worker drained with SIGTERM mid-stream exits 0 within the grace time; its successor continues exactly once', async () => {
    const { spawnWorker, startStream, readVerified } = await setUp('fault-term');
    const { a, producing } = await startStream(10_000, 2_500);
    const signalled = Date.now();
    a.signal('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(20_000); // ORDO_SHUTDOWN_GRACE_MS in childEnv
    expect(a.lines.filter((l) => l.msg === 'lifecycle').map((l) => l.to).slice(-2)).toEqual(['draining', 'stopped']);

    const b = spawnWorker('node-b');
    await producing;
    await readVerified();
    expect(await b.stop()).toBe(0);
  });

  it('a second worker joining mid-stream (rebalance, partitions revoked and restored): exactly once', async () => {
    const { spawnWorker, startStream, readVerified } = await setUp('fault-join');
    const { a, producing } = await startStream(12_000, 2_000);
    const b = spawnWorker('node-b');
    await b.waitFor((l) => l.msg === 'task restored', 60_000);
    await producing;
    const ordered = await readVerified();
    // Both took part: each wrote some of the output.
    const nodes = new Set(ordered.map((m) => m.headers?.['service-node']?.toString()));
    expect([...nodes].sort()).toEqual(['node-a', 'node-b']);
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
  });
});
