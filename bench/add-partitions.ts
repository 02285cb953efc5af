// How often a transaction's first AddPartitionsToTxn is refused with CONCURRENT_TRANSACTIONS
// and retried, and what a transaction costs, with the patched kafkajs and with upstream, in one
// run: `npx tsx bench/add-partitions.ts` (needs the local broker; KAFKA_BROKERS as for Ordo).
//
// Each client runs back-to-back transactions the way Ordo's engine writes a batch
// (src/engine/transaction.ts): one transactional producer (idempotent, 1 in flight), per
// transaction one sendBatch of ADD_PARTITIONS_RECORDS records over three topics to one
// partition, sendOffsets for a consumer group, commit. Retries are counted from the requests
// the client sends (its request instrumentation event): AddPartitionsToTxn requests beyond one
// per transaction, and Metadata requests. Not a test: nothing is asserted.
import { randomBytes } from 'node:crypto';
import type { Kafka as KafkaClass, KafkaConfig, LogEntry } from 'kafkajs';
import { installedKafkajs, requireFrom, upstreamKafkajs } from './kafkajs-upstream.js';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const transactions = Number(process.env.ADD_PARTITIONS_TRANSACTIONS ?? 200);
const records = Number(process.env.ADD_PARTITIONS_RECORDS ?? 1250);
const rounds = Number(process.env.ADD_PARTITIONS_ROUNDS ?? 2);

interface Figures {
  transactions: number;
  addPartitionsRequests: number;
  metadataRequests: number;
  concurrentErrorLogs: number;
  msPerTransaction: number;
}

type KafkaModule = { Kafka: new (config: KafkaConfig) => KafkaClass; logLevel: { ERROR: number } };

async function run(kafkajs: KafkaModule, label: string, topics: string[]): Promise<Figures> {
  let concurrentErrorLogs = 0;
  const kafka = new kafkajs.Kafka({
    brokers,
    clientId: `add-partitions-${label}`,
    logLevel: kafkajs.logLevel.ERROR,
    retry: { initialRetryTime: 100, retries: 8 },
    logCreator: () => (entry: LogEntry) => {
      if (/concurrent operation/i.test(String(entry.log.message))) concurrentErrorLogs++;
    },
  });
  const id = `add-partitions-${label}-${randomBytes(3).toString('hex')}`;
  const producer = kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
  let addPartitionsRequests = 0;
  let metadataRequests = 0;
  producer.on(producer.events.REQUEST, (event: { payload: { apiName: string } }) => {
    if (event.payload.apiName === 'AddPartitionsToTxn') addPartitionsRequests++;
    if (event.payload.apiName === 'Metadata') metadataRequests++;
  });
  await producer.connect();
  const value = randomBytes(180);
  const messages = (i: number) => ({
    key: `cust-${i % 1000}`,
    value,
    partition: 0,
    headers: { 'service-time': '0001900000000000', 'service-node': 'node-1', 'ordo-seq': String(i) },
  });
  // Warm-up transaction (not counted): connections, producer id, JIT.
  const once = async (n: number): Promise<void> => {
    const tx = await producer.transaction();
    const per = Math.ceil(records / topics.length);
    await tx.sendBatch({ acks: -1, topicMessages: topics.map((topic, t) => ({ topic, messages: Array.from({ length: per }, (_, i) => messages(n * records + t * per + i)) })) });
    await tx.sendOffsets({ consumerGroupId: id, topics: [{ topic: topics[0]!, partitions: [{ partition: 0, offset: String(n + 1) }] }] });
    await tx.commit();
  };
  await once(0);
  addPartitionsRequests = 0;
  metadataRequests = 0;
  concurrentErrorLogs = 0;
  const started = performance.now();
  for (let n = 1; n <= transactions; n++) await once(n);
  const ms = performance.now() - started;
  await producer.disconnect();
  return { transactions, addPartitionsRequests, metadataRequests, concurrentErrorLogs, msPerTransaction: ms / transactions };
}

async function main(): Promise<void> {
  const upstream = upstreamKafkajs();
  const patched = requireFrom(installedKafkajs())('index.js') as KafkaModule;
  const admin = new patched.Kafka({ brokers, logLevel: 0 }).admin();
  const topics = ['out', 'changelog-a', 'changelog-b'].map((t) => `add-partitions-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}-${t}`);
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 1 })), waitForLeaders: true });
    const clients: [string, KafkaModule][] = [
      ['patched', patched],
      ['upstream', requireFrom(upstream.dir)('index.js') as KafkaModule],
    ];
    console.log(`${transactions} transactions of ${records} records over ${topics.length} topics, ${rounds} round(s), brokers ${brokers.join(',')}`);
    console.log('client     round   AddPartitionsToTxn   retries   Metadata   "concurrent" error logs   ms/transaction');
    for (let round = 1; round <= rounds; round++) {
      for (const [label, kafkajs] of clients) {
        const f = await run(kafkajs, label, topics);
        const retries = f.addPartitionsRequests - f.transactions;
        console.log(
          `${label.padEnd(9)} ${String(round).padStart(6)} ${String(f.addPartitionsRequests).padStart(20)} ${String(retries).padStart(9)} ${String(f.metadataRequests).padStart(10)} ${String(f.concurrentErrorLogs).padStart(25)} ${f.msPerTransaction.toFixed(1).padStart(16)}`,
        );
      }
    }
  } finally {
    await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
    upstream.remove();
  }
}

await main();
