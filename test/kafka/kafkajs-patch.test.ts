// Ordo's kafkajs patch (patches/kafkajs+2.2.4.patch, docs/kafkajs-patch.md): what it must keep
// (the bytes on the wire, exactly as upstream encodes them) and what it must remove (a copy of
// a partition's messages per message, a Buffer per record field, the CONCURRENT_TRANSACTIONS
// round trip through sendMessages' retrier). Each cost check also runs on an unpatched copy
// (the patch reverse-applied in a temporary directory) and asserts that upstream exceeds the
// bound, so the check is known to fail without the patch.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { installedKafkajs, kafkajsInternals, upstreamKafkajs, type EosManager, type KafkajsInternals, type ProducedMessage } from '../../bench/kafkajs-upstream.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

let upstream: { dir: string; remove: () => void };
let patched: KafkajsInternals;
let original: KafkajsInternals;

beforeAll(() => {
  upstream = upstreamKafkajs();
  patched = kafkajsInternals(installedKafkajs());
  original = kafkajsInternals(upstream.dir);
});
afterAll(() => upstream?.remove());
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** A produce request as kafkajs' sendMessages builds it: messages grouped per partition, per topic. */
async function encodeProduce(k: KafkajsInternals, topics: { topic: string; messages: ProducedMessage[] }[], partitions: number, compression = 0): Promise<Buffer> {
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0 }));
  const topicData = topics.map(({ topic, messages }) => {
    const grouped = k.groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner: ({ message }) => message.partition ?? 0 });
    return { topic, partitions: Object.keys(grouped).map((p) => ({ partition: Number(p), firstSequence: 7, messages: grouped[p] })) };
  });
  const request = k.produceRequest({ acks: -1, timeout: 30_000, transactionalId: 'tx-1', producerId: k.Long.fromValue(42), producerEpoch: 3, compression, topicData });
  return (await request.encode()).buffer;
}

/** Ordo-like records: a subject key, an Avro-sized value, the stamp headers. */
function ordoMessages(n: number, partitions: number): ProducedMessage[] {
  const value = Buffer.alloc(180, 7);
  return Array.from({ length: n }, (_, i) => ({
    key: `cust-${i % 1000}`,
    value,
    partition: i % partitions,
    headers: { 'service-time': '0001900000000000', 'service-node': 'node-1', 'ordo-seq': String(i), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  }));
}

describe('the patched produce encoding', () => {
  const text = fc.string({ maxLength: 20, unit: 'binary' });
  const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
  const message = fc.record(
    {
      key: fc.oneof(text, bytes, fc.constant(null)),
      value: fc.oneof(text, bytes, fc.constant(null)),
      headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof(text, bytes, fc.array(fc.oneof(text, bytes), { minLength: 1, maxLength: 3 })), { maxKeys: 4 }),
      partition: fc.integer({ min: 0, max: 3 }),
      timestamp: fc.integer({ min: 1_600_000_000_000, max: 1_999_999_999_999 }).map(String),
    },
    { requiredKeys: ['value', 'partition'] },
  );

  it('writes the same bytes as upstream kafkajs for any messages, topics and partitions, uncompressed or GZIP', async () => {
    const topicsArbitrary = fc.array(fc.record({ topic: fc.string({ minLength: 1, maxLength: 12 }), messages: fc.array(message, { maxLength: 30 }) }), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(topicsArbitrary, fc.constantFrom(0, 1), async (topics, compression) => {
        // A batch without record timestamps takes Date.now(): the same instant for both.
        vi.spyOn(Date, 'now').mockReturnValue(1_700_000_000_123);
        const expected = await encodeProduce(original, topics, 4, compression);
        expect((await encodeProduce(patched, topics, 4, compression)).equals(expected)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('writes and sizes every varlong as upstream does (numbers, beyond 2^52, BigInt, Long)', () => {
    const values = fc.oneof(
      fc.integer(),
      fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
      fc.constantFrom(0, -1, 2 ** 52, -(2 ** 52), 2 ** 52 + 2, -(2 ** 52) - 2, 2 ** 53, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, NaN),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => original.Long.fromValue(v)),
    );
    fc.assert(
      fc.property(values, (v) => {
        const mine = new patched.Encoder().writeVarLong(v).buffer;
        expect(mine.equals(new original.Encoder().writeVarLong(v).buffer)).toBe(true);
        expect(patched.Encoder.sizeOfVarLong(v)).toBe(original.Encoder.sizeOfVarLong(v));
        expect(patched.Encoder.sizeOfVarLong(v)).toBe(mine.length);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('what the patch removes', () => {
  it('groups a send per partition in one pass: no copy of the partition so far per message', () => {
    // Every array copy ([...current, message]) and every for-of walks an array iterator.
    const iteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]()) as { next: () => unknown };
    const steps = (k: KafkajsInternals, messages: ProducedMessage[]): number => {
      const next = iteratorPrototype.next;
      let count = 0;
      iteratorPrototype.next = function (this: unknown) {
        count++;
        return next.call(this);
      };
      try {
        const grouped = k.groupMessagesPerPartition({ topic: 't', partitionMetadata: [{}, {}, {}], messages, partitioner: ({ message }) => message.partition! });
        expect(Object.values(grouped).map((m) => m.length)).toEqual([1000, 1000, 1000]);
        expect(grouped['1']![999]).toBe(messages[2999 - 1]);
      } finally {
        iteratorPrototype.next = next;
      }
      return count;
    };
    const messages = ordoMessages(3000, 3);
    expect(steps(patched, messages)).toBeLessThanOrEqual(2 * messages.length);
    // Upstream: sum over each partition's 1000 messages of the copy so far, ~1.5 million.
    expect(steps(original, messages)).toBeGreaterThan(100 * messages.length);
  });

  it('allocates no buffer per record: a logarithmic number per batch and request', async () => {
    const records = 4000;
    const topics = [0, 1, 2].map((t) => ({ topic: `topic-${t}`, messages: ordoMessages(records / 4, 3) })).concat({ topic: 'topic-3', messages: ordoMessages(records / 4, 1) });
    const allocations = async (k: KafkajsInternals): Promise<number> => {
      const spies = [vi.spyOn(Buffer, 'alloc'), vi.spyOn(Buffer, 'allocUnsafe'), vi.spyOn(Buffer, 'allocUnsafeSlow'), vi.spyOn(Buffer, 'from')];
      try {
        await encodeProduce(k, topics, 3);
        return spies.reduce((sum, spy) => sum + spy.mock.calls.length, 0);
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    };
    // Records are written into their batch's encoder: per partition, topic and request a few
    // encoders, whose growth doubles (logarithmic in their size), none per record.
    // (190 for these 4,000 records in 10 batches.)
    expect(await allocations(patched)).toBeLessThanOrEqual(records / 10);
    // Upstream: a zero-filled 512-byte encoder per record and per header, a Buffer per varint.
    expect(await allocations(original)).toBeGreaterThan(5 * records);
  });

  describe('a transaction started while the coordinator completes the previous one', () => {
    const concurrent = (k: KafkajsInternals): Error => k.createErrorFromCode(51);

    /** An eosManager whose coordinator refuses AddPartitionsToTxn with `errors` first, then accepts. */
    async function transaction(k: KafkajsInternals, errors: Error[]): Promise<{ eos: EosManager; calls: () => number }> {
      let calls = 0;
      const coordinator = {
        initProducerId: () => Promise.resolve({ producerId: 1, producerEpoch: 0 }),
        addPartitionsToTxn: () => {
          const error = errors[calls++];
          return error ? Promise.reject(error) : Promise.resolve({ errors: [] });
        },
      };
      const cluster = {
        retry: { retries: 0 },
        refreshMetadataIfNecessary: () => Promise.resolve(),
        findGroupCoordinator: () => Promise.resolve(coordinator),
      };
      const noop = (): void => undefined;
      const logger = { debug: noop, info: noop, warn: noop, error: noop, namespace: () => logger };
      const eos = k.createEosManager({ logger, cluster, transactional: true, transactionalId: 'tx-1' });
      await eos.initProducerId();
      eos.beginTransaction();
      return { eos, calls: () => calls };
    }
    const topicData = [{ topic: 'out', partitions: [{ partition: 0 }] }];

    it('retries AddPartitionsToTxn itself after a short backoff, so the send goes on', async () => {
      vi.useFakeTimers();
      const { eos, calls } = await transaction(patched, [concurrent(patched), concurrent(patched)]);
      const added = eos.addPartitionsToTransaction(topicData);
      await vi.advanceTimersByTimeAsync(2 + 4);
      await expect(added).resolves.toBeUndefined();
      expect(calls()).toBe(3);

      // Upstream hands the refusal to sendMessages' retrier (ERROR log, metadata refresh, backoff).
      const before = await transaction(original, [concurrent(original)]);
      await expect(before.eos.addPartitionsToTransaction(topicData)).rejects.toMatchObject({ type: 'CONCURRENT_TRANSACTIONS' });
    });

    it('adds all partitions of a send in one request, not one per leader broker in parallel', async () => {
      // Partition 0 of each topic is led by broker 1, partition 1 by broker 2: kafkajs sends
      // one produce request per leader, in parallel.
      const send = async (k: KafkajsInternals): Promise<{ requests: number; mostInFlight: number; added: string[] }> => {
        let requests = 0;
        let inFlight = 0;
        let mostInFlight = 0;
        const added: string[] = [];
        const coordinator = {
          initProducerId: () => Promise.resolve({ producerId: 1, producerEpoch: 0 }),
          addPartitionsToTxn: async ({ topics }: { topics: { topic: string; partitions: number[] }[] }) => {
            requests++;
            inFlight++;
            mostInFlight = Math.max(mostInFlight, inFlight);
            for (const { topic, partitions } of topics) for (const p of partitions) added.push(`${topic}/${p}`);
            await new Promise((resolve) => setTimeout(resolve, 5));
            inFlight--;
            return { errors: [] };
          },
        };
        const broker = (nodeId: number) => ({
          nodeId,
          produce: ({ topicData }: { topicData: { topic: string; partitions: { partition: number }[] }[] }) =>
            Promise.resolve({ topics: topicData.map(({ topic, partitions }) => ({ topicName: topic, partitions: partitions.map(({ partition }) => ({ partition, errorCode: 0, baseOffset: '0' })) })) }),
        });
        const brokers = new Map([1, 2].map((id) => [id, broker(id)]));
        const metadata = [
          { partitionId: 0, leader: 1 },
          { partitionId: 1, leader: 2 },
        ];
        const cluster = {
          retry: { retries: 0 },
          refreshMetadataIfNecessary: () => Promise.resolve(),
          addMultipleTargetTopics: () => Promise.resolve(),
          isConnected: () => true,
          findGroupCoordinator: () => Promise.resolve(coordinator),
          findTopicPartitionMetadata: () => metadata,
          findLeaderForPartitions: (_topic: string, partitions: string[]) => {
            const byLeader: Record<number, number[]> = {};
            for (const p of partitions.map(Number)) (byLeader[metadata[p]!.leader] ??= []).push(p);
            return byLeader;
          },
          findBroker: ({ nodeId }: { nodeId: string }) => Promise.resolve(brokers.get(Number(nodeId))),
        };
        const noop = (): void => undefined;
        const logger = { debug: noop, info: noop, warn: noop, error: noop, namespace: () => logger };
        const eosManager = k.createEosManager({ logger, cluster, transactional: true, transactionalId: 'tx-1' });
        await eosManager.initProducerId();
        eosManager.beginTransaction();
        const sendMessages = k.createSendMessages({ logger, cluster, partitioner: ({ message }: { message: ProducedMessage }) => message.partition, eosManager, retrier: k.createRetry({ retries: 0 }) });
        const acked = await sendMessages({ acks: -1, timeout: 1_000, topicMessages: ['a', 'b'].map((topic) => ({ topic, messages: ordoMessages(10, 2) })) });
        expect(acked).toHaveLength(4);
        return { requests, mostInFlight, added: added.sort() };
      };
      const mine = await send(patched);
      expect(mine.added).toEqual(['a/0', 'a/1', 'b/0', 'b/1']);
      expect(mine.requests).toBe(1);
      // Upstream: one AddPartitionsToTxn per leader, both in flight at once.
      const before = await send(original);
      expect(before.added).toEqual(['a/0', 'a/1', 'b/0', 'b/1']);
      expect(before.requests).toBe(2);
      expect(before.mostInFlight).toBe(2);
    });

    it('gives the refusal to the caller as before once its 2 s budget is spent, and never retries another error', async () => {
      vi.useFakeTimers();
      const always = await transaction(patched, Array.from({ length: 100 }, () => concurrent(patched)));
      const added = always.eos.addPartitionsToTransaction(topicData);
      const outcome = expect(added).rejects.toMatchObject({ type: 'CONCURRENT_TRANSACTIONS' });
      await vi.advanceTimersByTimeAsync(2_200);
      await outcome;
      // Backoffs 2, 4, ..., 64 ms, then 100 ms each: the 26th refusal comes after 2,026 ms.
      expect(always.calls()).toBe(26);

      const fenced = await transaction(patched, [patched.createErrorFromCode(47)]); // INVALID_PRODUCER_EPOCH
      await expect(fenced.eos.addPartitionsToTransaction(topicData)).rejects.toMatchObject({ type: 'INVALID_PRODUCER_EPOCH' });
      expect(fenced.calls()).toBe(1);
    });
  });
});

describe('installation', () => {
  it('applies the patch on npm ci (postinstall), in the image too', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; devDependencies: Record<string, string> };
    expect(pkg.scripts.postinstall).toMatch(/^patch-package --error-on-fail$/);
    expect(pkg.devDependencies['patch-package']).toBeDefined();
    // The stage whose node_modules the image runs with applies patches/: explicitly, or
    // through npm ci's postinstall (not with --ignore-scripts, nor --omit=dev: no patch-package).
    const instructions = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').split('\n').filter((line) => !line.trimStart().startsWith('#'));
    const text = instructions.join('\n');
    const shipped = /^COPY --from=(\S+) \/app\/node_modules/m.exec(text)?.[1];
    expect(shipped, 'the runtime stage copies node_modules from a stage').toBeDefined();
    const stage = text.split(/^FROM /m).find((s) => new RegExp(`AS ${shipped}\\b`).test(s.split('\n')[0]!))!;
    const copies = stage.indexOf('COPY patches');
    expect(copies, `${shipped}: copies patches/`).toBeGreaterThan(-1);
    const applies = stage.search(/^RUN .*(npx patch-package --error-on-fail|npm ci(?![^\n&]*--(ignore-scripts|omit=dev)))/m);
    expect(applies, `${shipped}: applies the patch after copying it`).toBeGreaterThan(copies);
    expect(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n')).toContain('!patches');
  });
});
