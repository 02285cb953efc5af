import { afterAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { open } from 'lmdb';
import { LmdbBackend } from '../../src/engine/state-dir.js';
import { Task, changelogTopic } from '../../src/engine/task.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { deleteTopicsWithPrefix, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { CountingProcessor, inputRecords } from '../support/counting-processor.js';
import { lossyCommits } from '../support/faulty-kafka.js';
import { type RecordedLine, recordingLogger } from '../support/logs.js';
import { tempDirs } from '../support/temp-dirs.js';

/** Task with persistent state (lmdb): what a clean close and a broken transaction leave for the next start. */
const kafka = testKafka();
const prefix = uniqueName('it-task-state');
const tempDir = tempDirs('ordo-task-state-');

describe('Task with ORDO_STATE_DIR: checkpoint at a clean close only', () => {
  let n = 0;
  /** A fresh input/output/changelog set per test, so each starts from empty topics. */
  const topics = async () => {
    const base = `${prefix}-${++n}`;
    const t = { groupId: `${base}-g`, input: `${base}-in`, output: `${base}-out` };
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [
      { topic: t.input, partitions: 1 },
      { topic: t.output, partitions: 1 },
      { topic: changelogTopic(t.groupId, 'meta'), partitions: 1, compacted: true },
      { topic: changelogTopic(t.groupId, 'counts'), partitions: 1, compacted: true },
    ], { create: true, replicationFactor: 1 });
    await admin.disconnect();
    return t;
  };
  const newTask = (t: { groupId: string; input: string; output: string }, state: LmdbBackend, lines: RecordedLine[], client: Kafka = kafka) => {
    const processor = new CountingProcessor(t.output);
    const task = new Task({ kafka: client, groupId: t.groupId, topic: t.input, partition: 0, processor, transactionTimeoutMs: 30_000, logger: recordingLogger(lines), metrics: new OrdoMetrics(), state });
    return { task, processor };
  };
  const restoredLine = (lines: RecordedLine[]) => lines.find((l) => l.msg === 'task restored')?.meta;

  /** After a=2, b=1 at offset 3: the next task restores as `plan` says, then counts a third `a`, each output once. */
  const expectRestartCountsOn = async (t: { groupId: string; input: string; output: string }, state: LmdbBackend, plan: Record<string, unknown>) => {
    const lines: RecordedLine[] = [];
    const { task, processor } = newTask(t, state, lines);
    await task.start();
    expect(restoredLine(lines)).toMatchObject(plan);
    expect(Object.fromEntries(processor.restoredWith)).toEqual({ a: '2', b: '1' });
    expect(task.position).toBe('3');
    await task.process(inputRecords(t.input, 3, ['a']));
    await task.close();
    const out = await readAll(kafka, t.output, 4, { settleMs: 1_000 });
    expect(out.map((m) => m.value!.toString())).toEqual(['a:1', 'b:1', 'a:2', 'a:3']);
  };

  afterAll(async () => {
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('restarts from the checkpoint of a clean close: no records read, state and position kept, counting goes on', async () => {
    const t = await topics();
    const state = new LmdbBackend(tempDir(), noopLogger);
    const firstLines: RecordedLine[] = [];
    const first = newTask(t, state, firstLines).task;
    await first.start();
    await first.process(inputRecords(t.input, 0, ['a', 'b', 'a']));
    await first.close();
    expect(firstLines.some((l) => l.msg === 'state checkpoint written')).toBe(true);

    await expectRestartCountsOn(t, state, { restore: 'tail', records: 0 });
  });

  it('a checkpointed offset no longer in its topic (here: past its end): wipes and restores fully', async () => {
    const t = await topics();
    const state = new LmdbBackend(tempDir(), noopLogger);
    const first = newTask(t, state, []).task;
    await first.start();
    await first.process(inputRecords(t.input, 0, ['a', 'b', 'a']));
    await first.close();
    // As if the changelogs had been recreated shorter since: every offset far past the end.
    const env = open({ path: state.path({ groupId: t.groupId, topic: t.input, partition: 0 }), maxDbs: 8 });
    const db = env.openDB<string, string>('ordo:checkpoint', { encoding: 'string' });
    const checkpoint = JSON.parse(db.get('checkpoint')!) as { sources: { offset: string }[] };
    for (const source of checkpoint.sources) source.offset = String(Number(source.offset) + 1_000);
    db.putSync('checkpoint', JSON.stringify(checkpoint));
    await env.close();
    await expectRestartCountsOn(t, state, { restore: 'full', why: 'offsets out of range' });
  });

  it('a task whose commit outcome is unknown (broken) writes no checkpoint: the next start restores fully and counts nothing twice', async () => {
    const t = await topics();
    const state = new LmdbBackend(tempDir(), noopLogger);
    const faulty = lossyCommits(kafka, new Set([2])); // the second batch commits, then reports a failure
    const lines: RecordedLine[] = [];
    const first = newTask(t, state, lines, faulty.kafka).task;
    await first.start();
    await first.process(inputRecords(t.input, 0, ['a', 'b']));
    await expect(first.process(inputRecords(t.input, 2, ['a']))).rejects.toThrow(/EndTxn response lost/);
    expect(first.state).toBe('broken');
    await first.close();
    expect(lines.some((l) => l.msg === 'state checkpoint written')).toBe(false);

    // The batch did commit: its count comes back from the changelog, not from the local files.
    await expectRestartCountsOn(t, state, { restore: 'full', why: 'no checkpoint' });
  });
});
