import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { createTopics, deleteTopicsWithPrefix, produce, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { type LogLine, WorkerProcess } from '../support/process.js';
import { expectUsageOutputsExact } from '../support/usage-checks.js';
import { makeUsageWorkload, writeTestMeters } from '../support/usage-workload.js';
import { childEnv } from '../support/worker.js';
import { producePaced } from '../support/workload.js';

/**
 * Persistent task state (ORDO_STATE_DIR): a clean restart restores only the changelog
 * tail from the checkpoint; a crash (also one during the close that writes checkpoints)
 * leaves none that can be trusted, and the next start restores fully. Either way every
 * event is counted once.
 */
const kafka = testKafka();
const DAY = 86_400_000;
const LATENESS = 7 * DAY;
const PARTITIONS = 3;
const workers: WorkerProcess[] = [];
const prefixes: string[] = [];
const dirs: string[] = [];
const metersFile = writeTestMeters();
let producer: Producer;

const restoredLines = (w: WorkerProcess): LogLine[] => w.lines.filter((l) => l.msg === 'task restored');
const restoredRecords = (w: WorkerProcess): number => restoredLines(w).reduce((sum, l) => sum + Number(l.records), 0);

async function setUp(name: string) {
  const prefix = uniqueName(name);
  prefixes.push(prefix);
  const stateDir = mkdtempSync(join(tmpdir(), 'ordo-state-'));
  dirs.push(stateDir);
  await createTopics(kafka, [`${prefix}-in`], PARTITIONS);
  const encode = await usageEventEncoder(`${prefix}-in`);
  const env = { ORDO_MAX_BATCH_RECORDS: '300', ORDO_METERS_FILE: metersFile, ORDO_ALLOWED_LATENESS_MS: String(LATENESS), ORDO_STATE_DIR: stateDir };
  /** Starts a pipeline worker on the shared state directory; resolves once all its tasks are restored. */
  const start = async (node: string) => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, node, env), node);
    workers.push(w);
    await w.waitFor(() => restoredLines(w).length === PARTITIONS, 90_000);
    return w;
  };
  const verify = (accepted: Set<string>) => expectUsageOutputsExact(kafka, prefix, accepted, 120_000);
  const wave = (seed: number, count: number, idPrefix: string, now: number) =>
    makeUsageWorkload(encode, { count, subjects: 60, now, latenessMs: LATENESS, spreadDays: 5, seed, idPrefix });
  return { prefix, start, verify, wave };
}

describe('persistent task state: restart from a checkpoint, crash around it (real broker, real worker processes)', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await producer?.disconnect();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('a clean stop checkpoints; the restart restores only the tail and continues exactly once with exact aggregates', async () => {
    const { prefix, start, verify, wave } = await setUp('state-clean');
    const now = Date.now();
    const first = wave(11, 5_000, 'w1', now);
    const a = await start('node-a');
    expect(restoredLines(a).map((l) => l.why)).toEqual(['no checkpoint', 'no checkpoint', 'no checkpoint']);
    await produce(producer, `${prefix}-in`, first.messages);
    await verify(first.accepted);
    expect(await a.stop()).toBe(0);
    expect(a.lines.filter((l) => l.msg === 'state checkpoint written')).toHaveLength(PARTITIONS);

    // Written while no worker runs: the restart must pick it up, and catch the re-sends of wave one.
    const second = wave(12, 2_000, 'w2', now);
    await produce(producer, `${prefix}-in`, [...second.messages, ...first.messages.slice(0, 300)]);
    const b = await start('node-b');
    expect(restoredLines(b).map((l) => l.restore)).toEqual(['tail', 'tail', 'tail']);
    // Nothing was written to the changelogs since the checkpoint: the tail is empty.
    expect(restoredRecords(b)).toBe(0);
    await verify(new Set([...first.accepted, ...second.accepted]));
    expect(await b.stop()).toBe(0);
  });

  it('a crash after a tail restore, and a SIGKILL during the closing checkpoint: no checkpoint is trusted that should not be; every event once', async () => {
    const { prefix, start, verify, wave } = await setUp('state-crash');
    const now = Date.now();
    const first = wave(21, 4_000, 'w1', now);
    const a = await start('node-a');
    await produce(producer, `${prefix}-in`, first.messages);
    await verify(first.accepted);
    expect(await a.stop()).toBe(0);

    // B restores the tail (its checkpoints are deleted at start), then dies mid-stream.
    const second = wave(22, 6_000, 'w2', now);
    const b = await start('node-b');
    expect(restoredLines(b).map((l) => l.restore)).toEqual(['tail', 'tail', 'tail']);
    const producing = producePaced(producer, `${prefix}-in`, second.messages, 6_000);
    await b.waitFor(() => b.lines.some((l) => l.msg === 'lifecycle' && l.to === 'running'));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    b.signal('SIGKILL');
    expect(await b.exited).toBe(-1);
    await producing;

    // The old checkpoints must not be trusted: C wipes and restores everything.
    const c = await start('node-c');
    expect(restoredLines(c).map((l) => l.why)).toEqual(['no checkpoint', 'no checkpoint', 'no checkpoint']);
    expect(restoredRecords(c)).toBeGreaterThan(first.accepted.size);
    await verify(new Set([...first.accepted, ...second.accepted]));

    // SIGKILL while C closes (its checkpoints half written, or not at all), with more input waiting.
    const third = wave(23, 2_000, 'w3', now);
    await produce(producer, `${prefix}-in`, third.messages);
    // Killed the moment the first task starts closing (as its line arrives, not at the next poll).
    c.child.stderr!.on('data', (chunk: string) => {
      if (chunk.includes('"closing task"')) c.signal('SIGKILL');
    });
    c.signal('SIGTERM');
    await c.exited;
    const written = c.lines.filter((l) => l.msg === 'state checkpoint written').length;

    const d = await start('node-d');
    const plans = restoredLines(d).map((l) => l.restore);
    // A partition restores its tail only if its checkpoint was written whole before the kill.
    expect(plans.filter((p) => p === 'tail').length).toBeLessThanOrEqual(written);
    await verify(new Set([...first.accepted, ...second.accepted, ...third.accepted]));
    expect(await d.stop()).toBe(0);
  });
});
