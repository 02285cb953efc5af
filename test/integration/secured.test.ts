import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrdoConfig } from '../../src/config/config.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { startApiRole } from '../../src/roles/api.js';
import { createMergeWorker } from '../../src/roles/merge.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, readAll, testKafka, uniqueName, usageEventEncoder } from '../support/cluster.js';
import { WorkerProcess } from '../support/process.js';
import { type SecuredStack, type TokenEndpoint, mtlsEnv, oauthEnv, produceToNewTopic, scramEnv, securedStack, startTokenEndpoint } from '../support/secured.js';
import { expectAggregatesExact, readLatestAggregates } from '../support/usage-checks.js';
import { expectedAggregates, fromUnits, toUnits, utcWindow } from '../support/usage-oracle.js';
import { TEST_METERS, makeUsageWorkload, oracleEvents, writeTestMeters } from '../support/usage-workload.js';
import { startPipeline, testConfig } from '../support/worker.js';

/**
 * The roles against the local broker's secured listeners (scripts/kafka/secure.sh): each
 * security mode runs pipeline, merge and api end to end and checks every output exactly once;
 * each wrong setting ends `ordo pipeline` with exit 78 naming the variable. The test itself
 * checks and cleans up over the PLAINTEXT listener (super user).
 */
const kafka = testKafka();
const EVENTS = 150;
const DAY = 86_400_000;
let stack: SecuredStack;
let tokens: TokenEndpoint;
const prefixes: string[] = [];

beforeAll(async () => {
  stack = securedStack();
  tokens = await startTokenEndpoint(stack);
});

afterAll(async () => {
  await tokens?.close();
  for (const prefix of prefixes) await deleteTopicsWithPrefix(kafka, prefix);
});

/** pipeline -> ordered + aggregates, merge -> global, api -> answers; all over `env`'s listener. */
async function endToEnd(name: string, env: Record<string, string>): Promise<void> {
  const prefix = uniqueName(`sec-${name}`);
  prefixes.push(prefix);
  const config: OrdoConfig = testConfig(prefix, {
    ...env,
    ORDO_METERS_FILE: writeTestMeters(),
    ORDO_ALLOWED_LATENESS_MS: String(7 * DAY),
    ORDO_REORDER_WINDOW_MS: '200',
    ORDO_WATERMARK_INTERVAL_MS: '200',
    ORDO_TOPIC_PARTITIONS: '2',
    ORDO_API_PORT: '0',
  });
  expect(config.brokers).toEqual([env.KAFKA_BROKERS]);
  await createTopics(kafka, [config.topics.input], 2);
  const encode = await usageEventEncoder(config.topics.input);
  const now = Date.now();
  const workload = makeUsageWorkload(encode, { count: EVENTS, subjects: 5, now, latenessMs: 7 * DAY, spreadDays: 2, idPrefix: name });
  await produceToNewTopic(kafka, config.topics.input, workload.messages);

  const { worker } = await startPipeline(config);
  const merge = createMergeWorker(config, { logger: noopLogger, metrics: new OrdoMetrics() });
  await merge.start();
  try {
    const ordered = await readAll(kafka, config.topics.ordered, workload.accepted.size, { timeoutMs: 60_000 });
    const keys = ordered.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
    expect(keys.length).toBe(new Set(keys).size);
    expect(new Set(keys)).toEqual(workload.accepted);
    const global = await readAll(kafka, config.topics.global, workload.accepted.size, { timeoutMs: 60_000 });
    const globalKeys = global.map((r) => decodeEvent(r.value)).map((e) => `${e.source}/${e.id}`);
    expect(globalKeys.length).toBe(workload.accepted.size);
    expect(new Set(globalKeys)).toEqual(workload.accepted);
    const events = oracleEvents(ordered);
    const expected = expectedAggregates(TEST_METERS, events);
    expectAggregatesExact(await readLatestAggregates(kafka, config.topics.aggregates, expected.size), expected);

    const api = await startApiRole(config, { logger: noopLogger, metrics: new OrdoMetrics() });
    try {
      await api.caughtUp();
      const iso = (ms: number) => new Date(ms).toISOString();
      const subject = events[0]!.event.subject;
      const from = utcWindow(now - 3 * DAY, 'DAY').start;
      const to = utcWindow(now, 'DAY').end;
      const response = await fetch(`http://127.0.0.1:${api.port}/v1/meters/api-spend/usage?subject=${subject}&from=${iso(from)}&to=${iso(to)}&windowSize=DAY`);
      const answer = (await response.json()) as { totals: { value: string; count: number }[] };
      expect(response.status, JSON.stringify(answer)).toBe(200);
      const mine = events.filter((e) => e.event.subject === subject && e.event.type === 'api.request');
      const total = mine.reduce((sum, e) => sum + toUnits(e.event.value), 0n);
      expect(answer.totals).toEqual(mine.length === 0 ? [] : [expect.objectContaining({ value: fromUnits(total), count: mine.length })]);
    } finally {
      await api.stop();
    }
  } finally {
    await merge.stop();
    await worker.stop();
  }
}

describe('roles over the secured listeners, end to end', () => {
  it('SASL_SSL with SCRAM-SHA-512 (password from a file)', async () => {
    await endToEnd('scram', scramEnv(stack));
  }, 120_000);

  it('SSL with a client certificate (mTLS, key encrypted, passphrase from a file)', async () => {
    await endToEnd('mtls', mtlsEnv(stack));
  }, 120_000);

  it('SASL_SSL with OAUTHBEARER tokens from a client-credentials endpoint, checked by the broker against the JWKS', async () => {
    const before = tokens.issued.length;
    await endToEnd('oauth', oauthEnv(stack, tokens));
    // Tokens are cached: far fewer than the connections the roles opened.
    expect(tokens.issued.length - before).toBeGreaterThanOrEqual(1);
    expect(tokens.issued.length - before).toBeLessThanOrEqual(6);
  }, 120_000);
});

/** `ordo pipeline` with `env`: must exit 78 within seconds, naming `variable` on stderr. */
async function expectExit78(env: Record<string, string>, variable: string): Promise<string> {
  const prefix = uniqueName('sec-fail');
  const started = Date.now();
  const child = new WorkerProcess('pipeline', { ...testEnv(prefix), ...env }, `pipeline (${variable})`);
  const code = await child.exited;
  const stderr = child.stderr.join('\n');
  expect({ code, stderr }).toMatchObject({ code: 78 });
  expect(stderr).toContain(`ordo: invalid configuration: ${variable}: `);
  expect(Date.now() - started).toBeLessThan(20_000);
  return stderr;
}

function testEnv(prefix: string): Record<string, string> {
  return { ORDO_GROUP_ID: `${prefix}-g`, ORDO_INPUT_TOPIC: `${prefix}-in`, ORDO_METRICS_PORT: '0', SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7' };
}

describe('a wrong security setting ends the process with exit 78 naming it', () => {
  it('wrong SCRAM password', async () => {
    const stderr = await expectExit78({ ...scramEnv(stack), KAFKA_SASL_PASSWORD_FILE: '', KAFKA_SASL_PASSWORD: 'not-the-password' }, 'KAFKA_SASL_PASSWORD');
    expect(stderr).toContain('refused SASL SCRAM-SHA-512 authentication as "ordo"');
    expect(stderr).not.toContain('not-the-password');
  }, 30_000);

  it('no client certificate on the mTLS listener', async () => {
    const { KAFKA_SSL_CERT_FILE: _c, KAFKA_SSL_KEY_FILE: _k, KAFKA_SSL_KEY_PASSPHRASE_FILE: _p, ...env } = mtlsEnv(stack);
    const stderr = await expectExit78(env, 'KAFKA_SSL_CERT_FILE');
    expect(stderr).toContain('requires a client certificate');
  }, 30_000);

  it('an OAUTHBEARER client secret the token endpoint refuses', async () => {
    const stderr = await expectExit78({ ...oauthEnv(stack, tokens), KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: 'not-the-client-secret' }, 'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET');
    expect(stderr).toContain('the token endpoint refused client "ordo-oauth"');
    expect(stderr).not.toContain('not-the-client-secret');
  }, 30_000);

  it('a CA that did not sign the broker certificate', async () => {
    const stderr = await expectExit78({ ...scramEnv(stack), KAFKA_SSL_CA_FILE: stack.file('untrusted-ca.pem') }, 'KAFKA_SSL_CA_FILE');
    expect(stderr).toContain('not trusted');
  }, 30_000);
});
