import { type Socket, connect, createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import avro from 'avsc';
import { frame } from '../../src/schema/wire-format.js';
import { ConfigError } from '../../src/errors.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { createPipelineWorker } from '../../src/roles/pipeline.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { usageEventSchema, usageEventType } from '../../src/schema/usage-event.js';
import { REGISTRY_URL, createTopics, deleteTopicsWithPrefix, produce, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { expectExactlyOnce } from '../support/exactly-once.js';
import { faultyCommits, lossyCommits } from '../support/faulty-kafka.js';
import { type RecordedLine, recordingLogger } from '../support/logs.js';
import { testConfig } from '../support/worker.js';
import { makeWorkload, seedInput } from '../support/workload.js';
import { sleep } from '../support/process.js';

const kafka = testKafka();
const prefixes: string[] = [];

function newPrefix(name: string): string {
  const prefix = uniqueName(name);
  prefixes.push(prefix);
  return prefix;
}

/** A TCP proxy to the registry that can be switched off (connections are reset while off). */
async function switchableRegistry(): Promise<{ url: string; up: (on: boolean) => void; close: () => Promise<void> }> {
  const target = new URL(REGISTRY_URL);
  let on = true;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!on) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    up: (value) => {
      on = value;
      if (!value) for (const s of sockets) s.destroy(); // no kept-alive connection survives
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('Worker', () => {
  afterAll(async () => {
    for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('refuses to start when an output topic has fewer partitions than the input (records would be lost)', async () => {
    const prefix = newPrefix('it-worker-parts');
    await createTopics(kafka, [`${prefix}-in`], 3);
    await createTopics(kafka, [`${prefix}-ordered`], 1);
    const worker = await createPipelineWorker(testConfig(prefix), { logger: noopLogger, metrics: new OrdoMetrics() });
    const error = await worker.start().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(new RegExp(`${prefix}-ordered has 1 partitions but needs at least 3`));
    expect(worker.state).toBe('failed');
  });

  it('a stop during start waits for the start, then drains to stopped and leaves the group', async () => {
    const prefix = newPrefix('it-worker-early-stop');
    const worker = await createPipelineWorker(testConfig(prefix), { logger: noopLogger, metrics: new OrdoMetrics() });
    const started = worker.start();
    await worker.stop();
    await started;
    expect(worker.state).toBe('stopped');
    expect(await worker.done).toBe('stopped');
    const admin = kafka.admin();
    await admin.connect();
    const { groups } = await admin.describeGroups([`${prefix}-g`]);
    await admin.disconnect();
    expect(groups[0]?.members ?? []).toHaveLength(0);
  });

  it('replaces the task after a commit whose outcome was unknown: no event is written twice', async () => {
    const prefix = newPrefix('it-worker-lost-commit');
    const config = testConfig(prefix, { ORDO_MAX_BATCH_RECORDS: '50' });
    const workload = await seedInput(kafka, config.topics.input, 2, 1_000, 20);

    const lossy = lossyCommits(kafka, new Set([2, 5, 9]));
    const worker = await createPipelineWorker(config, { logger: noopLogger, metrics: new OrdoMetrics(), kafka: lossy.kafka });
    await worker.start();
    const ordered = await readAll(kafka, config.topics.ordered, workload.validIds.length, { settleMs: 3_000 });
    await worker.stop();
    expect(lossy.injected()).toBe(3);
    expectExactlyOnce(ordered, workload.validIds);
  });

  it('an unreachable registry is not a bad record: the batch waits and is processed once it is back', async () => {
    const prefix = newPrefix('it-worker-registry-down');
    const registry = await switchableRegistry();
    try {
      const config = testConfig(prefix, { SCHEMA_REGISTRY_URL: registry.url });
      await createTopics(kafka, [config.topics.input], 2);
      const worker = await createPipelineWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() });
      await worker.start();
      // Upstream writes a newer, compatible schema (an extra field): an id the worker has
      // not seen, so it must be fetched while the registry is down.
      const writerSchema = { ...(usageEventSchema as avro.schema.RecordType), fields: [...(usageEventSchema as avro.schema.RecordType).fields, { name: 'note', type: 'string', default: '' }] };
      const writer = avro.Type.forSchema(writerSchema);
      const writerId = await new SchemaCatalog(REGISTRY_URL).register(`${config.topics.input}-value`, writerSchema);
      const workload = makeWorkload((e) => frame(writerId, writer.toBuffer({ ...e, note: 'v2' })), 200, 10);
      registry.up(false);
      const producer = kafka.producer();
      await producer.connect();
      await produce(producer, config.topics.input, workload.messages);
      await producer.disconnect();

      const whileDown = await readAll(kafka, config.topics.ordered, 1, { timeoutMs: 3_000, settleMs: 0 });
      expect(whileDown).toHaveLength(0);
      registry.up(true);
      const ordered = await readAll(kafka, config.topics.ordered, workload.validIds.length, { settleMs: 2_000 });
      const dlq = await readAll(kafka, config.topics.dlq, 0, { timeoutMs: 2_000, settleMs: 1_000 });
      await worker.stop();
      expect(worker.state).toBe('stopped');
      expectExactlyOnce(ordered, workload.validIds);
      expect(dlq).toHaveLength(0);
    } finally {
      registry.up(true);
      await registry.close();
    }
  });

  it('a failing idle tick is logged, counted and handled like a failed batch: the held events still leave exactly once', async () => {
    const prefix = newPrefix('it-worker-tick');
    // Events are held for the reorder window and leave through idle ticks, which also publish watermarks.
    const config = testConfig(prefix, { ORDO_REORDER_WINDOW_MS: '1000', ORDO_WATERMARK_INTERVAL_MS: '200' });
    const workload = await seedInput(kafka, config.topics.input, 1, 60, 6);

    // Commit 1 is the batch (one fetch: the events went in one request); the later ones are ticks.
    const faulty = faultyCommits(kafka, new Map([[2, 'coordinator-gone'], [4, 'lost-response']]));
    const lines: RecordedLine[] = [];
    const metrics = new OrdoMetrics();
    const worker = await createPipelineWorker(config, { logger: recordingLogger(lines), metrics, kafka: faulty.kafka });
    await worker.start();
    const ordered = await readAll(kafka, config.topics.ordered, workload.validIds.length, { settleMs: 2_000 });
    expect(worker.state).toBe('running');
    await worker.stop();
    expect(faulty.injected()).toBe(2);
    expectExactlyOnce(ordered, workload.validIds);
    expect((await metrics.idleTickFailures.get()).values[0]?.value).toBe(2);
    const warned = lines.filter((l) => l.level === 'warn' && l.msg === 'idle tick failed; retrying');
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThanOrEqual(2);
    expect(lines.filter((l) => l.msg === 'closing task' && l.meta?.why === 'tick failed')).toHaveLength(2);
  });

  it('a transient failure that outlasts ORDO_STUCK_AFTER_MS fails the worker, so /healthz fails and it is restarted', async () => {
    const prefix = newPrefix('it-worker-stuck');
    const registry = await switchableRegistry();
    try {
      const config = testConfig(prefix, { SCHEMA_REGISTRY_URL: registry.url, ORDO_STUCK_AFTER_MS: '5000' });
      await createTopics(kafka, [config.topics.input], 1);
      const worker = await createPipelineWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() });
      await worker.start();
      // A schema id the worker has not seen: its batch needs the registry, which is away.
      const writerId = await new SchemaCatalog(REGISTRY_URL).register(`${config.topics.input}-value`, { ...(usageEventSchema as avro.schema.RecordType), fields: [...(usageEventSchema as avro.schema.RecordType).fields, { name: 'note', type: 'string', default: '' }] });
      registry.up(false);
      const workload = makeWorkload((e) => frame(writerId, Buffer.concat([usageEventType.toBuffer(e), Buffer.from([0])])), 10, 2);
      const producer = kafka.producer();
      await producer.connect();
      await produce(producer, config.topics.input, workload.messages);
      await producer.disconnect();
      const outage = Date.now();
      await sleep(2_000);
      expect(worker.state).toBe('running'); // retrying in place, not stuck yet
      expect(worker.live).toBe(true);
      expect(await worker.done).toBe('failed');
      expect(Date.now() - outage).toBeGreaterThanOrEqual(4_000);
      expect(worker.live).toBe(false);
    } finally {
      registry.up(true);
      await registry.close();
    }
  });
});
