import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { WorkerProcess, sleep } from '../support/process.js';
import { type SecuredStack, type TokenEndpoint, mtlsEnv, oauthEnv, produceToNewTopic, scramEnv, securedStack, startTokenEndpoint } from '../support/secured.js';
import { makeUsageWorkload, writeTestMeters } from '../support/usage-workload.js';
import { childEnv } from '../support/worker.js';

/**
 * No secret ever leaves the process: the three roles run as `ordo` processes at debug level
 * with every kind of secret set (SCRAM password, client key passphrase, OAuth client secret,
 * registry credentials), process events, and are stopped; their stdout and stderr, /metrics,
 * /healthz and /readyz, the api's answers and the exit-78 message of a wrong password are
 * searched for each secret (and for the OAuth tokens issued meanwhile).
 */
const kafka = testKafka();
const prefix = uniqueName('sec-leak');
let stack: SecuredStack;
let tokens: TokenEndpoint;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function get(url: string): Promise<string> {
  const response = await fetch(url);
  return `${response.status} ${await response.text()}`;
}

async function waitReady(port: number, name: string, child: WorkerProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0);
    if (status === 200) return;
    if (child.child.exitCode !== null) throw new Error(`${name} exited ${child.child.exitCode}:\n${child.stderr.slice(-10).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`${name} not ready within 60 s:\n${child.stderr.slice(-10).join('\n')}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  stack = securedStack();
  tokens = await startTokenEndpoint(stack, { clientSecret: `oauth-client-secret-${Math.random().toString(36).slice(2)}` });
});

afterAll(async () => {
  await tokens?.close();
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('secrets stay secret', () => {
  it('appear in no log line, stdout, metric, health answer or error message of any role', async () => {
    const registryPassword = `registry-pa55-${Math.random().toString(36).slice(2)}`;
    const base = childEnv(prefix, 'leak', {
      ORDO_LOG_LEVEL: 'debug',
      ORDO_METERS_FILE: writeTestMeters(),
      ORDO_REORDER_WINDOW_MS: '200',
      ORDO_WATERMARK_INTERVAL_MS: '200',
      // The local registry has no authentication and ignores the header; it is sent all the same.
      SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: `ordo:${registryPassword}`,
    });
    await createTopics(kafka, [`${prefix}-in`], 2);
    const encode = await usageEventEncoder(`${prefix}-in`);
    await produceToNewTopic(kafka, `${prefix}-in`, makeUsageWorkload(encode, { count: 60, subjects: 3, now: Date.now(), latenessMs: 86_400_000, spreadDays: 1 }).messages);

    const ports = { pipeline: await freePort(), merge: await freePort(), api: await freePort(), apiHttp: await freePort() };
    const roles = [
      new WorkerProcess('pipeline', { ...base, ...scramEnv(stack), ORDO_METRICS_PORT: String(ports.pipeline) }),
      new WorkerProcess('merge', { ...base, ...mtlsEnv(stack), ORDO_METRICS_PORT: String(ports.merge) }),
      new WorkerProcess('api', { ...base, ...oauthEnv(stack, tokens), ORDO_METRICS_PORT: String(ports.api), ORDO_API_PORT: String(ports.apiHttp) }),
    ];
    const answers: string[] = [];
    try {
      await waitReady(ports.pipeline, 'pipeline', roles[0]!);
      await waitReady(ports.merge, 'merge', roles[1]!);
      await waitReady(ports.api, 'api', roles[2]!);
      for (const port of [ports.pipeline, ports.merge, ports.api]) {
        for (const path of ['/metrics', '/healthz', '/readyz']) answers.push(await get(`http://127.0.0.1:${port}${path}`));
      }
      answers.push(await get(`http://127.0.0.1:${ports.apiHttp}/v1/meters`));
      answers.push(await get(`http://127.0.0.1:${ports.apiHttp}/v1/meters/api-spend/usage?subject=cust-0&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`));
    } finally {
      for (const role of roles) expect(await role.stop()).toBe(0);
    }
    const refused = new WorkerProcess('pipeline', { ...base, ...scramEnv(stack), KAFKA_SASL_PASSWORD_FILE: '', KAFKA_SASL_PASSWORD: `${stack.password('ordo')}-typo` });
    expect(await refused.exited).toBe(78);

    const secrets = {
      scramPassword: stack.password('ordo'),
      keyPassphrase: stack.passphrase,
      oauthClientSecret: tokens.clientSecret,
      registryPassword,
      ...Object.fromEntries(tokens.issued.map((token, i) => [`oauthToken${i}`, token.split('.')[2]!])),
    };
    expect(tokens.issued.length).toBeGreaterThan(0); // the api really authenticated with OAUTHBEARER
    const everything = [...roles, refused].flatMap((r) => [...r.stderr, ...r.stdout]).concat(answers).join('\n');
    expect(roles[0]!.lines.length).toBeGreaterThan(5); // there were logs to search
    expect(answers.join('\n')).toContain('ordo_'); // and metrics
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThanOrEqual(8);
      expect(everything.includes(secret), `${name} leaked`).toBe(false);
    }
  }, 180_000);
});
