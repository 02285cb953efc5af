import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDescriptor } from '../../src/connectors/generate.js';
import { readSpec } from '../../src/connectors/openapi.js';
import type { Worker } from '../../src/engine/worker.js';
import type { AcceptedEvent } from '../../src/model/ingest-answer.js';
import { decodeConsistencyToken, encodeConsistencyToken, highestPerPartition } from '../../src/model/consistency-token.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import { type IngestRole, startIngestRole } from '../../src/roles/ingest.js';
import { createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { tempDirs } from '../support/temp-dirs.js';
import { fromUnits, toUnits, utcWindow } from '../support/usage-oracle.js';
import { startPipeline, testConfig } from '../support/worker.js';

// The front door end to end: CloudEvents over HTTP and an API's native payloads through a
// connector generated from its spec go in through the ingest role (ORDO_CONNECTORS_DIR), the
// pipeline aggregates them, and the api answers usage queries consistent with the ingest's
// tokens: exactly the oracle's sums, re-sent events counted once, no polling.

const kafka = testKafka();
const prefix = uniqueName('it-front-door');
const tempDir = tempDirs('ordo-it-front-door-');
const DAY = 86_400_000;
let worker: Worker | undefined;
let api: ApiRole | undefined;
let ingest: IngestRole | undefined;

/** subject -> meter -> [sum in units, count]: the oracle. */
const expected = new Map<string, Map<string, [bigint, number]>>();
function count(subject: string, meter: string, value: string): void {
  const bySubject = expected.get(subject) ?? new Map<string, [bigint, number]>();
  const [sum, n] = bySubject.get(meter) ?? [0n, 0];
  bySubject.set(meter, [sum + toUnits(value), n + 1]);
  expected.set(subject, bySubject);
}

async function post(path: string, type: string, body: unknown): Promise<AcceptedEvent[]> {
  const res = await fetch(`http://127.0.0.1:${ingest!.port}${path}`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(body) });
  const json = (await res.json()) as { events: AcceptedEvent[] };
  expect(res.status, JSON.stringify(json)).toBe(202);
  return json.events;
}

beforeAll(async () => {
  const dir = tempDir();
  const generated = generateDescriptor(await readSpec('test/fixtures/openapi/llm-usage-v2.yaml'), 'createUsage', 'llm-usage').text;
  expect(generated).toMatch(/# type: REQUIRED, not mapped/);
  writeFileSync(join(dir, 'llm-usage.yaml'), generated.replace('  subject:', '  type: { const: llm.tokens }\n  subject:')); // the user's edit
  const meters = join(tempDir(), 'meters.yaml'); // not among the connectors: every *.yaml there is one
  writeFileSync(meters, 'meters:\n  - { slug: api-spend, eventType: api.request, aggregation: SUM, windows: [DAY] }\n  - { slug: llm-tokens, eventType: llm.tokens, aggregation: SUM, windows: [DAY] }\n');
  const config = testConfig(prefix, { ORDO_METERS_FILE: meters, ORDO_CONNECTORS_DIR: dir, ORDO_NODE_ID: 'front-door' });
  await createTopics(kafka, [config.topics.input], 3);
  ({ worker } = await startPipeline(config));
  api = await startApiRole({ ...config, apiPort: 0, apiHost: '127.0.0.1' }, { logger: noopLogger, metrics: new OrdoMetrics() });
  ingest = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics() });
  await api.caughtUp();
}, 120_000);

afterAll(async () => {
  await ingest?.stop();
  await api?.stop();
  await worker?.stop();
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('the front door, end to end', () => {
  it('CloudEvents and connector payloads in, exact read-your-writes usage out', async () => {
    const now = Date.now();
    const subjects = ['acme', 'globex', 'initech', 'umbrella'];
    const accepted: AcceptedEvent[] = [];
    // CloudEvents in three batches; the first one is sent twice (a client retry).
    const batches = [0, 1, 2].map((b) =>
      Array.from({ length: 30 }, (_, i) => {
        const n = b * 30 + i;
        return { specversion: '1.0', id: `ce-${n}`, source: 'checkout', type: 'api.request', subject: subjects[n % 4]!, time: new Date(now - n * 1000).toISOString(), data: { value: `${n % 7}.${n % 100}` } };
      }),
    );
    for (const batch of batches) {
      for (const e of batch) count(e.subject, 'api-spend', e.data.value);
      accepted.push(...(await post('/v1/events', 'application/cloudevents-batch+json', batch)));
    }
    accepted.push(...(await post('/v1/events', 'application/cloudevents-batch+json', batches[0])));
    // An LLM API's own payloads through the generated connector.
    const created = Math.floor(now / 1000);
    const payloads = Array.from({ length: 30 }, (_, i) => ({ request_id: `req-${i}`, customer: subjects[i % 3]!, model: i % 2 ? 'large' : 'small', usage: { prompt_tokens: i, completion_tokens: 2 * i, total_tokens: 3 * i + 1 }, created: created - i }));
    for (const p of payloads) count(p.customer, 'llm-tokens', String(p.usage.total_tokens));
    accepted.push(...(await post('/v1/connectors/llm-usage', 'application/json', payloads.slice(0, 10))));
    accepted.push(...(await post('/v1/connectors/llm-usage', 'application/json', payloads.slice(10))));
    expect(accepted).toHaveLength(150);

    // One token per partition covers every write (offsets of a partition commit in order).
    const tokens = highestPerPartition(accepted.map((a) => decodeConsistencyToken(a.token))).map(encodeConsistencyToken);
    const from = new Date(utcWindow(now - 2 * DAY, 'DAY').start).toISOString();
    const to = new Date(utcWindow(now + DAY, 'DAY').end).toISOString();
    for (const subject of subjects) {
      for (const meter of ['api-spend', 'llm-tokens']) {
        const params = new URLSearchParams({ subject, from, to });
        for (const token of tokens) params.append('consistentWith', token);
        const res = await fetch(`http://127.0.0.1:${api!.port}/v1/meters/${meter}/usage?${params.toString()}`);
        const body = (await res.json()) as { totals: { value: string; count: number }[] };
        expect(res.status, JSON.stringify(body)).toBe(200);
        const [sum, n] = expected.get(subject)?.get(meter) ?? [0n, 0];
        expect({ subject, meter, totals: body.totals.map((t) => ({ value: t.value, count: t.count })) }).toEqual({ subject, meter, totals: n === 0 ? [] : [{ value: fromUnits(sum), count: n }] });
      }
    }
  });
});
