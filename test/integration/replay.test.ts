import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { formatServiceTime, makeServiceTime } from '../../src/clock/service-time.js';
import type { Worker } from '../../src/engine/worker.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { DeadLetterSource } from '../../src/replay/dead-letter-source.js';
import { LetterCodec } from '../../src/replay/letter-codec.js';
import { ReplaySet } from '../../src/replay/replay-record.js';
import { ReplayService } from '../../src/replay/replay-service.js';
import { ReplayWriter } from '../../src/replay/replay-writer.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { REGISTRY_URL, type ReadRecord, createTopics, decodeEvent, deleteTopicsWithPrefix, header, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { utcWindow } from '../support/usage-oracle.js';
import { writeTestMeters } from '../support/usage-workload.js';
import { startPipeline, testConfig } from '../support/worker.js';

/**
 * Dead-letter replay through the real pipeline and the real api role: letters are made by
 * the pipeline itself (a bad value, a clock ahead, bytes that do not decode), replayed over
 * HTTP, and the aggregates count each replayed event exactly once.
 */
const kafka = testKafka();
const DAY = 86_400_000;
const prefix = uniqueName('replay');
// A small skew bound: an event whose service time is 3 s ahead is dead-lettered `clock-skew`, and replayable unchanged 3 s later.
const config = testConfig(prefix, { ORDO_METERS_FILE: writeTestMeters(), ORDO_MAX_SKEW_MS: '200', ORDO_REORDER_WINDOW_MS: '200' });
const started = Date.now();
let producer: Producer;
let worker: Worker | undefined;
let api: ApiRole | undefined;
const apiMetrics = new OrdoMetrics();
let encode: (event: UsageEvent) => Buffer;
let letters: ReadRecord[] = [];
/** The service time (ms) of the clock-skew letters: from then on they are replayable unchanged. */
let aheadMs = 0;
/** How many of the two racing replays were written (1 or 2), and whether `api`'s was. */
let raceWinners = 0;
let apiRaceReplays = 0;

const event = (id: string, subject: string, value: string): UsageEvent => ({ id, source: 'replay-test', type: 'api.request', subject, time: started, value, dimensions: { user: 'u-1', region: 'eu' } });

async function call(role: ApiRole, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
  const res = await fetch(`http://127.0.0.1:${role.port}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
}

/** api-spend (SUM) of `subject` today, consistent with `tokens`. */
async function spend(subject: string, tokens: string[] = []): Promise<{ value: string; count: number }[]> {
  const params = new URLSearchParams({ subject, from: new Date(utcWindow(started - DAY, 'DAY').start).toISOString(), to: new Date(utcWindow(started + DAY, 'DAY').end).toISOString() });
  for (const token of tokens) params.append('consistentWith', token);
  const answer = await call(api!, 'GET', `/v1/meters/api-spend/usage?${params.toString()}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return (answer.body.totals as { value: string; count: number }[]).map((t) => ({ value: t.value, count: t.count }));
}

function letterOf(id: string): ReadRecord {
  const found = letters.find((l) => l.value !== null && l.value.length > 5 && l.value[0] === 0 && decodeEvent(l.value).id === id);
  if (found === undefined) throw new Error(`no letter for ${id}`);
  return found;
}

/** A replay service over its own producer and an empty set of replays: a replica that has not read the replays topic. */
async function staleReplica(node: string): Promise<{ service: ReplayService; stop(): Promise<void> }> {
  const logger = noopLogger;
  const source = new DeadLetterSource({ kafka, topic: config.topics.dlq, group: `${config.groupId}-${node}`, logger });
  const writer = new ReplayWriter({ kafka, inputTopic: config.topics.input, replaysTopic: config.topics.replays, transactionalId: `${config.groupId}-${node}-replay`, logger });
  await writer.start();
  const service = new ReplayService({ source, writer, replays: new ReplaySet(), codec: new LetterCodec(new SchemaCatalog(REGISTRY_URL), config.topics.input), inputTopic: config.topics.input, ready: () => true, logger });
  return {
    service,
    stop: async () => {
      await source.stop();
      await writer.stop();
    },
  };
}

const range = () => ({ from: new Date(started - 60_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() });

async function counter(outcome: string): Promise<number> {
  const values = (await apiMetrics.registry.getSingleMetric('ordo_dlq_replays_total')?.get())?.values ?? [];
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('dead-letter replay', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [config.topics.input], 2);
    encode = await usageEventEncoder(config.topics.input);
    ({ worker } = await startPipeline(config));
    // An ephemeral port each: a replica advertises the one it bound (the two share the read side's partitions).
    api = await startApiRole({ ...config, apiPort: 0, apiHost: '127.0.0.1', apiReads: { ...config.apiReads, advertisedUrl: 'http://127.0.0.1:0' } }, { logger: noopLogger, metrics: apiMetrics });
    await api.caughtUp();
    aheadMs = Date.now() + 3_000;
    const ahead = formatServiceTime(makeServiceTime(aheadMs, 0));
    await producer.send({
      topic: config.topics.input,
      acks: -1,
      messages: [
        { key: 'acme', value: encode(event('ok-1', 'acme', '5')) },
        // invalid-value: not a plain decimal
        { key: 'acme', value: encode(event('bad-1', 'acme', '12,5')), headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } },
        { key: 'hooli', value: encode(event('bad-2', 'hooli', 'seven')) },
        // clock-skew: a service time 3 s ahead
        ...['skew-1', 'skew-2', 'skew-3'].map((id) => ({ key: 'globex', value: encode(event(id, 'globex', '1')), headers: { 'service-time': ahead, 'service-node': 'upstream' } })),
        // undecodable
        { key: 'initech', value: Buffer.from('not an Avro record') },
      ],
    });
    letters = await readAll(kafka, config.topics.dlq, 6, { timeoutMs: 60_000, settleMs: 500 });
    expect(letters.map((l) => header(l, 'ordo-dlq-reason')).sort()).toEqual(['clock-skew', 'clock-skew', 'clock-skew', 'invalid-value', 'invalid-value', 'undecodable']);
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await worker?.stop();
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('replays a letter with a corrected value: counted exactly once; a second replay answers 409', async () => {
    expect(await spend('acme')).toEqual([{ value: '5', count: 1 }]);
    const letter = letterOf('bad-1');
    const path = `/v1/dead-letters/${letter.partition}/${letter.offset}/replay`;

    const bad = await call(api!, 'POST', path, { value: { value: 'twelve' } });
    expect([bad.status, (bad.body.error as { kind: string }).kind, (bad.body.error as { reason: string }).reason]).toEqual([400, 'invalid-event', 'invalid-value']);
    const renamed = await call(api!, 'POST', path, { value: { id: 'other', value: '12' } });
    expect([renamed.status, (renamed.body.error as { kind: string }).kind]).toEqual([400, 'identity-changed']);
    const notJson = await call(api!, 'POST', path, '{"value":');
    expect([notJson.status, (notJson.body.error as { kind: string }).kind]).toEqual([400, 'bad-body']);

    const first = await call(api!, 'POST', path, { value: { value: '12.5' } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const replay = first.body.replay as { partition: number; offset: string; reason: string; corrected: boolean; by: string; input: { topic: string; partition: number; offset: string } };
    expect(replay).toMatchObject({ partition: letter.partition, offset: letter.offset, reason: 'invalid-value', corrected: true, by: 'anonymous' });
    expect(replay.input.topic).toBe(config.topics.input);
    expect((first.body.letter as { event: UsageEvent }).event.value).toBe('12,5');
    expect(await spend('acme', [first.body.consistencyToken as string])).toEqual([{ value: '17.5', count: 2 }]);

    const again = await call(api!, 'POST', path, { value: { value: '99' } });
    expect(again.status).toBe(409);
    const error = again.body.error as { kind: string; message: string; replay: typeof replay };
    expect(error.kind).toBe('already-replayed');
    expect(error.replay).toEqual(replay);
    expect(error.message).toContain(`partition ${replay.input.partition} offset ${replay.input.offset}`);

    // On the input: the original key and headers, without the DLQ's, naming the letter.
    const input = (await readAll(kafka, config.topics.input, 8, { settleMs: 500 })).filter((r) => r.partition === replay.input.partition && r.offset === replay.input.offset);
    expect(input).toHaveLength(1);
    expect(input[0]!.key?.toString()).toBe('acme');
    expect(Object.keys(input[0]!.headers ?? {}).sort()).toEqual(['ordo-replay-of', 'traceparent']);
    expect(header(input[0]!, 'ordo-replay-of')).toBe(`${letter.partition}/${letter.offset}`);
    expect(decodeEvent(input[0]!.value)).toEqual({ ...event('bad-1', 'acme', '12.5') });

    // Exactly once on the ordered topic too.
    const ordered = await readAll(kafka, config.topics.ordered, 2, { settleMs: 1_000 });
    expect(ordered.map((r) => decodeEvent(r.value).id).filter((id) => id === 'bad-1')).toHaveLength(1);
  }, 60_000);

  it('another replica knows it from the replays topic (409 there too); two replicas racing on one letter count it once', async () => {
    const letter = letterOf('bad-1');
    const other = await startApiRole({ ...config, nodeId: 'ordo-test-2', apiPort: 0, apiHost: '127.0.0.1', apiReads: { ...config.apiReads, advertisedUrl: 'http://127.0.0.1:0' } }, { logger: noopLogger, metrics: new OrdoMetrics() });
    try {
      await other.caughtUp();
      const answer = await call(other, 'POST', `/v1/dead-letters/${letter.partition}/${letter.offset}/replay`);
      expect(answer.status).toBe(409);
      expect((answer.body.error as { kind: string }).kind).toBe('already-replayed');

      // Both at once, with different corrections: each replica may not have read the other's
      // replay record yet, so both may write; the pipeline keeps the first (same source and id).
      const racing = letterOf('bad-2');
      const path = `/v1/dead-letters/${racing.partition}/${racing.offset}/replay`;
      const answers = await Promise.all([call(api!, 'POST', path, { value: { value: '7' } }), call(other, 'POST', path, { value: { value: '8' } })]);
      const statuses = answers.map((a) => a.status);
      raceWinners = answers.filter((a) => a.status === 200).length;
      console.info(`replay race: answers ${statuses.join(', ')}`);
      expect(statuses.every((s) => s === 200 || s === 409), JSON.stringify(answers)).toBe(true);
      expect(raceWinners).toBeGreaterThanOrEqual(1);
      apiRaceReplays = answers[0].status === 200 ? 1 : 0;
      const tokens = answers.filter((a) => a.status === 200).map((a) => a.body.consistencyToken as string);
      const totals = await spend('hooli', tokens);
      expect(totals).toHaveLength(1);
      expect(totals[0]!.count).toBe(1);
      expect(['7', '8']).toContain(totals[0]!.value);
      // A replica that has not read the replays topic at all writes it once more (what a
      // race won by both replicas does): the pipeline drops it as a duplicate.
      const stale = await staleReplica('stale');
      try {
        const third = await stale.service.replayOne({ partition: racing.partition, offset: racing.offset }, { value: { value: '9' } }, 'stale');
        expect(third.replay.corrected).toBe(true);
        expect(await spend('hooli', [...tokens, third.consistencyToken])).toEqual(totals);
        const copies = (await readAll(kafka, config.topics.input, 9, { settleMs: 500 })).filter((r) => r.value !== null && r.value[0] === 0 && decodeEvent(r.value).id === 'bad-2');
        expect(copies.length).toBe(1 + raceWinners + 1); // the original and every replay: all on the input, counted once
      } finally {
        await stale.stop();
      }
      // Whatever was written, once read by both replicas, answers 409 on both.
      for (const role of [api!, other]) {
        const deadline = Date.now() + 10_000;
        let again = await call(role, 'POST', path);
        while (again.status !== 409 && Date.now() < deadline) again = await call(role, 'POST', path);
        expect(again.status).toBe(409);
      }
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('bulk: a dry run counts, a replay replays the rest once, a second replay finds them replayed', async () => {
    const noValue = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'clock-skew', from: range().from, dryRun: true });
    expect([noValue.status, (noValue.body.error as { kind: string }).kind]).toEqual([400, 'unbounded-range']);

    const dry = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'clock-skew', ...range(), dryRun: true });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, matched: 3, alreadyReplayed: 0, toReplay: 3, limit: 10_000 });
    expect((dry.body.examples as { reason: string }[]).map((e) => e.reason)).toEqual(['clock-skew', 'clock-skew', 'clock-skew']);
    const dryValue = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'invalid-value', ...range(), dryRun: true });
    expect(dryValue.body).toMatchObject({ matched: 2, alreadyReplayed: 2, toReplay: 0 });
    expect(await spend('globex')).toEqual([]);

    // Their service time is now in the past: unchanged, they are accepted.
    while (Date.now() < aheadMs + 500) await new Promise((r) => setTimeout(r, 100));
    const bulk = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'clock-skew', ...range() });
    expect(bulk.status, JSON.stringify(bulk.body)).toBe(200);
    expect(bulk.body).toMatchObject({ dryRun: false, matched: 3, replayed: 3, alreadyReplayed: 0, complete: true });
    const deadline = Date.now() + 30_000;
    let totals = await spend('globex');
    while (totals[0]?.count !== 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      totals = await spend('globex');
    }
    expect(totals).toEqual([{ value: '3', count: 3 }]);

    const twice = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'clock-skew', ...range() });
    expect(twice.body).toMatchObject({ matched: 3, replayed: 0, alreadyReplayed: 3 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await spend('globex')).toEqual([{ value: '3', count: 3 }]);
    // None of them came back to the DLQ: the 6 letters are all there is.
    expect(await readAll(kafka, config.topics.dlq, 6, { settleMs: 500 })).toHaveLength(6);
  }, 60_000);

  it('lists letters by reason and range, with their replay', async () => {
    const all = await call(api!, 'GET', `/v1/dead-letters?${new URLSearchParams(range()).toString()}`);
    expect(all.status, JSON.stringify(all.body)).toBe(200);
    const listed = all.body.deadLetters as { reason: string; replay: unknown; event: UsageEvent | null; source: { topic: string } }[];
    expect(listed.map((l) => l.reason).sort()).toEqual(['clock-skew', 'clock-skew', 'clock-skew', 'invalid-value', 'invalid-value', 'undecodable']);
    expect(listed.filter((l) => l.replay !== null)).toHaveLength(5);
    expect(listed.find((l) => l.reason === 'undecodable')!.event).toBeNull();
    expect(listed.every((l) => l.source.topic === config.topics.input)).toBe(true);
    const one = await call(api!, 'GET', `/v1/dead-letters?${new URLSearchParams({ ...range(), reason: 'undecodable', limit: '1' }).toString()}`);
    expect(one.body).toMatchObject({ complete: true });
    expect((one.body.deadLetters as unknown[]).length).toBe(1);
  }, 30_000);

  it('bad input answers 4xx, never 5xx: unknown partition or offset, a marker, junk, an incomplete correction', async () => {
    const undecodable = letters.find((l) => header(l, 'ordo-dlq-reason') === 'undecodable')!;
    const highest = Math.max(...letters.filter((l) => l.partition === undecodable.partition).map((l) => Number(l.offset)));
    const cases: [string, unknown, number, string][] = [
      ['/v1/dead-letters/99/0/replay', undefined, 404, 'dead-letter-not-found'],
      [`/v1/dead-letters/${undecodable.partition}/100000/replay`, undefined, 404, 'dead-letter-not-found'],
      // The commit marker after the pipeline's last transaction on that partition: an offset, not a record.
      [`/v1/dead-letters/${undecodable.partition}/${highest + 1}/replay`, undefined, 404, 'dead-letter-not-found'],
      ['/v1/dead-letters/x/0/replay', undefined, 400, 'bad-parameter'],
      ['/v1/dead-letters/0/-1/replay', undefined, 400, 'bad-parameter'],
      ['/v1/dead-letters/0/99999999999999999999/replay', undefined, 400, 'bad-parameter'],
      [`/v1/dead-letters/${undecodable.partition}/${undecodable.offset}/replay`, { value: { value: '1' } }, 400, 'bad-body'],
      [`/v1/dead-letters/${undecodable.partition}/${undecodable.offset}/replay`, { value: { id: 'i', source: 's', type: 'api.request', subject: 'initech', time: started, value: '1e5', dimensions: {} } }, 400, 'invalid-event'],
      [`/v1/dead-letters/${undecodable.partition}/${undecodable.offset}/replay`, [1, 2], 400, 'bad-body'],
    ];
    for (const [path, body, status, kind] of cases) {
      const answer = await call(api!, 'POST', path, body);
      expect([path, answer.status, (answer.body.error as { kind: string }).kind]).toEqual([path, status, kind]);
    }
    const marker = await call(api!, 'POST', `/v1/dead-letters/${undecodable.partition}/${highest + 1}/replay`);
    expect((marker.body.error as { message: string }).message).toContain('is a transaction marker or an aborted record');
    const wrongMethod = await call(api!, 'GET', '/v1/dead-letters/replay');
    expect(wrongMethod.status).toBe(405);
    // Nothing of that was replayed: the undecodable letter is still replayable.
    const dry = await call(api!, 'POST', '/v1/dead-letters/replay', { reason: 'undecodable', ...range(), dryRun: true });
    expect(dry.body).toMatchObject({ matched: 1, toReplay: 1 });
    expect(await counter('replayed')).toBe(4 + apiRaceReplays);
    expect(await counter('already-replayed')).toBeGreaterThanOrEqual(4);
    expect(await counter('not-found')).toBe(4);
  }, 60_000);
});
