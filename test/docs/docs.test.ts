import { mkdtempSync, writeFileSync } from 'node:fs';
import { freePort } from '../support/local-http.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { BROKERS, REGISTRY_URL, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { Background, type RunResult, type Step, parseSteps, runScript, substitute } from './runnable.js';

/**
 * The README walkthrough and the runnable blocks of docs/aggregation.md and
 * docs/operations.md, run as written against the broker, on one set of started roles:
 * README up to its stops, then the other documents, then README's stops.
 * Ports and topic names are replaced by free ports and names of this run.
 */
const prefix = uniqueName('docs');
const kafka = testKafka();
const started = new Map<string, Background>();


type Check = (result: RunResult) => void;

/** Assertions on a block's output, by id; a block whose check fails is run again (up to 40 s). */
const checks: Record<string, Check> = {
  produce: ({ stdout }) => expect(stdout.trim().split('\n')).toEqual(Array(3).fill(expect.stringMatching(/ partition \d+ offset \d+ key acme id [0-9a-f-]{36}$/))),
  'produce-flags': ({ stdout }) => expect(stdout).toMatch(/ partition \d+ offset \d+ key globex id /),
  query: ({ stdout }) => {
    const body = JSON.parse(stdout) as { data: { subject: string; groupBy: { method: string }; value: string }[] };
    const rows = body.data.map((r) => `${r.subject} ${r.groupBy.method} ${r.value}`).sort();
    expect(rows).toEqual(['acme GET 1', 'acme POST 1']);
  },
  'tail-ordered': ({ stdout }) => {
    expect(stdout.match(/^\S+ \[\d+\] @\d+ /gm)).toHaveLength(4);
    expect(stdout).toMatch(/ordo-seq=1/);
    // The flag-produced event's time context came through as origin.
    expect(stdout).toMatch(/origin-service-node=checkout-1/);
    expect(stdout).toMatch(/traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01/);
  },
  'tail-global': ({ stdout }) => {
    const records = stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; headers: Record<string, string> });
    expect(records.map((r) => r.headers['ordo-global-seq'])).toEqual(['1', '2', '3', '4']);
    expect(records.every((r) => r.kind === 'event')).toBe(true);
  },
  'tail-aggregates': ({ stdout }) => {
    expect(stdout).toMatch(/aggregate: \{"meter":"api-requests","subject":"acme"/);
    expect(stdout).toMatch(/"meter":"llm-tokens","subject":"acme".*"value":"1250"/);
  },
  'agg-keys': ({ stdout }) => expect(stdout).toMatch(/^\["api-requests","acme",\{"method":"GET","route":"\/v1\/orders"\},"DAY","\d{4}-\d\d-\d\dT00:00:00\.000Z"\]$/m),
  'agg-filter': ({ stdout }) => {
    const body = JSON.parse(stdout) as { data: { groupBy: { method: string }; value: string }[] };
    expect(body.data.map((r) => `${r.groupBy.method} ${r.value}`)).toEqual(['GET 2']); // acme's and globex's GET
  },
  'dlq-show': ({ stdout }) => {
    expect(stdout).toMatch(/ordo-dlq-reason=invalid-value/);
    expect(stdout).toMatch(/^\s+1 invalid-value$/m);
    expect(stdout).toMatch(/user_id/); // the error message names the missing dimension
  },
  'dlq-produce': ({ stdout }) => expect(stdout).toMatch(/ partition \d+ offset \d+ key initech /),
  'dlq-replay': ({ stdout }) => expect(JSON.parse(stdout)).toMatchObject({ replay: { reason: 'invalid-value', corrected: true } }),
  topics: ({ stdout }) => {
    expect(stdout).toMatch(/-changelog\s+12\s+3\s+compact\s+pipeline/);
    expect(stdout).toMatch(/-global\s+1\s+3\s+delete\s+merge/);
  },
  // A transactional producer (ordo events produce) leaves a commit marker after its records: lag 1 there.
  lag: ({ stdout }) => expect(stdout.trim().split('\n')).toEqual(Array(4).fill(expect.stringMatching(/^partition \d: committed -?\d+ end \d+ lag [01]$/))),
};

describe('docs that run', () => {
  afterAll(async () => {
    for (const b of started.values()) b.kill();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  it('README walkthrough, docs/aggregation.md and docs/operations.md blocks work as written', async () => {
    const ports = { pipeline: await freePort(), api: await freePort(), merge: await freePort(), pipeline2: await freePort(), http: await freePort() };
    const replacements = new Map<string, string>([
      ['9464', String(ports.pipeline)],
      ['9465', String(ports.api)],
      ['9466', String(ports.merge)],
      ['9467', String(ports.pipeline2)],
      ['8080', String(ports.http)],
    ]);
    // The topic names the docs use are the defaults, read from the code.
    const env: NodeJS.ProcessEnv = { ...process.env, ORDO_GROUP_ID: `${prefix}-g`, ORDO_TOPIC_PARTITIONS: '4', ORDO_LOG_LEVEL: 'info', ORDO_API_PORT: String(ports.http), ORDO_METRICS_PORT: String(ports.pipeline) };
    for (const [key, name] of Object.entries(loadConfig({}).topics) as [string, string][]) {
      const mine = `${prefix}-${key}`;
      replacements.set(name, mine);
      env[`ORDO_${key.toUpperCase()}_TOPIC`] = mine;
    }
    // `bash scripts/kafka/up.sh --env` must print the broker and registry this test uses.
    env.KAFKA_PORT = BROKERS[0]!.split(':').pop();
    env.REGISTRY_PORT = new URL(REGISTRY_URL).port;
    expect(`127.0.0.1:${env.KAFKA_PORT}`).toBe(BROKERS[0]);
    const stateFile = join(mkdtempSync(join(tmpdir(), 'ordo-docs-')), 'state.sh');
    writeFileSync(stateFile, '');

    const readme = parseSteps('README.md');
    const stops = readme.filter((s) => s.kind === 'stop');
    const steps = [...readme.filter((s) => s.kind !== 'stop'), ...parseSteps('docs/aggregation.md'), ...parseSteps('docs/operations.md'), ...stops];
    expect(stops.map((s) => s.kind === 'stop' && s.name).sort()).toEqual(['api', 'merge', 'pipeline', 'pipeline2']);
    const ids = steps.flatMap((s) => (s.kind === 'run' && s.id ? [s.id] : []));
    expect(ids.sort()).toEqual(Object.keys(checks).sort()); // every check has its block, every id its check

    for (const step of steps) await runStep(step, replacements, env, stateFile);
  }, 300_000);
});

async function runStep(step: Step, replacements: Map<string, string>, env: NodeJS.ProcessEnv, stateFile: string): Promise<void> {
  const where = `${step.doc}:${step.line}`;
  if (step.kind === 'background') {
    const bg = new Background(step.name, substitute(step.command, replacements), env, stateFile);
    started.set(step.name, bg);
    await bg.ready(substitute(step.readyPort, replacements));
    if (step.name === 'pipeline2') await expectSplitAssignment();
    return;
  }
  if (step.kind === 'stop') {
    const bg = started.get(step.name);
    if (!bg) throw new Error(`${where}: ${step.name} was not started`);
    bg.signal(step.signal);
    const code = await bg.exited;
    const messages = bg.logs.map((l) => l.msg);
    expect({ where, code, drained: messages.includes('signal received: draining'), forced: messages.includes('second signal: exiting without drain') }).toEqual({ where, code: 0, drained: true, forced: false });
    expect(bg.logs.find((l) => l.msg === 'exit')).toMatchObject({ state: 'stopped' });
    if (step.name === 'pipeline2') await expectAssignment(() => lastAssignment(started.get('pipeline')).join() === '0,1,2,3', 'the first pipeline did not take every partition back');
    return;
  }
  const check = step.id === undefined ? undefined : checks[step.id];
  const script = substitute(step.script, replacements);
  const deadline = Date.now() + 40_000;
  const failures: string[] = [];
  for (;;) {
    const result = await runScript(script, env, stateFile);
    try {
      if (result.code !== 0) throw new Error(`exit ${result.code}`);
      check?.(result);
      return;
    } catch (error) {
      // The first and the last failure, with what the block printed, in the message itself.
      const failure = `${(error as Error).message}\n--- stdout:\n${result.stdout}--- stderr:\n${result.stderr}`;
      if (failures.length < 2) failures.push(failure);
      else failures[1] = failure;
      if (Date.now() > deadline) throw new Error(`${where} (${step.id ?? 'no id'}) kept failing for 40 s; first and last failure:\n${failures.join('\n=====\n')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function lastAssignment(b: Background | undefined): number[] {
  const partitions = b?.logs.filter((l) => l.msg === 'partitions assigned').at(-1)?.partitions as number[] | undefined;
  return [...(partitions ?? [])].sort((x, y) => x - y);
}

async function expectAssignment(done: () => boolean, message: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${message}: ${lastAssignment(started.get('pipeline')).join()} / ${lastAssignment(started.get('pipeline2')).join()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Both pipelines own partitions, and no partition is owned twice. */
async function expectSplitAssignment(): Promise<void> {
  await expectAssignment(() => {
    const one = lastAssignment(started.get('pipeline'));
    const two = lastAssignment(started.get('pipeline2'));
    return one.length > 0 && two.length > 0 && [...one, ...two].sort((x, y) => x - y).join() === '0,1,2,3';
  }, 'partitions not split between the pipelines');
}
