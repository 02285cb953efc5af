import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordView } from '../../src/commands/record-view.js';
import { ROOT, WorkerProcess } from '../support/process.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { childEnv } from '../support/worker.js';

const kafka = testKafka();
const prefix = uniqueName('it-events');
const env = childEnv(prefix, 'n-events');
const input = env.ORDO_INPUT_TOPIC!;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bin/ordo events …` as a user runs it, stdin given. */
function ordo(args: string[], stdin = '', onStdout?: (text: string) => void, onStderr?: (text: string) => void): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn('bin/ordo', args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      onStdout?.(stdout);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      onStderr?.(stderr);
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const lines = (text: string): string[] => text.trim().split('\n').filter((l) => l !== '');
const views = (text: string): RecordView[] => lines(text).map((l) => JSON.parse(l) as RecordView);

async function endOffsets(): Promise<string> {
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(input);
  await admin.disconnect();
  return offsets.map((o) => `${o.partition}:${o.high}`).sort().join(' ');
}

describe('ordo events', () => {
  beforeAll(async () => {
    await createTopics(kafka, [input], 3);
  });
  afterAll(async () => {
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('produce writes JSON lines as registered Avro keyed by subject with their headers; tail reads them back where produce said', async () => {
    const events = [
      { id: 'a-1', type: 'api.request', subject: 'acme', value: '1', time: '2026-11-30T10:00:00Z', dimensions: { region: 'eu' }, headers: { 'service-time': '01a22ce2446e0000', 'service-node': 'svc-1' } },
      { id: 'g-1', type: 'api.request', subject: 'globex', value: '2.50', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } },
      { id: 'a-2', type: 'api.request', subject: 'acme', value: '3' },
    ];
    const produced = await ordo(['events', 'produce', '--json'], events.map((e) => JSON.stringify(e)).join('\n'));
    expect(produced).toMatchObject({ code: 0, stderr: '' });
    const where = lines(produced.stdout).map((l) => JSON.parse(l) as { partition: number; offset: string; key: string; id: string });
    expect(where.map((w) => `${w.id} ${w.key}`)).toEqual(['a-1 acme', 'g-1 globex', 'a-2 acme']);
    expect(where[0]!.partition).toBe(where[2]!.partition); // same key, same partition, consecutive offsets
    expect(BigInt(where[2]!.offset)).toBe(BigInt(where[0]!.offset) + 1n);

    const tailed = await ordo(['events', 'tail', input, '--json']);
    expect(tailed.code).toBe(0);
    const byId = new Map(views(tailed.stdout).map((v) => [(v.value as { id: string }).id, v]));
    expect(byId.size).toBe(3);
    for (const w of where) expect(byId.get(w.id)).toMatchObject({ partition: w.partition, offset: w.offset, key: w.key, kind: 'event' });
    expect(byId.get('a-1')).toMatchObject({
      headers: { 'service-time': '01a22ce2446e0000', 'service-node': 'svc-1' },
      value: { source: 'ordo-cli', time: Date.UTC(2026, 10, 30, 10), value: '1', dimensions: { region: 'eu' } },
    });
    expect(byId.get('g-1')!.headers).toEqual({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });

    // One record by partition and offset.
    const one = await ordo(['events', 'tail', input, '--partition', String(where[2]!.partition), '--from', where[2]!.offset, '--max', '1']);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^${input} \\[${where[2]!.partition}\\] @${where[2]!.offset} .* key=acme\\n  event: \\{"id":"a-2"`));
  });

  it('a large input goes in several sends of one transaction, each event where produce said', async () => {
    const events = Array.from({ length: 2_500 }, (_, i) => JSON.stringify({ id: `bulk-${i}`, type: 'bulk', subject: `s${i % 7}`, value: String(i) }));
    const produced = await ordo(['events', 'produce', '--json'], events.join('\n'));
    expect(produced.code).toBe(0);
    const where = lines(produced.stdout).map((l) => JSON.parse(l) as { partition: number; offset: string; id: string });
    expect(where).toHaveLength(2_500);
    expect(new Set(where.map((w) => `${w.partition}/${w.offset}`)).size).toBe(2_500);
    const tailed = await ordo(['events', 'tail', input, '--json']);
    const at = new Map(views(tailed.stdout).map((v) => [`${v.partition}/${v.offset}`, (v.value as { id: string }).id]));
    expect(where.every((w) => at.get(`${w.partition}/${w.offset}`) === w.id)).toBe(true);
  });

  it('a bad line is named and nothing is written, not even the good lines before it', async () => {
    const before = await endOffsets();
    const bad = await ordo(['events', 'produce'], '{"type":"t","subject":"acme","value":"1"}\n{"type":"t","subject":"acme","value":"12,50"}\n');
    expect(bad).toMatchObject({ code: 65, stdout: '' });
    expect(bad.stderr).toBe('ordo events: line 2: value "12,50" is not a plain decimal string (e.g. "12.50"; no exponent, NaN or Infinity)\n');
    const flags = await ordo(['events', 'produce', '--type', 't', '--subject', 'acme', '--value', '1', '--dimension', 'novalue']);
    expect(flags).toMatchObject({ code: 65, stderr: 'ordo events: --dimension: "novalue" is not name=value\n' });
    expect(await endOffsets()).toBe(before);
  });

  it('one event from flags; --follow --from latest waits for it', async () => {
    let following: Promise<Ran> = Promise.resolve({ code: null, stdout: '', stderr: '' });
    await new Promise<void>((started) => {
      following = ordo(['events', 'tail', input, '--follow', '--from', 'latest', '--max', '1', '--json'], '', undefined, (stderr) => {
        if (stderr.includes(`following ${input}`)) started();
      });
    });
    const produced = await ordo(['events', 'produce', '--type', 'llm.completion', '--subject', 'initech', '--value', '1', '--dimension', 'tokens=1250', '--time', '1796000000000', '--producer-seq', '7']);
    expect(produced.code).toBe(0);
    expect(produced.stdout).toMatch(new RegExp(`^${input} partition \\d offset \\d+ key initech id [0-9a-f-]{36}\\n$`));
    const followed = await following;
    expect(followed.code).toBe(0);
    expect(views(followed.stdout)).toEqual([expect.objectContaining({ key: 'initech', headers: { 'producer-seq': '7' }, value: expect.objectContaining({ type: 'llm.completion', time: 1_796_000_000_000, dimensions: { tokens: '1250' } }) })]);
  });

  it('ordo topics --create creates every topic the roles need, as the roles would, and is idempotent', async () => {
    const created = await ordo(['topics', '--create', '--json']);
    expect(created.code).toBe(0);
    const plan = lines(created.stdout).map((l) => JSON.parse(l) as { topic: string; partitions: number; cleanupPolicy: string });
    expect(plan.find((t) => t.topic === input)).toMatchObject({ partitions: 3 }); // the existing input's count
    expect(created.stderr).toMatch(new RegExp(`^ordo topics: created .*${prefix}-g-meta-changelog`));
    const admin = kafka.admin();
    await admin.connect();
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: plan.map((t) => t.topic) });
      for (const t of plan) expect({ topic: t.topic, partitions: metadata.topics.find((m) => m.name === t.topic)?.partitions.length }).toEqual({ topic: t.topic, partitions: t.partitions });
      const configs = await admin.describeConfigs({ includeSynonyms: false, resources: plan.map((t) => ({ type: 2, name: t.topic, configNames: ['cleanup.policy'] })) });
      for (const r of configs.resources) expect({ topic: r.resourceName, policy: r.configEntries[0]?.configValue }).toEqual({ topic: r.resourceName, policy: plan.find((t) => t.topic === r.resourceName)!.cleanupPolicy });
    } finally {
      await admin.disconnect();
    }
    expect(await ordo(['topics', '--create'])).toMatchObject({ code: 0, stderr: 'ordo topics: created none (all exist)\n' });
    // The production recipe: with ORDO_CREATE_TOPICS=false the roles find everything they need.
    for (const role of ['pipeline', 'merge']) {
      const worker = new WorkerProcess(role, { ...env, ORDO_CREATE_TOPICS: 'false', ORDO_METERS_FILE: 'docs/meters.example.yaml' });
      await worker.waitFor((l) => l.msg === 'lifecycle' && l.to === 'running', 60_000);
      expect(await worker.stop()).toBe(0);
    }
  });

  it('Ctrl-C ends a --follow with exit 0', async () => {
    let pid = 0;
    const following = new Promise<Ran>((resolve) => {
      const child = spawn('bin/ordo', ['events', 'tail', input, '--follow', '--from', 'latest'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      pid = child.pid!;
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        if (stderr.includes('following')) child.kill('SIGINT');
      });
      child.on('exit', (code) => resolve({ code, stdout: '', stderr }));
    });
    expect(pid).toBeGreaterThan(0);
    expect(await following).toMatchObject({ code: 0, stderr: `ordo events: following ${input} (Ctrl-C ends)\n` });
  });

  it('missing topics and wrong options are clear errors', async () => {
    const missing = `${prefix}-nope`;
    expect(await ordo(['events', 'produce', '--topic', missing, '--type', 't', '--subject', 's', '--value', '1'])).toMatchObject({ code: 65, stderr: expect.stringContaining(`topic ${missing} does not exist`) });
    expect(await ordo(['events', 'tail', missing])).toMatchObject({ code: 65, stderr: `ordo events: topic ${missing} does not exist\n` });
    expect(await ordo(['events', 'tail', input, '--from', 'yesterday'])).toMatchObject({ code: 65, stderr: 'ordo events: --from: "yesterday" is not earliest, latest or an offset\n' });
    expect(await ordo(['events', 'tail', input, '--bogus'])).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--bogus'") });
    expect(await ordo(['events', 'push'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown subcommand "push"') });
    // --from latest without --follow: nothing new, done at once.
    expect(await ordo(['events', 'tail', input, '--from', 'latest'])).toMatchObject({ code: 0, stdout: '' });
  });
});
