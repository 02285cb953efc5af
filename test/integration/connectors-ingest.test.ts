import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrdoConfig } from '../../src/config/config.js';
import { loadConnectors } from '../../src/connectors/descriptor.js';
import { generateDescriptor } from '../../src/connectors/generate.js';
import { connectorMapper } from '../../src/connectors/mapper.js';
import { readSpec } from '../../src/connectors/openapi.js';
import { upgradeDescriptor } from '../../src/connectors/upgrade.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type IngestRole, startIngestRole } from '../../src/roles/ingest.js';
import { createTopics, decodeEvent, deleteTopicsWithPrefix, readAll, testKafka, uniqueName } from '../support/cluster.js';
import { tempDirs } from '../support/temp-dirs.js';
import { testConfig } from '../support/worker.js';

// Connectors end to end through the ingest role and the real broker: a descriptor generated
// from the v1 spec, customised, upgraded to v2 (the rename resolved), loaded from a directory
// as ORDO_CONNECTORS_DIR is, and native v2 payloads posted to POST /v1/connectors/llm-usage.
// The input topic must hold exactly the events the oracle derives from the payloads.

const kafka = testKafka();
const prefix = uniqueName('it-connectors');
const tempDir = tempDirs('ordo-it-connectors-');
let role: IngestRole;
let config: OrdoConfig;

interface Native {
  request_id: string;
  customer: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number | string };
  created: number;
  region?: string;
}

const payloads: Native[] = Array.from({ length: 40 }, (_, i) => ({
  request_id: `req-${i}`,
  customer: ['acme', 'globex', 'initech'][i % 3]!,
  model: ['small', 'large'][i % 2]!,
  usage: { prompt_tokens: 10 * i, completion_tokens: i, total_tokens: 11 * i + 1 },
  created: 1_764_536_400 + i,
  ...(i % 4 === 0 ? { region: 'eu' } : {}),
}));

interface Answer {
  events: { id: string }[];
  error: { kind: string; items: { index: number; path: string }[] };
}

async function post(name: string, body: unknown): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`http://127.0.0.1:${role.port}/v1/connectors/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Answer };
}

beforeAll(async () => {
  const dir = tempDir();
  const file = join(dir, 'llm-usage.yaml');
  const generated = generateDescriptor(await readSpec('test/fixtures/openapi/llm-usage-v1.yaml'), 'createUsage', 'llm-usage').text;
  writeFileSync(file, generated.replace('  subject:', '  type: { const: llm.tokens }\n  subject:'));
  const upgraded = upgradeDescriptor(readFileSync(file, 'utf8'), file, await readSpec('test/fixtures/openapi/llm-usage-v2.yaml'));
  expect(upgraded.conflicts.map((c) => c.at)).toEqual(['mappings.subject']);
  writeFileSync(file, upgraded.text.replace('subject: { path: customer_id }', 'subject: { path: customer }'));

  config = testConfig(prefix, { ORDO_NODE_ID: 'ingest-connectors-it' });
  await createTopics(kafka, [config.topics.input], 3);
  role = await startIngestRole({ ...config, ingest: { ...config.ingest, port: 0, host: '127.0.0.1' } }, { logger: noopLogger, metrics: new OrdoMetrics(), connectors: connectorMapper(loadConnectors(dir)) });
});

afterAll(async () => {
  await role?.stop();
  await deleteTopicsWithPrefix(kafka, prefix);
});

describe('POST /v1/connectors/<name>', () => {
  it('maps native payloads to events, validated and written as /v1/events writes them; the topic holds the oracle\'s events', async () => {
    // One payload alone, then the rest as a batch.
    expect((await post('llm-usage', payloads[0])).status).toBe(202);
    const batch = await post('llm-usage', payloads.slice(1));
    expect(batch.status).toBe(202);
    expect(batch.json.events.map((e) => e.id)).toEqual(payloads.slice(1).map((p) => p.request_id));

    const records = await readAll(kafka, config.topics.input, payloads.length, { settleMs: 500 });
    const events = records.map((r) => decodeEvent(r.value)).sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
    expect(events).toEqual(
      payloads.map((p) => ({
        id: p.request_id,
        source: 'llm-usage',
        type: 'llm.tokens',
        subject: p.customer,
        time: p.created * 1000,
        value: String(p.usage.total_tokens),
        dimensions: { model: p.model, ...(p.region ? { region: p.region } : {}) },
      })),
    );
    for (const r of records) expect(r.key?.toString()).toBe(decodeEvent(r.value).subject);

    // What a meter summing tokens per customer must find, from the native payloads (BigInt).
    const sums = (rows: [string, bigint][]): Map<string, bigint> => rows.reduce((m, [k, v]) => m.set(k, (m.get(k) ?? 0n) + v), new Map<string, bigint>());
    expect(sums(events.map((e) => [e.subject, BigInt(e.value)]))).toEqual(sums(payloads.map((p) => [p.customer, BigInt(p.usage.total_tokens)])));
  });

  it('a payload that does not fit answers 400 naming its index and path, and nothing of the request is written', async () => {
    const refused = await post('llm-usage', [
      { ...payloads[0], request_id: 'refused-0' },
      { ...payloads[1], request_id: 'refused-1', usage: { total_tokens: 'lots' } },
      { ...payloads[2], request_id: 'refused-2', customer: undefined },
    ]);
    expect(refused.status).toBe(400);
    expect(refused.json.error.kind).toBe('invalid-payloads');
    expect(refused.json.error.items.map((i) => [i.index, i.path])).toEqual([
      [1, 'usage.total_tokens'],
      [2, 'customer'],
    ]);
    // Mapped but invalid as an event (an id over 1 KiB): the /v1/events validation answers.
    const invalid = await post('llm-usage', { ...payloads[0], request_id: 'x'.repeat(1025) });
    expect([invalid.status, invalid.json.error.kind]).toEqual([400, 'invalid-events']);
    expect((await post('nope', payloads[0])).status).toBe(404);

    const records = await readAll(kafka, config.topics.input, payloads.length, { settleMs: 1_000 });
    expect(records).toHaveLength(payloads.length);
    expect(records.map((r) => decodeEvent(r.value).id).filter((id) => id.startsWith('refused') || id.startsWith('xxx'))).toEqual([]);
  });
});
