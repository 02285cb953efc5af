import { afterAll, describe, expect, it } from 'vitest';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { createMergeWorker } from '../../src/roles/merge.js';
import type { MergeWorker } from '../../src/engine/merge-worker.js';
import type { Worker } from '../../src/engine/worker.js';
import { deleteTopicsWithPrefix, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { expectExactlyOnce, expectGlobalOrder } from '../support/exactly-once.js';
import { faultyCommits } from '../support/faulty-kafka.js';
import { type RecordedLine, recordingLogger } from '../support/logs.js';
import { startPipeline, testConfig } from '../support/worker.js';
import { seedInput } from '../support/workload.js';

const kafka = testKafka();
const prefix = uniqueName('it-merge-recovery');

describe('merge: a failed transaction is retried in place (real broker)', () => {
  let pipeline: Worker | undefined;
  let merge: MergeWorker | undefined;

  afterAll(async () => {
    await merge?.stop();
    await pipeline?.stop();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('commits whose coordinator is gone or whose outcome is unknown: the merge rebuilds its task and goes on, every event once, in order', async () => {
    const config = testConfig(prefix, { ORDO_REORDER_WINDOW_MS: '200', ORDO_WATERMARK_INTERVAL_MS: '200', ORDO_MAX_BATCH_RECORDS: '100' });
    const workload = await seedInput(kafka, config.topics.input, 3, 900, 30);
    pipeline = (await startPipeline(config)).worker;

    // What the acceptance run's broker restart did to the merge ("transaction failed: Failed
    // to find group coordinator"), and an EndTxn response lost after a real commit.
    const faulty = faultyCommits(kafka, new Map([[2, 'coordinator-gone'], [4, 'lost-response'], [5, 'coordinator-gone']]));
    const lines: RecordedLine[] = [];
    merge = createMergeWorker(config, { logger: recordingLogger(lines), metrics: new OrdoMetrics(), kafka: faulty.kafka });
    await merge.start();

    const global = await readAll(kafka, config.topics.global, workload.validIds.length, { timeoutMs: 90_000, settleMs: 2_000 });
    expect(faulty.injected()).toBe(3);
    expectExactlyOnce(global, workload.validIds);
    expectGlobalOrder(global);
    expect(merge.state).toBe('running');
    expect(merge.live).toBe(true);
    expect(merge.lifecycle.history).not.toContain('draining');
    expect(lines.filter((l) => l.msg === 'rebuilding the merge task after a failed transaction')).toHaveLength(3);
  });
});
