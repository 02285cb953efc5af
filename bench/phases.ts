import type { Kafka, Message, Producer } from 'kafkajs';
import { type EventFactory, deleteSubject, eventId, produceAll } from './events.js';
import { benchKafka, cleanUp, createTopics, nowMs, sleep, waitUntil, withTimeout } from './kafka.js';
import type { AnchorSetup } from './anchors.js';
import { type Processor, type ProcessorOptions, createProcessor } from './processors.js';
import type { BenchParams, SystemName } from './params.js';
import { OutputWatcher } from './reader.js';
import { type LatencySummary, round2, summarise } from './stats.js';
import { type WritesResult, countWrites } from './writes.js';

export interface ThroughputResult {
  system: SystemName;
  topicPrefix: string;
  complete: boolean;
  error?: string;
  events: number;
  /** Outputs seen by the read_committed reader when the phase ended. */
  outputs: number;
  preProduceMs: number;
  /** Processor start called -> first output visible (group join, producer init, first batch). */
  startupMs: number | null;
  /** First output visible -> all N outputs visible. */
  steadyMs: number | null;
  /** (N - records of the first visible batch) / steadyMs: the headline figure. */
  eventsPerSecond: number | null;
  /** N / (processor start called -> all N outputs visible). */
  eventsPerSecondInclStartup: number | null;
  /**
   * kafka-producer-perf only: the tool's own figure (records sent / its send time), which
   * is also its headline `eventsPerSecond`: from the outside its records become visible one
   * transaction (BENCH_PERF_TRANSACTION_MS) at a time, too coarse for a rate over a few
   * seconds. The figure measured from the outside is kept in `measuredEventsPerSecond`.
   */
  selfReportedEventsPerSecond?: number | null;
  measuredEventsPerSecond?: number | null;
  /** Records written per topic during the phase (counted after the system stopped); absent in warm-up passes. */
  writes?: WritesResult;
  /** CPU time of this whole process (processor, reader, client threads) from processor start to all N outputs visible, ms. */
  processCpuMs?: number | null;
  details: Record<string, unknown>;
}

export interface LatencyResult {
  system: SystemName;
  topicPrefix: string;
  complete: boolean;
  error?: string;
  targetRate: number;
  seconds: number;
  warmupEvents: number;
  sent: number;
  received: number;
  missing: number;
  duplicates: number;
  /** Measured events / time from the first to the last send. */
  achievedRate: number | null;
  /** Output visible to the read_committed reader minus produce time (= the input record timestamp), ms. */
  latencyMs: LatencySummary | null;
  details: Record<string, unknown>;
}

interface PhaseContext {
  params: BenchParams;
  factory: EventFactory;
  log: (line: string) => void;
  /** The Java anchors' set-up (bench/anchors.ts); undefined when none is selected. */
  anchors?: AnchorSetup;
}

/** Creates the phase's topics, runs `body`, then stops everything and deletes the phase's topics and groups. */
async function withPhase<T>(
  ctx: PhaseContext,
  system: SystemName,
  prefix: string,
  body: (kafka: Kafka, processor: Processor, reader: string) => Promise<T>,
  cleanupNote: (note: Record<string, unknown>) => void,
  options: ProcessorOptions & { afterStop?: (kafka: Kafka, processor: Processor) => Promise<void> } = {},
): Promise<T> {
  const kafka = benchKafka(ctx.params.brokers, `bench-${system}-driver`);
  const jvmWarmup = system === 'java-eos-passthrough' ? Array.from({ length: ctx.params.warmupEvents }, (_, i) => ctx.factory.message('jvm-', i, Date.now())) : [];
  const processor = createProcessor(system, ctx.params, prefix, { ...options, anchors: ctx.anchors, jvmWarmup });
  const readerGroup = `${prefix}-reader`;
  try {
    await createTopics(kafka, [processor.inputTopic, processor.outputTopic], ctx.params.partitions);
    await processor.prepare?.(kafka);
    return await body(kafka, processor, readerGroup);
  } finally {
    const stopError = await processor.stop().then(
      () => undefined,
      (error: unknown) => (error as Error).message,
    );
    let details: Record<string, unknown> = {};
    try {
      details = await processor.details();
    } catch (error) {
      details = { error: (error as Error).message };
    }
    if (!stopError) await options.afterStop?.(kafka, processor);
    const removed = await cleanUp(kafka, prefix, [processor.groupId, ...(jvmWarmup.length > 0 ? [`${processor.groupId}-warm`] : []), readerGroup]);
    for (const subject of processor.subjects) await deleteSubject(ctx.params.registryUrl, subject);
    cleanupNote({ ...details, ...(stopError ? { stopError } : {}), ...(removed.error ? { cleanupError: removed.error } : {}), topicsDeleted: removed.topics.length });
  }
}

/**
 * Pre-produces the N events to a fresh input topic, starts the processor, and waits until
 * a read_committed reader (already joined before the start) has seen all N outputs. A
 * self-driven system (kafka-producer-perf) gets no input and N is its own record count.
 * With `countWrites`, once the system has stopped, every record it wrote to the phase's
 * topics is counted (bench/writes.ts); a failed count fails the phase.
 */
export async function runThroughput(
  ctx: PhaseContext,
  system: SystemName,
  prefix: string,
  messages: Message[],
  options: { countWrites?: boolean; selfDrivenRecords?: number; inspect?: (kafka: Kafka, result: ThroughputResult) => Promise<void> } = {},
): Promise<ThroughputResult> {
  const selfDriven = system === 'kafka-producer-perf' ? { records: options.selfDrivenRecords ?? messages.length, recordBytes: meanRecordBytes(messages) } : undefined;
  const n = selfDriven?.records ?? messages.length;
  const result: ThroughputResult = {
    system, topicPrefix: prefix, complete: false, events: n, outputs: 0, preProduceMs: 0,
    startupMs: null, steadyMs: null, eventsPerSecond: null, eventsPerSecondInclStartup: null, details: {},
  };
  const afterStop = async (kafka: Kafka, processor: Processor): Promise<void> => {
    if (processor.selfReportedPerSecond) result.selfReportedEventsPerSecond = processor.selfReportedPerSecond() ?? null;
    if (!options.countWrites || !result.complete) return;
    result.writes = await countWrites(kafka, prefix, [processor.inputTopic, ...(processor.auxTopics ?? [])], n);
    if (!result.writes.complete) {
      result.complete = false;
      result.error = result.writes.error;
    }
    // Still before the phase's topics are deleted (bench/capacity.ts measures them here).
    if (result.complete) await options.inspect?.(kafka, result);
  };
  try {
    await withPhase(ctx, system, prefix, async (kafka, processor, readerGroup) => {
      if (!processor.selfDriven) {
        const producer = kafka.producer({ allowAutoTopicCreation: false });
        await withTimeout(producer.connect(), 30_000, 'producer connect');
        try {
          result.preProduceMs = await produceAll(producer, processor.inputTopic, messages);
        } finally {
          await producer.disconnect();
        }
        ctx.log(`  pre-produced ${n} events in ${result.preProduceMs} ms`);
      }
      const w = new OutputWatcher(kafka, processor.outputTopic, readerGroup, ctx.params.readerMaxWaitMs);
      try {
        await w.start();
        const t0 = nowMs();
        const cpu0 = process.cpuUsage();
        await processor.start();
        const done = await waitUntil(() => w.count >= n, ctx.params.drainTimeoutMs - (nowMs() - t0), { everyMs: 5, abort: () => processor.failure() });
        const cpu = process.cpuUsage(cpu0);
        result.processCpuMs = done ? round2((cpu.user + cpu.system) / 1000) : null;
        result.outputs = w.count;
        if (w.firstAt !== undefined && w.lastAt !== undefined) {
          result.startupMs = round2(w.firstAt - t0);
          result.steadyMs = round2(w.lastAt - w.firstAt);
        }
        if (!done) throw new Error(`only ${w.count} of ${n} outputs visible after ${ctx.params.drainTimeoutMs} ms`);
        const firstAt = w.firstAt!;
        const lastAt = w.lastAt!;
        result.eventsPerSecond = lastAt > firstAt ? Math.round(((n - w.firstCount) / (lastAt - firstAt)) * 1000) : null;
        result.eventsPerSecondInclStartup = Math.round((n / Math.max(1, lastAt - t0)) * 1000);
        // No settle pause to catch extra outputs (it would cost time); report what is there now.
        result.outputs = w.count;
        result.complete = w.count === n;
        if (w.count > n) result.error = `${w.count - n} more outputs than inputs`;
      } finally {
        await w.stop().catch(() => undefined);
      }
    }, (note) => (result.details = note), { afterStop, ...(selfDriven ? { selfDriven } : {}) });
  } catch (error) {
    result.error = (error as Error).message;
  }
  if (selfDriven) {
    result.measuredEventsPerSecond = result.eventsPerSecond;
    result.eventsPerSecond = result.selfReportedEventsPerSecond ?? null;
    if (result.complete && result.eventsPerSecond === null) {
      result.complete = false;
      result.error = 'kafka-producer-perf printed no summary line';
    }
  }
  return result;
}

/** Mean key + value bytes of the bench events: kafka-producer-perf's --record-size (its records have no key). */
export function meanRecordBytes(messages: Message[]): number {
  if (messages.length === 0) return 0;
  const size = (v: Message['key']): number => (v === null || v === undefined ? 0 : Buffer.byteLength(v));
  return Math.round(messages.reduce((a, m) => a + size(m.key) + size(m.value), 0) / messages.length);
}

/**
 * Starts the processor on fresh topics, sends a paced warm-up and waits until it is all
 * visible, then produces `rate` events/s for `seconds` and measures, per event, the time
 * its output became visible to a read_committed reader minus its produce time.
 */
export async function runLatency(ctx: PhaseContext, system: SystemName, prefix: string): Promise<LatencyResult> {
  const { latencyRate: rate, latencySeconds: seconds, latencyWarmupSeconds: warmupSeconds } = ctx.params;
  const result: LatencyResult = {
    system, topicPrefix: prefix, complete: false, targetRate: rate, seconds, warmupEvents: 0,
    sent: 0, received: 0, missing: 0, duplicates: 0, achievedRate: null, latencyMs: null, details: {},
  };
  const sentAt = new Map<string, number>();
  const seen = new Set<string>();
  const latencies: number[] = [];
  let warmSeen = 0;
  try {
    await withPhase(ctx, system, prefix, async (kafka, processor, readerGroup) => {
      const watcher = new OutputWatcher(kafka, processor.outputTopic, readerGroup, ctx.params.readerMaxWaitMs, (records, visibleAt) => {
        for (const m of records) {
          const id = eventId(m.value);
          if (id === undefined) continue;
          if (id.startsWith('w-')) {
            warmSeen++;
            continue;
          }
          if (seen.has(id)) {
            result.duplicates++;
            continue;
          }
          const at = sentAt.get(id);
          if (at === undefined) continue;
          seen.add(id);
          latencies.push(visibleAt - at);
        }
      });
      const producer = kafka.producer({ allowAutoTopicCreation: false });
      try {
        await watcher.start();
        await withTimeout(producer.connect(), 30_000, 'producer connect');
        await processor.start();
        const failure = (): Error | undefined => processor.failure();
        if (warmupSeconds > 0) {
          const warm = await paced(producer, processor.inputTopic, ctx.factory, 'w-', rate, warmupSeconds, () => undefined);
          result.warmupEvents = warm.sent;
          const ok = await waitUntil(() => warmSeen >= warm.sent, 60_000, { abort: failure });
          if (!ok) throw new Error(`warm-up: only ${warmSeen} of ${warm.sent} outputs visible after 60 s`);
        }
        ctx.log(`  warmed up (${result.warmupEvents} events); measuring ${rate} ev/s for ${seconds} s`);
        const measured = await paced(producer, processor.inputTopic, ctx.factory, 'm-', rate, seconds, (id, at) => sentAt.set(id, at));
        result.sent = measured.sent;
        result.achievedRate = measured.spanMs > 0 ? round2(((measured.sent - 1) / measured.spanMs) * 1000) : null;
        const drained = await waitUntil(() => seen.size >= measured.sent, 30_000, { abort: failure });
        result.complete = drained;
        if (!drained) result.error = `only ${seen.size} of ${measured.sent} outputs visible 30 s after the last send`;
      } finally {
        await producer.disconnect().catch(() => undefined);
        result.sent = sentAt.size;
        result.received = seen.size;
        result.missing = result.sent - seen.size;
        result.latencyMs = summarise(latencies);
        await watcher.stop().catch(() => undefined);
      }
    }, (note) => (result.details = note));
  } catch (error) {
    result.error = (error as Error).message;
  }
  if (result.duplicates > 0) result.complete = false;
  return result;
}

/**
 * Sends `rate * seconds` events on a steady schedule: every tick it sends the events that
 * are due by then (so a slow send is caught up, never skipped). `onSend` gets each id and
 * its produce time, which is also the record's timestamp.
 */
async function paced(
  producer: Producer,
  topic: string,
  factory: EventFactory,
  idPrefix: string,
  rate: number,
  seconds: number,
  onSend: (id: string, at: number) => void,
): Promise<{ sent: number; spanMs: number }> {
  const total = Math.max(1, Math.round(rate * seconds));
  const tickMs = Math.max(1, Math.min(10, 1000 / rate));
  const start = performance.now();
  let firstAt: number | undefined;
  let lastAt = 0;
  let sent = 0;
  while (sent < total) {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor((rate * elapsed) / 1000) + 1);
    if (due > sent) {
      const now = nowMs();
      firstAt ??= now;
      lastAt = now;
      const messages: Message[] = [];
      for (let i = sent; i < due; i++) {
        messages.push(factory.message(idPrefix, i, now));
        onSend(`${idPrefix}${i}`, now);
      }
      sent = due;
      await withTimeout(producer.send({ topic, messages, acks: -1 }), 30_000, `paced send to ${topic}`);
    }
    if (performance.now() - start > seconds * 1000 + 60_000) throw new Error('paced production fell more than 60 s behind');
    await sleep(tickMs);
  }
  return { sent, spanMs: lastAt - (firstAt ?? lastAt) };
}
