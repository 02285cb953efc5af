// CPU cost per record of kafkajs' produce path up to the bytes on the wire — grouping a send's
// messages per partition, encoding records, record batches and the produce request — with the
// patched kafkajs and with upstream (the patch reverse-applied in a temporary copy), in one
// process: `npx tsx bench/encode.ts`. No broker. Not a test: nothing is asserted.
//
// A send is what Ordo's engine hands to `transaction.sendBatch` (src/engine/transaction.ts):
// ENCODE_RECORDS records spread over three topics, all to the task's partition, each with a
// subject key, an Avro-sized value and Ordo's headers. ENCODE_SIZES lists the send sizes
// (default 1250, ~ one pipeline transaction, and 10000, where upstream's quadratic grouping
// shows); ENCODE_ROUNDS rounds alternate the two clients; the median is reported.
import { installedKafkajs, kafkajsInternals, upstreamKafkajs, type KafkajsInternals } from './kafkajs-upstream.js';

interface Message {
  key: string;
  value: Buffer;
  partition: number;
  headers: Record<string, string>;
}

const sizes = (process.env.ENCODE_SIZES ?? '1250,10000').split(',').map(Number);
const rounds = Number(process.env.ENCODE_ROUNDS ?? 7);
for (const n of [...sizes, rounds]) if (!Number.isInteger(n) || n < 1) throw new Error('ENCODE_SIZES and ENCODE_ROUNDS: whole numbers >= 1');
const TOPICS = ['usage-events-ordered', 'ordo-dedupe-changelog', 'ordo-order-changelog'];

function messages(n: number): Message[] {
  const value = Buffer.alloc(190, 1);
  return Array.from({ length: n }, (_, i) => ({
    key: `cust-${i % 1000}`,
    value,
    partition: 0,
    headers: { 'service-time': (0x1900000000000n + BigInt(i)).toString(16).padStart(16, '0'), 'service-node': 'ordo-node-1', 'ordo-seq': String(i) },
  }));
}

/** One send as sendMessages builds it, encoded to the request bytes; returns its size. */
async function send(client: KafkajsInternals, all: Message[]): Promise<number> {
  const partitionMetadata = [{ partitionId: 0, leader: 0 }];
  const per = Math.ceil(all.length / TOPICS.length);
  const topicData = TOPICS.map((topic, t) => {
    const grouped = client.groupMessagesPerPartition({ topic, partitionMetadata, messages: all.slice(t * per, (t + 1) * per), partitioner: ({ message }) => message.partition ?? 0 });
    return { topic, partitions: Object.keys(grouped).map((p) => ({ partition: Number(p), firstSequence: 0, messages: grouped[p] })) };
  });
  const produce = client.produceRequest({ acks: -1, timeout: 30_000, transactionalId: 'ordo-group-usage-events-0', producerId: client.Long.fromValue(1000), producerEpoch: 0, topicData });
  const encoded = await client.request({ correlationId: 1, clientId: 'ordo', request: produce });
  return encoded.size();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const upstream = upstreamKafkajs();
try {
  const clients: [string, KafkajsInternals][] = [
    ['patched', kafkajsInternals(installedKafkajs())],
    ['upstream', kafkajsInternals(upstream.dir)],
  ];
  console.log(`kafkajs produce encoding, ${TOPICS.length} topics x 1 partition, median of ${rounds} rounds (node ${process.version})`);
  console.log('records/send   patched µs/record   upstream µs/record   upstream / patched   request bytes');
  for (const n of sizes) {
    const batch = messages(n);
    const times = new Map<string, number[]>(clients.map(([name]) => [name, []]));
    let bytes = new Map<string, number>();
    // Enough sends per measurement for ~100k records, at least one; a warm-up round first.
    const repeat = Math.max(1, Math.round(100_000 / n));
    for (let round = 0; round <= rounds; round++) {
      for (const [name, client] of round % 2 === 0 ? clients : [...clients].reverse()) {
        const started = performance.now();
        let size = 0;
        for (let i = 0; i < repeat; i++) size = await send(client, batch);
        const perRecordUs = ((performance.now() - started) * 1000) / (repeat * n);
        if (round > 0) times.get(name)!.push(perRecordUs);
        bytes = bytes.set(name, size);
      }
    }
    if (bytes.get('patched') !== bytes.get('upstream')) throw new Error(`request sizes differ: ${JSON.stringify([...bytes])}`);
    const p = median(times.get('patched')!);
    const u = median(times.get('upstream')!);
    console.log(`${String(n).padStart(12)} ${p.toFixed(2).padStart(19)} ${u.toFixed(2).padStart(20)} ${(u / p).toFixed(2).padStart(20)} ${String(bytes.get('patched')).padStart(15)}`);
  }
} finally {
  upstream.remove();
}
