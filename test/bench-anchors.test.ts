import { describe, expect, it } from 'vitest';
import { parsePerfSummary } from '../bench/anchors.js';
import { meanRecordBytes } from '../bench/phases.js';
import { type SystemSummary, formatReport, withAnchorRatios } from '../bench/report.js';
import { loadParams } from '../bench/params.js';
import { classify } from '../bench/writes.js';

function summary(system: SystemSummary['system'], eventsPerSecond: number | null): SystemSummary {
  return {
    system, complete: true, eventsPerSecond, eventsPerSecondInclStartup: null, startupMs: null, latencyP50Ms: null, latencyP99Ms: null, latencyMaxMs: null,
    latencyReceived: '-', measuredEventsPerSecond: null, throughputVsLimit: null, throughputVsBaselineTx: null, outputsPerEvent: null, statePerEvent: null, writesByTopic: [],
  };
}

describe('bench anchors and writes (pure parts)', () => {
  it("reads ProducerPerformance's summary line, and nothing else", () => {
    const line = '100000 records sent, 43840.420868 records/sec (6.27 MB/sec), 106.45 ms avg latency, 360.00 ms max latency, 71 ms 50th, 331 ms 95th, 351 ms 99th, 360 ms 99.9th.';
    expect(parsePerfSummary(line)).toMatchObject({ records: 100000, recordsPerSecond: 43840, mbPerSecond: 6.27, avgLatencyMs: 106.45, maxLatencyMs: 360 });
    expect(parsePerfSummary('5001 records sent, 1000.2 records/sec (0.14 MB/sec), 3.1 ms avg latency, 20.0 ms max latency.')).toMatchObject({ records: 5001 });
    expect(parsePerfSummary('ready')).toBeUndefined();
  });

  it('puts every throughput over the broker limit and baseline-tx, and leaves them out when an anchor is missing', () => {
    const [perf, java, tx, w0] = withAnchorRatios([summary('kafka-producer-perf', 100_000), summary('java-eos-passthrough', 40_000), summary('baseline-tx', 50_000), summary('ordo-window-0', null)]);
    expect([perf!.throughputVsLimit, java!.throughputVsLimit, tx!.throughputVsLimit]).toEqual([1, 0.4, 0.5]);
    expect([perf!.throughputVsBaselineTx, java!.throughputVsBaselineTx, tx!.throughputVsBaselineTx]).toEqual([2, 0.8, 1]);
    expect([w0!.throughputVsLimit, w0!.throughputVsBaselineTx]).toEqual([null, null]);
    const [alone] = withAnchorRatios([summary('ordo-aggregate', 5_000)]);
    expect([alone!.throughputVsLimit, alone!.throughputVsBaselineTx]).toEqual([null, null]);
  });

  it('classifies changelogs as state and everything else as outputs, and prints the split', () => {
    expect(['g-dedupe-changelog', 'g-sequences-changelog', 'ordered', 'aggregates', 'dlq', 'late', 'out'].map(classify)).toEqual(['state', 'state', 'outputs', 'outputs', 'outputs', 'outputs', 'outputs']);
    const agg: SystemSummary = {
      ...summary('ordo-aggregate', 5_000),
      outputsPerEvent: 2.12,
      statePerEvent: 1.19,
      writesByTopic: [
        { name: 'ordered', class: 'outputs', records: 100, perEvent: 1 },
        { name: 'aggregates', class: 'outputs', records: 112, perEvent: 1.12 },
        { name: 'g-dedupe-changelog', class: 'state', records: 100, perEvent: 1 },
        { name: 'g-sequences-changelog', class: 'state', records: 19, perEvent: 0.19 },
      ],
    };
    const text = formatReport(loadParams({}), { cpus: 2 }, [agg], []);
    expect(text).toContain('ordered 1.00, aggregates 1.12');
    expect(text).toContain('g-dedupe-changelog 1.00, g-sequences-changelog 0.19');
    expect(text).toMatch(/ordo-aggregate +5,000 +- +- .* 2\.12 +1\.19/);
  });

  it("sizes kafka-producer-perf's records as the events' mean key + value bytes", () => {
    expect(meanRecordBytes([{ key: 'abc', value: Buffer.alloc(97) }, { key: null, value: Buffer.alloc(10) }])).toBe(55);
    expect(meanRecordBytes([])).toBe(0);
  });

  it('drops the anchors with BENCH_ANCHORS=0 and keeps them by default', () => {
    expect(loadParams({}).systems.slice(0, 2)).toEqual(['kafka-producer-perf', 'java-eos-passthrough']);
    expect(loadParams({ BENCH_ANCHORS: '0' }).systems).not.toContain('java-eos-passthrough');
    expect(loadParams({ BENCH_ANCHORS: '0', BENCH_SYSTEMS: 'kafka-producer-perf,baseline-tx' }).systems).toEqual(['baseline-tx']);
  });
});
