import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type ConsumerConfig, type ConsumerRunConfig, type Kafka, KafkaJSError, type Message, type Producer } from 'kafkajs';
import { QueryError } from '../../src/errors.js';
import { StreamSource, type StreamReader, type StreamSourceOptions } from '../../src/engine/stream-source.js';
import { SourceReader } from '../../src/engine/stream-reader.js';
import type { SourceRecord } from '../../src/model/records.js';
import { noopLogger } from '../../src/observability/logger.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';

const kafka = testKafka('ordo-stream-source-test');
const PREFIX = uniqueName('stream-source');
const PARTITIONS = 3;
const cleanups: (() => Promise<void>)[] = [];
const failures: unknown[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  expect(failures.splice(0)).toEqual([]);
});

afterAll(async () => {
  await deleteTopicsWithPrefix(kafka, PREFIX);
});

async function newTopic(partitions = PARTITIONS): Promise<string> {
  const topic = uniqueName(PREFIX);
  await createTopics(kafka, [topic], partitions);
  return topic;
}

/** A source of `topic`; `catchUps` records every count of open catch-up consumers it reported. */
async function startSource(topic: string, options: Partial<StreamSourceOptions> = {}): Promise<{ source: StreamSource; catchUps: number[]; groupId: string }> {
  const catchUps: number[] = [];
  const groupId = uniqueName('ordo-stream-test');
  const source = new StreamSource({
    kafka,
    topic,
    groupId,
    tailRecords: 100,
    maxCatchUps: 4,
    logger: noopLogger,
    onCatchUps: (open) => catchUps.push(open),
    onFailure: (error) => failures.push(error),
    ...options,
  });
  cleanups.push(() => source.stop());
  await source.start();
  return { source, catchUps, groupId };
}

/** A transactional writer; every record's value is `<partition>:<n>`, n counting per partition; aborted ones say `aborted`. */
class Writer {
  private producer: Producer | undefined;
  readonly committed = new Map<number, string[]>();
  private n = 0;

  constructor(private readonly topic: string) {}

  async transaction(perPartition: number, commit = true): Promise<void> {
    if (this.producer === undefined) {
      this.producer = kafka.producer({ transactionalId: `${this.topic}-writer`, idempotent: true, maxInFlightRequests: 1 });
      await this.producer.connect();
      const producer = this.producer;
      cleanups.push(() => producer.disconnect());
    }
    const messages: Message[] = [];
    const values = new Map<number, string[]>();
    for (let partition = 0; partition < PARTITIONS; partition++) {
      for (let i = 0; i < perPartition; i++) {
        const value = commit ? `${partition}:${this.n++}` : `${partition}:aborted`;
        messages.push({ key: null, value, partition });
        values.set(partition, [...(values.get(partition) ?? []), value]);
      }
    }
    const tx = await this.producer.transaction();
    await tx.send({ topic: this.topic, messages });
    if (commit) {
      await tx.commit();
      for (const [p, v] of values) this.committed.set(p, [...(this.committed.get(p) ?? []), ...v]);
    } else {
      await tx.abort();
    }
  }

  /** Committed values of each partition from the `skip`-th on. */
  expected(skip: ReadonlyMap<number, number> = new Map()): Map<number, string[]> {
    return new Map([...this.committed].map(([p, values]) => [p, values.slice(skip.get(p) ?? 0)]));
  }

  counts(): Map<number, number> {
    return new Map([...this.committed].map(([p, values]) => [p, values.length]));
  }
}

/** Reads until `count` records came (or the deadline), then checks nothing more comes. */
async function readAll(reader: StreamReader, count: number, timeoutMs = 60_000): Promise<SourceRecord[]> {
  return readWhile(reader, Promise.resolve(), () => count, timeoutMs);
}

/** Reads while `writing` goes on, then until `count()` records came, then checks nothing more comes. */
async function readWhile(reader: StreamReader, writing: Promise<void>, count: () => number, timeoutMs = 60_000): Promise<SourceRecord[]> {
  const records: SourceRecord[] = [];
  let written = false;
  void writing.then(() => (written = true));
  const deadline = Date.now() + timeoutMs;
  while ((!written || records.length < count()) && Date.now() < deadline) records.push(...(await reader.next(7, 300)));
  await writing;
  expect(records.length).toBe(count());
  expect(await reader.next(100, 300)).toEqual([]);
  return records;
}

function byPartition(records: readonly SourceRecord[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  let last = new Map<number, bigint>();
  for (const r of records) {
    const offset = BigInt(r.offset);
    expect(offset > (last.get(r.partition) ?? -1n)).toBe(true);
    last = new Map(last).set(r.partition, offset);
    out.set(r.partition, [...(out.get(r.partition) ?? []), r.value!.toString()]);
  }
  return out;
}

/** Members of the consumer groups whose id starts with `prefix`, per group. */
async function groupMembers(prefix: string): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((id) => id.startsWith(prefix));
    const described = ids.length === 0 ? [] : (await admin.describeGroups(ids)).groups;
    return new Map(described.map((g) => [g.groupId, g.members.length]));
  } finally {
    await admin.disconnect();
  }
}

function sorted(map: ReadonlyMap<number, string[]>): [number, string[]][] {
  return [...map].filter(([, v]) => v.length > 0).sort((a, b) => a[0] - b[0]);
}

async function rejection(promise: Promise<unknown>): Promise<QueryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(QueryError);
  return error as QueryError;
}

function positions(bounds: Map<number, { earliest: bigint; end: bigint }>, which: 'earliest' | 'end'): Map<number, bigint> {
  return new Map([...bounds].map(([p, b]) => [p, b[which]]));
}

describe('StreamSource (real broker)', () => {
  it('serves readers at the tail from memory: committed records once, in order, aborted ones never, and 200 idle readers open no consumer', async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    await writer.transaction(2);
    const { source, catchUps } = await startSource(topic);
    expect(source.partitions()).toBe(PARTITIONS);
    const skip = writer.counts();
    const end = positions(await source.bounds(), 'end');
    const readers = await Promise.all(Array.from({ length: 200 }, () => source.open(end)));
    expect(source.openReaders()).toBe(200);
    await writer.transaction(3);
    await writer.transaction(2, false);
    await writer.transaction(4);
    const expected = sorted(writer.expected(skip));
    const total = expected.reduce((n, [, v]) => n + v.length, 0);
    expect(total).toBe(21);
    // Every reader gets the same records; none ever needed a consumer of its own.
    for (const reader of [readers[0]!, readers[99]!, readers[199]!]) expect(sorted(byPartition(await readAll(reader, total)))).toEqual(expected);
    const rest = await Promise.all(readers.filter((_, i) => ![0, 99, 199].includes(i)).map((r) => r.next(1_000, 5_000)));
    expect(rest.length).toBe(197);
    for (const records of rest) expect(records.length).toBe(total);
    expect(catchUps.filter((n) => n > 0)).toEqual([]);
    expect(source.openCatchUps()).toBe(0);
    await Promise.all(readers.map((r) => r.close()));
    expect(source.openReaders()).toBe(0);
  });

  it('catches a reader up from the earliest offsets and from the middle while records keep coming, then switches it to the tail', async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    for (let i = 0; i < 5; i++) await writer.transaction(10, i !== 2);
    const middleSkip = new Map([...writer.counts()].map(([p, n]) => [p, n - 7]));
    const { source, catchUps } = await startSource(topic, { tailRecords: 20, readerBufferBytes: 4_000 });
    const bounds = await source.bounds();
    // The middle: 7 records before each partition's end (plus the marker after them).
    const middle = new Map([...bounds].map(([p, b]) => [p, b.end - 8n]));
    const fromEarliest = await source.open(positions(bounds, 'earliest'));
    const fromMiddle = await source.open(middle);
    expect(source.openCatchUps()).toBe(2);
    const writing = (async () => {
      for (let i = 0; i < 15; i++) await writer.transaction(3, i % 4 !== 1);
    })();
    const total = (skip?: Map<number, number>): number => [...writer.expected(skip).values()].reduce((n, v) => n + v.length, 0);
    const [early, mid] = await Promise.all([readWhile(fromEarliest, writing, () => total()), readWhile(fromMiddle, writing, () => total(middleSkip))]);
    expect(sorted(byPartition(early))).toEqual(sorted(writer.expected()));
    expect(sorted(byPartition(mid))).toEqual(sorted(writer.expected(middleSkip)));
    // Both reached the tail: their consumers are closed and their slots free.
    expect(source.openCatchUps()).toBe(0);
    expect(Math.max(...catchUps)).toBe(2);
    expect(catchUps.at(-1)).toBe(0);
    // And they keep reading at the tail.
    await writer.transaction(1);
    for (const reader of [fromEarliest, fromMiddle]) expect((await readAll(reader, PARTITIONS)).map((r) => r.value!.toString()).sort()).toEqual(sorted(writer.expected()).map(([, v]) => v.at(-1)).sort());
    expect(source.openCatchUps()).toBe(0);
  });

  it('delivers a transaction that was open when the source started (the end is the last stable offset) once it commits', async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    await writer.transaction(1);
    const producer = kafka.producer({ transactionalId: `${topic}-open`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const open = await producer.transaction();
    await open.send({ topic, messages: [0, 1, 2].map((partition) => ({ value: `${partition}:open`, partition })) });
    const { source, catchUps } = await startSource(topic);
    // The open transaction's records lie at and after the end: a reader at the end gets them once committed.
    expect([...(await source.bounds()).values()].map((b) => b.end)).toEqual([2n, 2n, 2n]);
    const reader = await source.open(positions(await source.bounds(), 'end'));
    await writer.transaction(1);
    await open.commit();
    const values = (await readAll(reader, 6)).map((r) => r.value!.toString());
    expect(values.filter((v) => v.endsWith(':open')).sort()).toEqual(['0:open', '1:open', '2:open']);
    expect(values.filter((v) => !v.endsWith(':open')).sort()).toEqual(sorted(writer.expected()).map(([, v]) => v[1]).sort());
    expect(catchUps.filter((n) => n > 0)).toEqual([]);
  });

  it('catches up a reader that fell off the tail (a ring smaller than what it left unread)', async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    const { source, catchUps } = await startSource(topic, { tailRecords: 5 });
    const reader = await source.open(positions(await source.bounds(), 'end'));
    expect(source.openCatchUps()).toBe(0);
    for (let i = 0; i < 6; i++) await writer.transaction(5, i !== 3);
    expect(sorted(byPartition(await readAll(reader, 75)))).toEqual(sorted(writer.expected()));
    expect(Math.max(...catchUps)).toBe(1);
    expect(source.openCatchUps()).toBe(0);
  });

  it('rejects next() of a reader that fell off the tail with 503 too-many-readers while no slot is free; it goes on once one is', async () => {
    const topic = await newTopic(1);
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    // 3 MiB before the source starts: a catch-up consumer's first fetch (1 MiB) cannot reach the end.
    const big = Buffer.alloc(10_000, 'x');
    for (let i = 0; i < 3; i++) await producer.send({ topic, messages: Array.from({ length: 100 }, () => ({ value: big, partition: 0 })) });
    const { source } = await startSource(topic, { tailRecords: 5, maxCatchUps: 1, readerBufferBytes: 1 });
    const bounds = await source.bounds();
    const behind = await source.open(positions(bounds, 'earliest'));
    const atTail = await source.open(positions(bounds, 'end'));
    expect((await behind.next(1, 10_000)).length).toBe(1);
    expect(source.openCatchUps()).toBe(1);
    await producer.send({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `late-${i}`, partition: 0 })) });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const refused = await rejection(atTail.next(100, 1_000));
    expect([refused.kind, refused.status]).toEqual(['too-many-readers', 503]);
    await behind.close();
    const late = await readAll(atTail, 20);
    expect(late.map((r) => r.value!.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `late-${i}`));
  });

  it('bounds what a catch-up reader that does not read holds (its buffer plus one fetch), and delivers all once it reads', async () => {
    const topic = await newTopic(1);
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const value = (i: number): string => `${i}:`.padEnd(5_000, 'x');
    for (let i = 0; i < 20; i++) await producer.send({ topic, messages: Array.from({ length: 100 }, (_, j) => ({ value: value(i * 100 + j), partition: 0 })) });
    const { source } = await startSource(topic, { readerBufferBytes: 256 * 1024 });
    const reader = await source.open(new Map([[0, 0n]]));
    expect(reader).toBeInstanceOf(SourceReader);
    // Nothing read for 2 s: the consumer holds after its buffer fills (10 MB are there).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const held = (reader as SourceReader).bufferedBytes;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(256 * 1024 + 1_048_576 + 100_000);
    const records = await readAll(reader, 2_000);
    expect(records.map((r) => r.value!.toString())).toEqual(Array.from({ length: 2_000 }, (_, i) => value(i)));
    expect(source.openCatchUps()).toBe(0);
  });

  it("answers 410 cursor-expired with the earliest cursor for deleted records, 400 cursor-ahead past the end", async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    await writer.transaction(10);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.fetchTopicMetadata({ topics: [topic] });
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: '4' }] });
    } finally {
      await admin.disconnect();
    }
    const { source } = await startSource(topic);
    const bounds = await source.bounds();
    expect(bounds.get(1)).toEqual({ earliest: 4n, end: 11n });
    const expired = await rejection(source.open(new Map([[0, 0n], [1, 3n], [2, 0n]])));
    expect(expired.kind).toBe('cursor-expired');
    expect(expired.status).toBe(410);
    expect(expired.details).toEqual({ earliest: 'v.0.4.0' });
    expect(expired.message).toMatch(/partition 1's records before offset 4 are deleted/);
    const ahead = await rejection(source.open(new Map([[2, 12n]])));
    expect([ahead.kind, ahead.status]).toEqual(['cursor-ahead', 400]);
    expect(ahead.message).toMatch(/partition 2 ends at offset 11; the cursor asks for 12/);
    expect((await rejection(source.open(new Map([[3, 0n]])))).kind).toBe('cursor-ahead');
    // The earliest cursor it names is one that opens, and reads what is left of partition 1 (values 4-9 of 10).
    const reader = await source.open(new Map([[1, 4n]]));
    expect((await readAll(reader, 6)).map((r) => r.value!.toString())).toEqual(writer.expected().get(1)!.slice(4));
  });

  it('answers 410 from next() when the records a catch-up reader needs are deleted under it', async () => {
    const topic = await newTopic(1);
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    await producer.send({ topic, messages: Array.from({ length: 30 }, (_, i) => ({ value: `r${i}`, partition: 0 })) });
    const { source } = await startSource(topic, { tailRecords: 0, readerBufferBytes: 1 });
    const reader = await source.open(new Map([[0, 0n]]));
    // The first fetch brings all 30 and the full buffer pauses the consumer; 30 more come and
    // then the log start moves to 45: the consumer, resumed once the buffer drains, finds 30-44 gone.
    expect((await reader.next(1, 10_000)).map((r) => r.offset)).toEqual(['0']);
    await producer.send({ topic, messages: Array.from({ length: 30 }, (_, i) => ({ value: `r${30 + i}`, partition: 0 })) });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.fetchTopicMetadata({ topics: [topic] });
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '45' }] });
    } finally {
      await admin.disconnect();
    }
    // What was fetched before the deletion is delivered; then the gap is an error, never skipped.
    const seen: string[] = ['0'];
    const deadline = Date.now() + 30_000;
    let error: unknown;
    while (Date.now() < deadline && error === undefined) {
      await reader.next(10, 500).then(
        (records) => seen.push(...records.map((r) => r.offset)),
        (e: unknown) => (error = e),
      );
    }
    expect(error).toBeInstanceOf(QueryError);
    expect((error as QueryError).kind).toBe('cursor-expired');
    expect((error as QueryError).status).toBe(410);
    expect((error as QueryError).details).toEqual({ earliest: 'v.45' });
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
    expect(source.openCatchUps()).toBe(0);
  });

  it('refuses a catch-up reader beyond maxCatchUps (503 too-many-readers, Retry-After); a reader closed mid-catch-up frees its slot', async () => {
    const topic = await newTopic();
    const writer = new Writer(topic);
    await writer.transaction(20);
    // No tail: every reader catches up, for good.
    const { source, catchUps, groupId } = await startSource(topic, { tailRecords: 0, maxCatchUps: 2, readerBufferBytes: 1 });
    const earliest = positions(await source.bounds(), 'earliest');
    const a = await source.open(earliest);
    const b = await source.open(earliest);
    expect(source.openCatchUps()).toBe(2);
    const refused = await rejection(source.open(earliest));
    expect([refused.kind, refused.status, refused.headers]).toEqual(['too-many-readers', 503, { 'retry-after': '1' }]);
    expect((await a.next(5, 10_000)).length).toBeGreaterThan(0);
    await a.close();
    expect(source.openCatchUps()).toBe(1);
    expect(await a.next(5, 100)).toEqual([]);
    const c = await source.open(earliest);
    expect(source.openCatchUps()).toBe(2);
    // A reader at the end needs no slot... except that without a tail it does.
    expect((await rejection(source.open(positions(await source.bounds(), 'end')))).kind).toBe('too-many-readers');
    expect(sorted(byPartition(await readAll(c, 60)))).toEqual(sorted(writer.expected()));
    expect(sorted(byPartition(await readAll(b, 60)))).toEqual(sorted(writer.expected()));
    await b.close();
    // Closed while its consumer is still joining: it must not join after all.
    await (await source.open(earliest)).close();
    await c.close();
    expect(source.openCatchUps()).toBe(0);
    expect(Math.max(...catchUps)).toBe(2);
    // Every catch-up consumer left its group, and the group is deleted: none lingers in the broker.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await groupMembers(`${groupId}-catch-up-`)).toEqual(new Map());
  });

  it('waits at start for a topic that does not exist yet, then follows it from its end', async () => {
    const topic = uniqueName(PREFIX);
    const groupId = uniqueName('ordo-stream-test');
    const source = new StreamSource({ kafka, topic, groupId, tailRecords: 10, maxCatchUps: 1, logger: noopLogger, onFailure: (e) => failures.push(e) });
    cleanups.push(() => source.stop());
    let started = false;
    const starting = source.start().then(() => (started = true));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(started).toBe(false);
    await createTopics(kafka, [topic], PARTITIONS);
    await starting;
    expect(source.partitions()).toBe(PARTITIONS);
    const reader = await source.open(positions(await source.bounds(), 'end'));
    const writer = new Writer(topic);
    await writer.transaction(1);
    expect(sorted(byPartition(await readAll(reader, PARTITIONS)))).toEqual(sorted(writer.expected()));
    expect(source.openCatchUps()).toBe(0);
    // Stopped, it leaves no group behind (the tail's is deleted).
    expect((await groupMembers(`${groupId}-tail-`)).size).toBe(1);
    await source.stop();
    expect(await groupMembers(`${groupId}-`)).toEqual(new Map());
    expect(await reader.next(1, 0)).toEqual([]);
  });

  it('fails for good when the tail cannot go on (a refusal kafkajs does not retry): onFailure, next() and open() reject', async () => {
    const topic = await newTopic();
    // The tail consumer's batches fail, once armed, as a broker refusing the read would.
    let armed = false;
    const refused = Object.assign(new KafkaJSError('simulated: not authorized to read the topic', { retriable: false }), { type: 'TOPIC_AUTHORIZATION_FAILED' });
    const faulty = Object.create(kafka) as Kafka;
    faulty.consumer = (config: ConsumerConfig) => {
      const consumer = kafka.consumer(config);
      if (!config.groupId.includes('-tail-')) return consumer;
      const run = consumer.run.bind(consumer);
      consumer.run = (runConfig?: ConsumerRunConfig) =>
        run({
          ...runConfig,
          eachBatch: async (payload) => {
            if (armed) throw refused;
            await runConfig!.eachBatch!(payload);
          },
        });
      return consumer;
    };
    const seen: unknown[] = [];
    const { source } = await startSource(topic, { kafka: faulty, onFailure: (error) => seen.push(error) });
    const end = positions(await source.bounds(), 'end');
    const reader = await source.open(end);
    const waiting = reader.next(10, 30_000);
    armed = true;
    await new Writer(topic).transaction(1);
    // kafkajs wraps the refusal (KafkaJSNonRetriableError, the refusal as its cause); the same error everywhere.
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(error)).toMatch(/simulated: not authorized to read the topic/);
    expect(seen).toEqual([error]);
    await expect(reader.next(10, 0)).rejects.toBe(error);
    await expect(source.open(end)).rejects.toBe(error);
  });

  it('resolves a pending next() with [] when the reader closes or the signal aborts', async () => {
    const topic = await newTopic();
    const { source } = await startSource(topic);
    const reader = await source.open(positions(await source.bounds(), 'end'));
    const controller = new AbortController();
    const started = Date.now();
    const aborted = reader.next(10, 30_000, controller.signal);
    setTimeout(() => controller.abort(), 200);
    expect(await aborted).toEqual([]);
    const closing = reader.next(10, 30_000);
    setTimeout(() => void reader.close(), 200);
    expect(await closing).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
    await expect(reader.next(0, 0)).rejects.toThrow(RangeError);
  });
});
