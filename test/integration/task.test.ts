import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FencedError } from '../../src/errors.js';
import { Task, changelogTopic } from '../../src/engine/task.js';
import type { TaskProcessor } from '../../src/engine/task-processor.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import type { SourceRecord } from '../../src/model/records.js';
import { deleteTopicsWithPrefix, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { CountingProcessor, inputRecords } from '../support/counting-processor.js';

const kafka = testKafka();
const prefix = uniqueName('it-task');
const groupId = `${prefix}-g`;
const input = `${prefix}-in`;
const output = `${prefix}-out`;

const records = (from: number, keys: string[]): SourceRecord[] => inputRecords(input, from, keys);

function newTask(processor: TaskProcessor): Task {
  return new Task({ kafka, groupId, topic: input, partition: 0, processor, transactionTimeoutMs: 30_000, logger: noopLogger, metrics: new OrdoMetrics() });
}

describe('Task: transactions, changelog restore, fencing', () => {
  beforeAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(
      admin,
      [
        { topic: input, partitions: 1 },
        { topic: output, partitions: 1 },
        { topic: changelogTopic(groupId, 'meta'), partitions: 1, compacted: true },
        { topic: changelogTopic(groupId, 'counts'), partitions: 1, compacted: true },
      ],
      { create: true, replicationFactor: 1 },
    );
    await admin.disconnect();
  });

  afterAll(async () => {
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('restores its stores and position from the changelog after a restart', async () => {
    const first = newTask(new CountingProcessor(output));
    await first.start();
    expect(first.position).toBeUndefined();
    await first.process(records(0, ['a', 'b', 'a']));
    await first.process(records(3, ['a', 'c']));
    await first.close();

    const processor = new CountingProcessor(output);
    const second = newTask(processor);
    await second.start();
    expect(Object.fromEntries(processor.restoredWith)).toEqual({ a: '3', b: '1', c: '1' });
    expect(second.position).toBe('5');
    await second.process(records(5, ['b']));
    await second.close();

    const out = await readAll(kafka, output, 6, { settleMs: 1_000 });
    expect(out.map((m) => m.value!.toString())).toEqual(['a:1', 'b:1', 'a:2', 'a:3', 'c:1', 'b:2']);
  });

  it('fences the older task: a zombie cannot commit once a new owner started, and its writes stay invisible', async () => {
    const zombie = newTask(new CountingProcessor(output));
    await zombie.start();
    const owner = newTask(new CountingProcessor(output));
    await owner.start(); // InitProducerId with the same transactional id bumps the epoch

    await expect(zombie.process(records(6, ['z', 'z']))).rejects.toBeInstanceOf(FencedError);
    expect(zombie.state).toBe('fenced');
    await owner.process(records(6, ['c']));
    await zombie.close();
    await owner.close();

    const out = await readAll(kafka, output, 7, { settleMs: 1_000 });
    expect(out.map((m) => m.value!.toString())).toEqual(['a:1', 'b:1', 'a:2', 'a:3', 'c:1', 'b:2', 'c:2']);
  });
});
