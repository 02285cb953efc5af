import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AcceptedEvent,
  HybridClock,
  OrdoIngestClient,
  consistencyTokens,
  decodeConsistencyToken,
  formatServiceTime,
  parseServiceTime,
  receivedTimeContext,
  sendWithConsistencyToken,
  serviceTimeMiddleware,
  stampRecord,
  withServiceTime,
  withServiceTimeHandler,
} from '../../src/client/index.js';
import type { OrdoConfig } from '../../src/config/config.js';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type IngestRole, startIngestRole } from '../../src/roles/ingest.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, header, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { type LocalServer, json, listen } from '../support/local-http.js';
import { startPipeline, testConfig } from '../support/worker.js';

// Three services over real HTTP on 127.0.0.1, each with the SDK's middleware and its own
// hybrid clock on a skewed wall clock: A -> B -> C. A writes its usage event to Kafka
// itself (stampRecord, a token from its record metadata); B and C post theirs to the real
// ingest role with OrdoIngestClient. The pipeline then orders each subject's three events
// A, B, C: the service-time protocol carried causality across the hops, even though B's
// wall clock runs 450 ms behind A's.

const kafka = testKafka();
const prefix = uniqueName('it-client-chain');
const SUBJECTS = ['acme', 'globex', 'initech'];

/** A service whose wall clock is off by `skewMs`; the pipeline's bound (500 ms) applies. */
function serviceClock(node: string, skewMs: number): HybridClock {
  return new HybridClock({ node, physical: { now: () => Date.now() + skewMs } });
}

const clockA = serviceClock('svc-a', 250);
const clockB = serviceClock('svc-b', -200);
const clockC = serviceClock('svc-c', 100);

let config: OrdoConfig;
let ingest: IngestRole;
let producer: Producer;
let encode: Awaited<ReturnType<typeof usageEventEncoder>>;
const servers: LocalServer[] = [];
const pipelines: { worker: Worker }[] = [];
const clients: OrdoIngestClient[] = [];

/** What each hop reports back up the chain. */
interface ChainAnswer {
  a: { id: string; token: string; serviceTime: string };
  b: AcceptedEvent;
  c: AcceptedEvent;
  /** The service-time B received from A, and C from B (each service's middleware read it). */
  atB: string;
  atC: string;
}

const event = (id: string, source: string, subject: string) => ({ id, source, type: 'api.request', subject, data: { value: '1', dimensions: { hop: source } } });

beforeAll(async () => {
  config = testConfig(prefix, { ORDO_NODE_ID: 'ingest-chain', ORDO_REORDER_WINDOW_MS: '200' });
  await createTopics(kafka, [config.topics.input], 3);
  ingest = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics() });
  const ingestUrl = `http://127.0.0.1:${ingest.port}`;
  encode = await usageEventEncoder(config.topics.input);
  producer = kafka.producer({ idempotent: true });
  await producer.connect();

  // C: posts its event through the ingest client, with its clock.
  const clientC = new OrdoIngestClient({ url: ingestUrl, clock: clockC });
  clients.push(clientC);
  const c = await listen(
    withServiceTimeHandler(clockC, async (req, res) => {
      const subject = new URL(req.url!, 'http://x').searchParams.get('subject')!;
      const { events } = await clientC.send(event(`c-${subject}`, 'svc-c', subject));
      json(res, 200, { c: events[0], atC: formatServiceTime(receivedTimeContext(req)!.time) });
    }),
  );

  // B: an Express-style (req, res, next) chain: posts its event, then calls C.
  const clientB = new OrdoIngestClient({ url: ingestUrl, clock: clockB });
  clients.push(clientB);
  const fetchB = withServiceTime(fetch, clockB);
  const middlewareB = serviceTimeMiddleware(clockB);
  const handleB = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const subject = new URL(req.url!, 'http://x').searchParams.get('subject')!;
    const b = (await clientB.send(event(`b-${subject}`, 'svc-b', subject))).events[0]!;
    const fromC = (await (await fetchB(`${c.url}/?subject=${subject}`)).json()) as Pick<ChainAnswer, 'c' | 'atC'>;
    json(res, 200, { ...fromC, b, atB: formatServiceTime(receivedTimeContext(req)!.time) });
  };
  const b = await listen((req, res) => middlewareB(req, res, (error) => (error ? json(res, 500, { error: (error as Error).message }) : void handleB(req, res))));

  // A: writes its event to Kafka itself, then calls B.
  const fetchA = withServiceTime(fetch, clockA);
  const a = await listen(
    withServiceTimeHandler(clockA, async (req, res) => {
      const subject = new URL(req.url!, 'http://x').searchParams.get('subject')!;
      const message = stampRecord(clockA, { key: subject, value: encode({ ...event(`a-${subject}`, 'svc-a', subject), time: Date.now(), value: '1', dimensions: { hop: 'svc-a' } }) });
      const written = await sendWithConsistencyToken(producer, config.topics.input, message, { acks: -1 });
      const fromB = (await (await fetchA(`${b.url}/?subject=${subject}`)).json()) as Omit<ChainAnswer, 'a'>;
      json(res, 200, { ...fromB, a: { id: `a-${subject}`, token: written.token, serviceTime: message.headers['service-time'] } });
    }),
  );
  servers.push(c, b, a);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(pipelines.map((p) => p.worker.stop()));
  await producer?.disconnect();
  await ingest?.stop();
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('A -> B -> C over HTTP with the SDK, C posting to the ingest role', () => {
  it("orders C's event after A's and B's for the same subject: origin service times rise along the chain", async () => {
    const [, , a] = servers;
    const answers = new Map<string, ChainAnswer>();
    for (const subject of SUBJECTS) {
      const response = await fetch(`${a!.url}/?subject=${subject}`);
      expect(response.status).toBe(200);
      const answer = (await response.json()) as ChainAnswer;
      answers.set(subject, answer);
      // A's event < what B received < B's event (the ingest's stamp) < what C received < C's event.
      const chain = [answer.a.serviceTime, answer.atB, answer.b.serviceTime, answer.atC, answer.c.serviceTime].map(parseServiceTime);
      for (let i = 1; i < chain.length; i += 1) expect(chain[i]!, `hop ${i}`).toBeGreaterThan(chain[i - 1]!);
      const cTime = chain[4]!;
      // The answer to the user carries A's stamp at the end of the chain: above all of it.
      expect(parseServiceTime(response.headers.get('service-time')!)).toBeGreaterThan(cTime);
      expect(response.headers.get('service-node')).toBe('svc-a');
    }
    // A's clock learned everything the chain did through the answers' service-time headers.
    expect(clockA.last).toBeGreaterThan(parseServiceTime(answers.get(SUBJECTS.at(-1)!)!.c.serviceTime));

    // The input topic holds each event where its token says.
    const input = await readAll(kafka, config.topics.input, SUBJECTS.length * 3, { settleMs: 300 });
    const at = new Map(input.map((r) => [`${r.partition}/${r.offset}`, r]));
    for (const answer of answers.values()) {
      for (const [id, token] of [
        [answer.a.id, answer.a.token],
        [answer.b.id, answer.b.token],
        [answer.c.id, answer.c.token],
      ] as const) {
        const position = decodeConsistencyToken(token);
        expect(position.topic).toBe(config.topics.input);
        expect(decodeEvent(at.get(`${position.partition}/${position.offset}`)!.value).id).toBe(id);
      }
    }

    // The pipeline orders them: per subject A, B, C, with origin service times rising.
    pipelines.push(await startPipeline(config));
    const ordered = await readAll(kafka, config.topics.ordered, SUBJECTS.length * 3, { settleMs: 500 });
    expect(ordered).toHaveLength(SUBJECTS.length * 3);
    for (const subject of SUBJECTS) {
      const records = ordered.filter((r) => r.key?.toString() === subject).sort((x, y) => Number(BigInt(x.offset) - BigInt(y.offset)));
      expect(records.map((r) => decodeEvent(r.value).id)).toEqual([`a-${subject}`, `b-${subject}`, `c-${subject}`]);
      expect(records.map((r) => header(r, 'ordo-seq'))).toEqual(['1', '2', '3']);
      const origins = records.map((r) => parseServiceTime(header(r, 'origin-service-time')!));
      expect(origins[1]!).toBeGreaterThan(origins[0]!);
      expect(origins[2]!).toBeGreaterThan(origins[1]!);
      const answer = answers.get(subject)!;
      // A's origin is A's own stamp; B's and C's are the ingest's stamps on receipt, above what B and C sent.
      expect(records.map((r) => header(r, 'origin-service-node'))).toEqual(['svc-a', 'ingest-chain', 'ingest-chain']);
      expect(origins.map((t) => t.toString(16).padStart(16, '0'))).toEqual([answer.a.serviceTime, answer.b.serviceTime, answer.c.serviceTime]);
    }
  });
});

describe('consistency tokens from a real kafkajs producer', () => {
  it('tokens from a multi-message send name the LAST message of each partition, not the baseOffset the broker answered', async () => {
    const topic = `${prefix}-tokens`;
    await createTopics(kafka, [topic], 2);
    await producer.send({ topic, messages: [{ partition: 0, value: 'warm-up' }], acks: -1 }); // so baseOffset is not 0
    const record = { topic, messages: [0, 0, 1, 0, 1].map((partition, i) => ({ partition, value: `m${i}` })) };
    const metadata = await producer.send({ ...record, acks: -1 });
    const tokens = consistencyTokens(record, metadata);
    const records = await readAll(kafka, topic, 6, { settleMs: 300 });
    for (const partition of [0, 1]) {
      const last = records.filter((r) => r.partition === partition).at(-1)!;
      const token = tokens.find((t) => t.position.partition === partition)!;
      expect(token.position.offset).toBe(last.offset);
      expect(last.value?.toString()).toBe(partition === 0 ? 'm3' : 'm4');
      // The broker's baseOffset named the first message of the send in that partition.
      const base = metadata.find((m) => m.partition === partition)!.baseOffset!;
      expect(BigInt(token.position.offset) - BigInt(base)).toBe(partition === 0 ? 2n : 1n);
    }
  });
});

describe('OrdoIngestClient batching against the real ingest role', () => {
  it('an invalid event is refused alone; the rest of its batch is written, once, where the tokens say', async () => {
    const client = new OrdoIngestClient({ url: `http://127.0.0.1:${ingest.port}`, maxBatchEvents: 10, maxDelayMs: 10_000 });
    clients.push(client);
    const subject = 'batch-subject';
    const promises = Array.from({ length: 25 }, (_, i) =>
      client.enqueue({ id: `batch-${i}`, source: '//batch', type: 'api.request', subject, data: { value: i === 13 ? '1e3' : String(i) } }),
    );
    const flushed = await client.flush().catch((error: unknown) => error);
    expect(flushed).toMatchObject({ status: 400, kind: 'invalid-value', items: [{ id: 'batch-13', kind: 'invalid-value' }] });
    const results = await Promise.allSettled(promises);
    expect(results.map((r) => r.status)).toEqual(results.map((_r, i) => (i === 13 ? 'rejected' : 'fulfilled')));
    const accepted = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const input = await readAll(kafka, config.topics.input, SUBJECTS.length * 3 + accepted.length, { settleMs: 500 });
    const written = input.map((r) => ({ r, event: decodeEvent(r.value) })).filter(({ event }) => event.source === '//batch');
    expect(written.map(({ event }) => event.id).sort()).toEqual(accepted.map((a) => a.id).sort());
    for (const a of accepted) {
      const { partition, offset } = decodeConsistencyToken(a.token);
      expect(written.find(({ r }) => r.partition === partition && r.offset === offset)?.event.id).toBe(a.id);
    }
  });
});
