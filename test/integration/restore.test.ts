import { afterAll, describe, expect, it } from 'vitest';
import { RestoreOutOfRangeError, endOffsets, restorePartitions } from '../../src/engine/restore.js';
import { noopLogger } from '../../src/observability/logger.js';
import { createTopics, deleteTopicsWithPrefix, produce, testKafka, uniqueName } from '../support/cluster.js';

/** restorePartitions from a start offset (a checkpoint), several targets on one partition. */
const kafka = testKafka();
const prefix = uniqueName('it-restore');
const topic = `${prefix}-changelog`;

describe('restorePartitions from checkpointed offsets', () => {
  afterAll(async () => {
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('reads [from, end) per target, one read serving targets of the same partition, and returns the end offsets it read to', async () => {
    await createTopics(kafka, [topic], 2);
    const producer = kafka.producer();
    await producer.connect();
    await produce(producer, topic, Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(String(i)), partition: 1 })));
    await producer.disconnect();

    const seen: Record<string, string[]> = { all: [], tail: [], none: [] };
    const target = (name: string, from?: bigint) => ({ topic, partition: 1, from, onRecord: (key: string) => void seen[name]!.push(key) });
    const { records, ends } = await restorePartitions(kafka, [target('all'), target('tail', 7n), target('none', 10n)], { groupPrefix: prefix, logger: noopLogger });
    expect(seen).toEqual({ all: Array.from({ length: 10 }, (_, i) => `k${i}`), tail: ['k7', 'k8', 'k9'], none: [] });
    expect(records).toBe(13);
    expect(ends).toEqual(['10', '10', '10']);
    expect(await endOffsets(kafka, [{ topic, partition: 1 }, { topic, partition: 0 }])).toEqual(['10', '0']);
  });

  it('refuses an offset outside the partition (records would be missed): RestoreOutOfRangeError', async () => {
    const onRecord = (): void => undefined;
    await expect(restorePartitions(kafka, [{ topic, partition: 1, from: 11n, onRecord }], { groupPrefix: prefix, logger: noopLogger })).rejects.toBeInstanceOf(RestoreOutOfRangeError);
  });
});
