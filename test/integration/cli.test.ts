import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { WorkerProcess } from '../support/process.js';
import { childEnv } from '../support/worker.js';

const kafka = testKafka();
const prefix = uniqueName('it-cli');
const workers: WorkerProcess[] = [];

describe('ordo CLI', () => {
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('exits 78 on invalid configuration with a message naming the variable', async () => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, 'n1', { ORDO_MAX_SKEW_MS: 'soon' }));
    workers.push(w);
    expect(await w.exited).toBe(78);
    expect(w.stderr.join('\n')).toMatch(/ORDO_MAX_SKEW_MS: "soon" is not an integer/);
  });

  it('names the variable in a cross-field rule', async () => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, 'n1', { ORDO_HEARTBEAT_INTERVAL_MS: '5000', ORDO_SESSION_TIMEOUT_MS: '10000' }));
    workers.push(w);
    expect(await w.exited).toBe(78);
    expect(w.stderr.join('\n')).toMatch(/ORDO_HEARTBEAT_INTERVAL_MS/);
  });

  it('exits 78 on a bad meters file, naming the variable, the file and the item', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ordo-cli-')), 'meters.yaml');
    writeFileSync(file, 'meters:\n  - slug: calls\n    eventType: api.request\n    aggregation: SUMM\n');
    for (const role of ['pipeline', 'api']) {
      const w = new WorkerProcess(role, childEnv(prefix, 'n1', { ORDO_METERS_FILE: file }));
      workers.push(w);
      expect(await w.exited).toBe(78);
      expect(w.stderr.join('\n')).toMatch(/ORDO_METERS_FILE: .*meters\.yaml: meters\[0\]\.aggregation: "SUMM" is not one of SUM, COUNT/);
    }
  });

  it('exits 78 from pipeline and merge alike when a topic is missing and ORDO_CREATE_TOPICS=false, naming the topics', async () => {
    // The pipeline checks its topics before it starts; the merge only once the ordered topic
    // exists, after its start has returned: both are the same configuration error.
    const noCreate = `${prefix}-nocreate`;
    const pipeline = new WorkerProcess('pipeline', childEnv(noCreate, 'n-nc', { ORDO_CREATE_TOPICS: 'false' }));
    workers.push(pipeline);
    expect(await pipeline.exited).toBe(78);
    expect(pipeline.stderr.join('\n')).toMatch(new RegExp(`ordo: invalid configuration: ORDO_CREATE_TOPICS: topics ${noCreate}-\\S+ do not exist and topic creation is off`));

    await createTopics(kafka, [`${noCreate}-ordered`], 2);
    const merge = new WorkerProcess('merge', childEnv(noCreate, 'n-nc-merge', { ORDO_CREATE_TOPICS: 'false' }));
    workers.push(merge);
    expect(await merge.exited).toBe(78);
    expect(merge.stderr.join('\n')).toMatch(new RegExp(`ordo: invalid configuration: ORDO_CREATE_TOPICS: topics .*${noCreate}-global.* do not exist and topic creation is off`));
  });

  it('serves the query API in role api, turns ready once caught up, and exits 0 on SIGTERM', async () => {
    const apiPort = 20_000 + Math.floor(Math.random() * 20_000);
    const metricsPort = apiPort + 1;
    const apiPrefix = `${prefix}-api`; // its own topics: the pipeline tests here create theirs
    await createTopics(kafka, [`${apiPrefix}-aggregates`], 2);
    const w = new WorkerProcess('api', childEnv(apiPrefix, 'n-api', { ORDO_METERS_FILE: 'docs/meters.example.yaml', ORDO_API_PORT: String(apiPort), ORDO_METRICS_PORT: String(metricsPort) }));
    workers.push(w);
    await w.waitFor((l) => l.msg === 'read model caught up', 60_000);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
    const meters = (await (await fetch(`http://127.0.0.1:${apiPort}/v1/meters`)).json()) as { meters: { slug: string }[] };
    expect(meters.meters.map((m) => m.slug)).toContain('api-requests');
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^ordo_read_model_aggregates 0$/m);
    w.signal('SIGTERM');
    expect(await w.exited).toBe(0);
  });

  it('role merge waits for the ordered topic, turns ready once it owns every partition, and exits 0 on SIGTERM', async () => {
    const metricsPort = 20_000 + Math.floor(Math.random() * 20_000);
    const mergePrefix = `${prefix}-merge`;
    const w = new WorkerProcess('merge', childEnv(mergePrefix, 'n-merge', { ORDO_METRICS_PORT: String(metricsPort) }));
    workers.push(w);
    await w.waitFor((l) => l.msg === 'waiting for the ordered topic (the pipeline creates it)', 30_000);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(503);
    await createTopics(kafka, [`${mergePrefix}-ordered`], 2);
    await w.waitFor((l) => l.msg === 'merge restored', 30_000);
    const deadline = Date.now() + 30_000;
    while ((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('merge never turned ready');
      await new Promise((r) => setTimeout(r, 200));
    }
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^ordo_merge_held_events 0$/m);
    w.signal('SIGTERM');
    expect(await w.exited).toBe(0);

    // SIGTERM while it still waits for its topic: it stops, exit 0.
    const waiting = new WorkerProcess('merge', childEnv(`${prefix}-merge-none`, 'n-merge-2', { ORDO_METRICS_PORT: '0' }));
    workers.push(waiting);
    await waiting.waitFor((l) => l.msg === 'waiting for the ordered topic (the pipeline creates it)', 30_000);
    waiting.signal('SIGTERM');
    expect(await waiting.exited).toBe(0);
  });

  it('pipeline /readyz answers 200 only once the group is joined and every assigned task restored', async () => {
    const metricsPort = 20_000 + Math.floor(Math.random() * 20_000);
    const readyPrefix = `${prefix}-ready`;
    await createTopics(kafka, [`${readyPrefix}-in`], 3);
    const w = new WorkerProcess('pipeline', childEnv(readyPrefix, 'n-ready', { ORDO_METRICS_PORT: String(metricsPort) }));
    workers.push(w);
    // Poll from the start; note when /readyz first said 200, then what the log said by then
    // (log lines carry their time; the pipe may deliver them a little after the answer).
    const deadline = Date.now() + 60_000;
    let readyAt: number | undefined;
    let notReady = 0;
    while (readyAt === undefined && Date.now() < deadline) {
      const status = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) readyAt = Date.now();
      else if (status === 503) notReady += 1;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(notReady).toBeGreaterThan(0);
    expect(readyAt).toBeDefined();
    await new Promise((r) => setTimeout(r, 500));
    const before = (msg: string) => w.lines.filter((l) => l.msg === msg && Date.parse(String(l.time)) <= readyAt!).length;
    expect({ assigned: before('partitions assigned'), restored: before('task restored') }).toEqual({ assigned: 1, restored: 3 });
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    w.signal('SIGTERM');
    expect(await w.exited).toBe(0);
  });

  it('rejects an unknown role with exit code 2', async () => {
    const w = new WorkerProcess('nonsense', childEnv(prefix, 'n1'));
    workers.push(w);
    expect(await w.exited).toBe(2);
    expect(w.stderr.join('\n')).toMatch(/unknown role "nonsense"/);
  });

  it('drains on SIGTERM: starting -> running -> draining -> stopped, exit 0, leaves the group', async () => {
    const w = new WorkerProcess('pipeline', childEnv(prefix, 'n1'));
    workers.push(w);
    await w.waitFor((l) => l.msg === 'lifecycle' && l.to === 'running', 60_000);
    await w.waitFor((l) => l.msg === 'task restored', 60_000);
    w.signal('SIGTERM');
    expect(await w.exited).toBe(0);
    const states = w.lines.filter((l) => l.msg === 'lifecycle').map((l) => l.to);
    expect(w.lines.find((l) => l.msg === 'lifecycle')?.from).toBe('starting');
    expect(states.slice(-2)).toEqual(['draining', 'stopped']);
    expect(states).toContain('running');
    expect(w.has((l) => l.msg === 'signal received: draining' && l.signal === 'SIGTERM')).toBe(true);

    const admin = kafka.admin();
    await admin.connect();
    try {
      const { groups } = await admin.describeGroups([`${prefix}-g`]);
      expect(groups[0]?.members ?? []).toHaveLength(0);
    } finally {
      await admin.disconnect();
    }
  });
});
