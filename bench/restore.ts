/**
 * Restore phase: how fast a task gets its aggregates back after a rebalance or restart.
 * Writes an aggregates changelog (as the pipeline's aggregates store writes it) to one
 * partition of a fresh compacted topic, then times Ordo's own `restorePartitions` reading
 * it into an InMemoryStore with aggregateCodec, several times; then the persistent state
 * (ORDO_STATE_DIR): a full restore into lmdb (after a crash) and a clean restart from its
 * checkpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka, Message } from 'kafkajs';
import { makeServiceTime, formatServiceTime } from '../src/clock/service-time.js';
import { restorePartitions } from '../src/engine/restore.js';
import { LmdbBackend } from '../src/engine/state-dir.js';
import { InMemoryStore } from '../src/engine/state-store.js';
import { type StoreCodec } from '../src/model/store.js';
import { noopLogger } from '../src/observability/logger.js';
import { AGGREGATES_STORE, aggregateCodec } from '../src/processors/aggregate.js';
import { type UsageAggregate, aggregateKey } from '../src/usage/aggregation.js';
import { Decimal } from '../src/usage/decimal.js';
import { windowEnd, windowStart } from '../src/usage/windows.js';
import { benchEvent } from './events.js';
import { benchKafka, cleanUp, createTopics, nowMs, withTimeout } from './kafka.js';
import { BENCH_METERS } from './meters.js';
import type { BenchParams } from './params.js';
import { median, round2 } from './stats.js';

/** Records per transaction when writing the changelog: about one full Ordo batch's worth. */
const RECORDS_PER_TRANSACTION = 2_000;
/** Records per produce request (well under the broker's 1 MiB record-batch limit). */
const RECORDS_PER_SEND = 1_000;
const RESTORE_TIMEOUT_MS = 300_000;
const NODE = 'bench-node';
const FINEST_MS = { HOUR: 3_600_000, DAY: 86_400_000 } as const;

export interface RestoreRepetition {
  /** restorePartitions called -> resolved (admin connect, end offsets, group join, reading, group delete). */
  seconds: number;
  /** records / seconds. */
  recordsPerSecond: number;
  /** restorePartitions called -> first record handed to the store. */
  firstRecordMs: number | null;
  /** (records - 1) / (first record -> last record): the reading rate without the fixed start-up. */
  steadyRecordsPerSecond: number | null;
  restored: number;
  storeSize: number;
}

/** The persistent state (lmdb) of one task holding the whole changelog. */
export interface PersistentRestoreResult {
  /** After a crash (no checkpoint): open, wipe, restorePartitions into lmdb, every record written. */
  fullSeconds: number;
  fullRecordsPerSecond: number;
  /** After a clean stop (checkpoint): open, read the checkpoint, restore the (empty) tail, the store answering. */
  cleanRestartSeconds: number;
  tailRecords: number;
  storeSize: number;
}

export interface RestoreResult {
  complete: boolean;
  error?: string;
  topic: string;
  records: number;
  /** Every record has its own key, so the restored store must hold `records` entries. */
  distinctKeys: number;
  meanKeyBytes: number | null;
  meanValueBytes: number | null;
  writeMs: number | null;
  transactions: number;
  repetitions: RestoreRepetition[];
  /** Medians over the repetitions. */
  recordsPerSecond: number | null;
  seconds: number | null;
  steadyRecordsPerSecond: number | null;
  firstRecordMs: number | null;
  persistent: PersistentRestoreResult | null;
}

/**
 * Aggregate i of the changelog: subject i mod S, then meter, then one of the meter's
 * finest windows going back from `base`, so every record has its own key (as a compacted
 * changelog has after compaction). Values look like the real ones: counts in the hundreds,
 * exact sums, AVG with 20 fractional digits, bounded distinct counts.
 */
export function changelogAggregate(i: number, subjects: number, base: number): { key: string; aggregate: UsageAggregate } {
  const subject = i % subjects;
  const j = Math.floor(i / subjects);
  const meter = BENCH_METERS[j % BENCH_METERS.length]!;
  const k = Math.floor(j / BENCH_METERS.length);
  const size = meter.windows[0] === 'HOUR' ? 'HOUR' : 'DAY';
  const start = windowStart(base, size) - k * FINEST_MS[size];
  const end = windowEnd(start, size);
  const dimensions = benchEvent('x', i, subject, 0, start).dimensions;
  const groupBy = Object.fromEntries(Object.entries(meter.groupBy).map(([name, dimension]) => [name, dimensions[dimension] ?? '']));
  const count = 1 + ((i * 31) % 400);
  let value: string;
  let sum: string | null = null;
  switch (meter.aggregation) {
    case 'SUM':
      sum = `${count * 49}.25`;
      value = sum;
      break;
    case 'AVG':
      sum = String(count * 205 + (i % 7));
      value = Decimal.parse(sum).divide(BigInt(count)).toString();
      break;
    case 'UNIQUE_COUNT':
      value = String(Math.min(25, count));
      break;
    default:
      value = String(count);
  }
  const aggregate: UsageAggregate = {
    meter: meter.slug,
    subject: `cust-${subject}`,
    groupBy,
    windowSize: size,
    windowStart: start,
    windowEnd: end,
    aggregation: meter.aggregation,
    value,
    sum,
    count,
    firstEventTime: start + 1_000,
    lastEventTime: end - 1_000,
    lastServiceTime: formatServiceTime(makeServiceTime(end - 500, i % 100)),
    lastServiceNode: NODE,
    version: count,
    corrections: 0,
  };
  return { key: aggregateKey(aggregate), aggregate };
}

export async function runRestore(params: BenchParams, runPrefix: string, log: (line: string) => void): Promise<RestoreResult> {
  const topic = `${runPrefix}-restore-g-${AGGREGATES_STORE}-changelog`;
  const n = params.restoreRecords;
  const result: RestoreResult = {
    complete: false, topic, records: n, distinctKeys: 0, meanKeyBytes: null, meanValueBytes: null, writeMs: null,
    transactions: 0, repetitions: [], recordsPerSecond: null, seconds: null, steadyRecordsPerSecond: null, firstRecordMs: null, persistent: null,
  };
  const kafka = benchKafka(params.brokers, 'bench-restore');
  try {
    await createTopics(kafka, [topic], 1, [{ name: 'cleanup.policy', value: 'compact' }]);
    log(`restore: writing ${n.toLocaleString('en-US')} aggregate changelog records to ${topic} (1 partition, compacted)`);
    await writeChangelog(kafka, topic, n, params.subjects, result);
    log(`  written in ${result.writeMs} ms (${result.transactions} transactions)`);
    for (let rep = 1; rep <= params.restoreRepetitions; rep++) {
      const r = await restoreOnce(kafka, topic, `${runPrefix}-restore`);
      result.repetitions.push(r);
      log(`restore ${rep}/${params.restoreRepetitions}: ${r.restored} records in ${r.seconds} s = ${r.recordsPerSecond.toLocaleString('en-US')} records/s` +
        ` (first record after ${r.firstRecordMs ?? '-'} ms; steady ${r.steadyRecordsPerSecond?.toLocaleString('en-US') ?? '-'} records/s)`);
      if (r.restored !== n || r.storeSize !== result.distinctKeys) {
        throw new Error(`repetition ${rep} restored ${r.restored} records into ${r.storeSize} keys; expected ${n} records, ${result.distinctKeys} keys`);
      }
    }
    const p = await persistentRestore(kafka, topic, `${runPrefix}-restore`);
    result.persistent = p;
    log(`restore into lmdb after a crash: ${n} records in ${p.fullSeconds} s = ${p.fullRecordsPerSecond.toLocaleString('en-US')} records/s; ` +
      `clean restart from the checkpoint: ready in ${p.cleanRestartSeconds} s (${p.tailRecords} tail records, ${p.storeSize} entries)`);
    if (p.storeSize !== result.distinctKeys || p.tailRecords !== 0) {
      throw new Error(`the persistent restore kept ${p.storeSize} keys and read ${p.tailRecords} tail records; expected ${result.distinctKeys} keys and none`);
    }
    result.complete = true;
  } catch (error) {
    result.error = (error as Error).message;
  } finally {
    const removed = await cleanUp(kafka, `${runPrefix}-restore`);
    if (removed.error) result.error ??= `cleanup: ${removed.error}`;
  }
  const reps = result.repetitions;
  result.recordsPerSecond = median(reps.map((r) => r.recordsPerSecond));
  result.seconds = median(reps.map((r) => r.seconds));
  result.steadyRecordsPerSecond = median(reps.map((r) => r.steadyRecordsPerSecond));
  result.firstRecordMs = median(reps.map((r) => r.firstRecordMs));
  return result;
}

/** Writes the changelog as the engine does: transactions of about one batch, acks=all. */
async function writeChangelog(kafka: Kafka, topic: string, n: number, subjects: number, result: RestoreResult): Promise<void> {
  const producer = kafka.producer({ transactionalId: `${topic}-writer`, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await withTimeout(producer.connect(), 30_000, 'changelog writer connect');
  const keys = new Set<string>();
  let keyBytes = 0;
  let valueBytes = 0;
  const base = Date.UTC(2026, 9, 1);
  const started = Date.now();
  try {
    for (let from = 0; from < n; from += RECORDS_PER_TRANSACTION) {
      const transaction = await producer.transaction();
      try {
        const to = Math.min(n, from + RECORDS_PER_TRANSACTION);
        for (let chunk = from; chunk < to; chunk += RECORDS_PER_SEND) {
          const messages: Message[] = [];
          for (let i = chunk; i < Math.min(to, chunk + RECORDS_PER_SEND); i++) {
            const { key, aggregate } = changelogAggregate(i, subjects, base);
            const value = aggregateCodec.encode(aggregate);
            keys.add(key);
            keyBytes += Buffer.byteLength(key);
            valueBytes += value.length;
            messages.push({ key, value, partition: 0 });
          }
          await withTimeout(transaction.send({ topic, messages, acks: -1 }), 60_000, `writing ${topic}`);
        }
        await withTimeout(transaction.commit(), 60_000, `committing to ${topic}`);
        result.transactions++;
      } catch (error) {
        await transaction.abort().catch(() => undefined);
        throw error;
      }
    }
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
  result.writeMs = Date.now() - started;
  result.distinctKeys = keys.size;
  result.meanKeyBytes = n > 0 ? round2(keyBytes / n) : null;
  result.meanValueBytes = n > 0 ? round2(valueBytes / n) : null;
}

async function restoreOnce(kafka: Kafka, topic: string, groupPrefix: string): Promise<RestoreRepetition> {
  const store = new InMemoryStore<UsageAggregate>(AGGREGATES_STORE, aggregateCodec);
  let firstAt: number | undefined;
  let lastAt = 0;
  const started = nowMs();
  const { records } = await restorePartitions(
    kafka,
    [{
      topic,
      partition: 0,
      onRecord: (key, value) => {
        store.restore(key, value);
        const now = nowMs();
        firstAt ??= now;
        lastAt = now;
      },
    }],
    { groupPrefix, logger: noopLogger, timeoutMs: RESTORE_TIMEOUT_MS },
  );
  const ms = nowMs() - started;
  const steadyMs = firstAt === undefined ? 0 : lastAt - firstAt;
  return {
    seconds: round2(ms / 1000),
    recordsPerSecond: Math.round((records / ms) * 1000),
    firstRecordMs: firstAt === undefined ? null : round2(firstAt - started),
    steadyRecordsPerSecond: steadyMs > 0 ? Math.round(((records - 1) / steadyMs) * 1000) : null,
    restored: records,
    storeSize: store.size,
  };
}

/**
 * A task's persistent state as Task.start/close use it: a start without checkpoint (a crash)
 * wipes and restores everything into lmdb; a clean close checkpoints the end offsets; the
 * next start restores from them (nothing new here) and the store answers at once.
 */
async function persistentRestore(kafka: Kafka, topic: string, groupPrefix: string): Promise<PersistentRestoreResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ordo-bench-state-'));
  const backend = new LmdbBackend(dir, noopLogger);
  const spec = { groupId: 'bench', topic: 'in', partition: 0, stores: [{ name: AGGREGATES_STORE, codec: aggregateCodec as StoreCodec<unknown> }] };
  const sources = [{ store: AGGREGATES_STORE, topic, partition: 0 }];
  try {
    let started = nowMs();
    let state = await backend.open(spec);
    state.begin(sources);
    let store = state.stores.get(AGGREGATES_STORE)!;
    const full = await restorePartitions(kafka, [{ topic, partition: 0, onRecord: (key, value) => store.restore(key, value) }], { groupPrefix, logger: noopLogger, timeoutMs: RESTORE_TIMEOUT_MS });
    const size = store.size; // writes the last restored records
    const fullMs = nowMs() - started;
    if (size === 0) throw new Error('nothing restored into lmdb');
    await state.checkpoint([{ ...sources[0]!, offset: full.ends[0]! }]);
    await state.close();

    started = nowMs();
    state = await backend.open(spec);
    const plan = state.begin(sources);
    if (plan.kind !== 'tail') throw new Error(`the clean restart restored fully (${plan.why})`);
    store = state.stores.get(AGGREGATES_STORE)!;
    const tail = await restorePartitions(kafka, [{ topic, partition: 0, from: BigInt(plan.from.get(AGGREGATES_STORE) ?? '0'), onRecord: (key, value) => store.restore(key, value) }], { groupPrefix, logger: noopLogger });
    const storeSize = store.size;
    const cleanMs = nowMs() - started;
    await state.close();
    return {
      fullSeconds: round2(fullMs / 1000),
      fullRecordsPerSecond: Math.round((full.records / fullMs) * 1000),
      cleanRestartSeconds: round2(cleanMs / 1000),
      tailRecords: tail.records,
      storeSize,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
