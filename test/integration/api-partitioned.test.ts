import { freePort } from '../support/local-http.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUsageQuery } from '../../src/api/query-params.js';
import { ReadModel } from '../../src/api/read-model.js';
import { type ApiNodeInfo, decodeApiNodeInfo } from '../../src/api/router.js';
import { encodeHeartbeat } from '../../src/engine/node-registry.js';
import { partitionOf } from '../../src/kafka/partition-of.js';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { noopLogger } from '../../src/observability/logger.js';
import { type ApiRole, startApiRole } from '../../src/roles/api.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { frame } from '../../src/schema/wire-format.js';
import { type UsageAggregate, aggregateKey, usageAggregateSchema, usageAggregateType } from '../../src/usage/aggregation.js';
import { MeterCatalog } from '../../src/usage/meters.js';
import type { WindowSize } from '../../src/usage/windows.js';
import { REGISTRY_URL, createTopics, deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { WorkerProcess } from '../support/process.js';
import { TEST_METERS, writeTestMeters } from '../support/usage-workload.js';
import { childEnv, testConfig } from '../support/worker.js';

const kafka = testKafka();
const prefix = uniqueName('apipart');
const PARTITIONS = 6;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const BASE = Date.UTC(2026, 9, 1);
const SUBJECTS = Array.from({ length: 36 }, (_, i) => `cust-${i}`);
const meters = new MeterCatalog(TEST_METERS);
const metersFile = writeTestMeters();
const range = `from=${new Date(BASE).toISOString()}&to=${new Date(BASE + 4 * DAY).toISOString()}`;
/** Single subject, several, all, grouped, windowed (UTC and a zone that tiles days with hours), distinct counts. */
const QUERIES = [
  `api-spend/usage?subject=cust-3&${range}&windowSize=DAY`,
  `api-spend/usage?subject=cust-1&subject=cust-2&subject=cust-30&${range}&groupBy=subject`,
  `api-spend/usage?${range}`,
  `api-calls/usage?${range}&groupBy=region&windowSize=DAY`,
  `api-spend/usage?${range}&windowSize=HOUR&groupBy=subject`,
  `api-spend/usage?from=2026-10-01T00:00:00-04:00&to=2026-10-04T00:00:00-04:00&windowSize=DAY&windowTimeZone=America/New_York`,
  `active-users/usage?from=${new Date(BASE).toISOString()}&to=${new Date(BASE + DAY).toISOString()}&groupBy=subject`,
];
const env = {
  ORDO_METERS_FILE: metersFile,
  ORDO_API_HOST: '127.0.0.1',
  ORDO_API_SESSION_TIMEOUT_MS: '6000',
  ORDO_API_NODE_HEARTBEAT_MS: '500',
  ORDO_API_NODE_TTL_MS: '3000',
  ORDO_API_FANOUT_TIMEOUT_MS: '1500',
};

const oracle = new ReadModel(meters);
const dirs: string[] = [];
const inProcess = new Map<string, ApiRole>();
const ports = new Map<string, number>();
let child: WorkerProcess | undefined;
let producer: Producer;

interface Answer {
  data: unknown;
  totals: unknown;
  windowsRead: number;
  partial?: boolean;
  missingPartitions?: number[];
  servedBy?: { node: string; partitions: number[] }[];
}

function aggregate(meter: string, subject: string, size: WindowSize, start: number, n: number, groupBy: Record<string, string> = {}): UsageAggregate {
  const m = meters.get(meter)!;
  const value = m.aggregation === 'SUM' ? `${n}.5` : String(n);
  const end = start + (size === 'DAY' ? DAY : HOUR);
  return { meter, subject, groupBy, windowSize: size, windowStart: start, windowEnd: end, aggregation: m.aggregation, value, sum: m.aggregation === 'SUM' ? value : null, count: n, firstEventTime: start, lastEventTime: start + 1, lastServiceTime: (BigInt(start) << 16n).toString(16).padStart(16, '0'), lastServiceNode: 'n', version: 1, corrections: 0 };
}

/** Aggregates as the pipeline writes them (framed Avro, in the subject's partition), some rewritten, some tombstoned; the oracle applies the same. */
async function feed(): Promise<void> {
  const id = await new SchemaCatalog(REGISTRY_URL).register(`${prefix}-aggregates-value`, usageAggregateSchema);
  const messages: { key: string; value: Buffer | null; partition: number }[] = [];
  let n = 1;
  const put = (a: UsageAggregate): void => {
    const key = aggregateKey(a);
    oracle.apply(key, a);
    messages.push({ key, value: frame(id, usageAggregateType.toBuffer(a)), partition: partitionOf(a.subject, PARTITIONS) });
  };
  for (const subject of SUBJECTS) {
    for (let d = 0; d < 4; d++) {
      const day = BASE + d * DAY;
      put(aggregate('api-spend', subject, 'DAY', day, n++ % 97));
      for (const h of [3, 7, 20]) put(aggregate('api-spend', subject, 'HOUR', day + h * HOUR, n++ % 89));
      for (const region of n % 3 === 0 ? ['eu'] : ['eu', 'us']) put(aggregate('api-calls', subject, 'DAY', day, n++ % 13, { region }));
      put(aggregate('active-users', subject, 'DAY', day, (n++ % 5) + 1));
    }
    // A newer version of one aggregate, and a tombstone (a deletion's sweep) of another.
    put({ ...aggregate('api-spend', subject, 'DAY', BASE + DAY, 1000 + (n++ % 7)), version: 2 });
    if (SUBJECTS.indexOf(subject) % 5 === 0) {
      const gone = aggregate('api-spend', subject, 'DAY', BASE + 2 * DAY, 0);
      oracle.remove(aggregateKey(gone));
      messages.push({ key: aggregateKey(gone), value: null, partition: partitionOf(subject, PARTITIONS) });
    }
  }
  await producer.send({ topic: `${prefix}-aggregates`, acks: -1, messages });
}


async function replicaEnv(node: string): Promise<Record<string, string>> {
  const port = await freePort();
  ports.set(node, port);
  const dir = mkdtempSync(join(tmpdir(), `ordo-apipart-${node}-`));
  dirs.push(dir);
  return { ...env, ORDO_NODE_ID: node, ORDO_API_PORT: String(port), ORDO_API_STORE_DIR: dir };
}

async function startReplica(node: string): Promise<ApiRole> {
  const config = testConfig(prefix, await replicaEnv(node));
  const role = await startApiRole(config, { logger: noopLogger, metrics: new OrdoMetrics() });
  inProcess.set(node, role);
  return role;
}

async function get(node: string, path: string): Promise<{ status: number; body: Answer & { error?: { kind: string } }; servedBy: string | null }> {
  const response = await fetch(`http://127.0.0.1:${ports.get(node)}/v1/meters/${path}`);
  return { status: response.status, body: (await response.json()) as never, servedBy: response.headers.get('ordo-served-by') };
}

/** What the oracle answers, over every subject or only those in the partitions given. */
function expected(path: string, onlyPartitions?: ReadonlySet<number>): Pick<Answer, 'data' | 'totals' | 'windowsRead'> {
  const [slug, query] = path.split('/usage?') as [string, string];
  const q = parseUsageQuery(slug, new URLSearchParams(query), meters);
  const subjects = onlyPartitions === undefined ? q.subjects : (q.subjects ?? SUBJECTS).filter((s) => onlyPartitions.has(partitionOf(s, PARTITIONS)));
  if (subjects !== undefined && subjects.length === 0) return { data: [], totals: [], windowsRead: 0 };
  const a = oracle.query({ ...q, subjects });
  return { data: a.data, totals: a.totals, windowsRead: a.windowsRead };
}

/** Every query on `node` equals the oracle, or (`allowPartial`) is flagged partial and equals the oracle over the partitions it had. */
async function expectOracle(node: string, options: { allowPartial?: boolean } = {}): Promise<{ partial: number }> {
  let partial = 0;
  for (const path of QUERIES) {
    const { status, body } = await get(node, path);
    expect(status, `${node} ${path}: ${JSON.stringify(body)}`).toBe(200);
    if (body.partial === true) {
      expect(options.allowPartial, `${node} ${path} answered partial`).toBe(true);
      partial += 1;
      const had = new Set(Array.from({ length: PARTITIONS }, (_, p) => p).filter((p) => !body.missingPartitions!.includes(p)));
      const want = expected(path, had);
      expect(body.data, `${node} ${path} (partial: only the partitions it had)`).toEqual(want.data);
      continue;
    }
    expect(body.missingPartitions).toEqual([]);
    const want = expected(path);
    expect({ data: body.data, totals: body.totals, windowsRead: body.windowsRead }, `${node} ${path}`).toEqual(want);
  }
  return { partial };
}

/** The live nodes as `node` sees them. */
function view(node: string): Map<string, ApiNodeInfo> {
  return inProcess.get(node)!.readSide.nodes();
}

/** Until `node` sees exactly `nodes` live, every partition owned once among them and none restoring. */
async function settled(node: string, nodes: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = view(node);
    const owners = [...seen].flatMap(([n, info]) => info.owned.map((p) => ({ n, p, restoring: info.held[String(p)]?.restoring ?? true })));
    const ok =
      [...seen.keys()].sort().join() === [...nodes].sort().join() &&
      owners.length === PARTITIONS &&
      new Set(owners.map((o) => o.p)).size === PARTITIONS &&
      owners.every((o) => !o.restoring) &&
      // Balanced: a replica that heartbeats before it joined the group owns nothing yet.
      nodes.every((n) => (seen.get(n)?.owned.length ?? 0) >= Math.floor(PARTITIONS / nodes.length));
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`not settled on ${nodes.join(', ')}: ${JSON.stringify([...seen])}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('partitioned read side: three api replicas, routing and fan-out through the real broker', () => {
  beforeAll(async () => {
    producer = kafka.producer();
    await producer.connect();
    await createTopics(kafka, [`${prefix}-aggregates`, `${prefix}-in`, `${prefix}-ordered`, `${prefix}-dlq`, `${prefix}-late`, `${prefix}-duplicates`], PARTITIONS);
    await feed();
  });

  afterAll(async () => {
    for (const role of inProcess.values()) await role.stop().catch(() => undefined);
    if (child !== undefined && child.child.exitCode === null) child.child.kill('SIGKILL');
    await producer?.disconnect();
    await deleteTopicsWithPrefix(kafka, prefix);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('answers like one replica before, during and after replicas leave and join; a down owner answers partial or 503', async () => {
    // Two replicas in process, one as a child process (so it can be frozen and killed).
    await Promise.all([startReplica('api-a'), startReplica('api-b')]);
    child = new WorkerProcess('api', childEnv(prefix, 'api-c', await replicaEnv('api-c')), 'api-c');
    await settled('api-a', ['api-a', 'api-b', 'api-c']);
    await settled('api-b', ['api-a', 'api-b', 'api-c']);
    for (const node of ['api-a', 'api-b', 'api-c']) await expectOracle(node);
    // Every replica holds only its share, and a single subject is served by its owner alone.
    const shares = ['api-a', 'api-b'].map((n) => inProcess.get(n)!.readSide.reader.ownedPartitions().length);
    expect(shares.every((s) => s === 2)).toBe(true);
    const single = await get('api-a', QUERIES[0]!);
    const owner = [...view('api-a')].find(([, info]) => info.owned.includes(partitionOf('cust-3', PARTITIONS)))![0];
    expect(single.body.servedBy).toEqual([{ node: owner, partitions: [partitionOf('cust-3', PARTITIONS)], lagRecords: 0 }]);
    expect(single.servedBy).toBe(owner);

    // A stale registry entry: a node that claims cust-3's partition, further ahead, at an address nobody answers.
    const p3 = partitionOf('cust-3', PARTITIONS);
    const ghost = { url: `http://127.0.0.1:${await freePort()}`, owned: [p3], held: { [String(p3)]: { next: '999999', end: '999999', restoring: false } }, misplaced: 0, partitions: PARTITIONS };
    await producer.send({ topic: `${prefix}-api-nodes`, acks: -1, messages: [{ key: 'ghost', value: encodeHeartbeat({ node: 'ghost', at: Date.now(), info: ghost }) }] });
    await expect.poll(() => view('api-a').has('ghost'), { timeout: 10_000 }).toBe(true);
    const viaGhost = await get('api-a', QUERIES[0]!);
    expect(viaGhost.status).toBe(200);
    expect(viaGhost.body.data).toEqual(expected(QUERIES[0]!).data);
    expect(viaGhost.body.servedBy?.map((s) => s.node)).toEqual([owner]);
    // A query for a partition the topic does not have (a caller routing by another layout) is refused, named.
    const unknown = await fetch(`http://127.0.0.1:${ports.get('api-a')}/v1/internal/usage-parts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ meter: 'api-spend', query: range, partitions: [PARTITIONS + 3] }),
    });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { kind: string; message: string } }).error).toMatchObject({ kind: 'bad-parameter', message: expect.stringContaining(`no partition ${PARTITIONS + 3}`) });
    expect(decodeApiNodeInfo(ghost)).toBeDefined();

    // Freeze api-c: its partitions answer as missing (partial), or 503 with requireComplete, never silently less.
    const cOwned = view('api-a').get('api-c')!.owned;
    child.child.kill('SIGSTOP');
    await expect.poll(() => view('api-a').has('api-c'), { timeout: 10_000 }).toBe(false);
    const partial = await get('api-a', QUERIES[2]!);
    expect(partial.status).toBe(200);
    expect(partial.body.partial).toBe(true);
    expect(partial.body.missingPartitions).toEqual(cOwned);
    expect(partial.body.data).toEqual(expected(QUERIES[2]!, new Set([0, 1, 2, 3, 4, 5].filter((p) => !cOwned.includes(p)))).data);
    const complete = await get('api-a', `${QUERIES[2]!}&requireComplete=true`);
    expect(complete.status).toBe(503);
    expect(complete.body.error).toMatchObject({ kind: 'partitions-unavailable', missingPartitions: cOwned });

    // Kill it: its partitions move to the others (after the session timeout); meanwhile answers are exact or flagged partial.
    child.child.kill('SIGKILL');
    await child.exited;
    const moving = settled('api-a', ['api-a', 'api-b']);
    let partials = 0;
    let done = false;
    void moving.then(() => (done = true), () => (done = true));
    while (!done) partials += (await expectOracle('api-b', { allowPartial: true })).partial;
    await moving;
    await settled('api-b', ['api-a', 'api-b']);
    for (const node of ['api-a', 'api-b']) await expectOracle(node);
    expect(partials).toBeGreaterThan(0);

    // A fourth replica joins with an empty store: while it restores, the previous holders answer; then it holds its share.
    const joining = startReplica('api-d');
    let joined = false;
    void joining.then(() => (joined = true), () => (joined = true));
    while (!joined) await expectOracle('api-a', { allowPartial: true });
    await joining;
    const moved = settled('api-a', ['api-a', 'api-b', 'api-d']);
    let settledNow = false;
    void moved.then(() => (settledNow = true), () => (settledNow = true));
    while (!settledNow) await expectOracle('api-b', { allowPartial: true });
    await moved;
    await settled('api-d', ['api-a', 'api-b', 'api-d']);
    for (const node of ['api-a', 'api-b', 'api-d']) await expectOracle(node);
    expect(inProcess.get('api-d')!.readSide.reader.ownedPartitions()).toHaveLength(2);
    // The partitions that moved to api-d are released by their previous holders once it holds them.
    for (const node of ['api-a', 'api-b']) {
      const reader = inProcess.get(node)!.readSide.reader;
      await expect.poll(() => [...reader.heldPartitions().keys()].sort((x, y) => x - y), { timeout: 15_000 }).toEqual(reader.ownedPartitions());
    }
    for (const node of ['api-a', 'api-b', 'api-d']) await expectOracle(node);
  });
});
