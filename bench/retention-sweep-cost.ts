// Measures the retention sweep's own CPU: one round over N expired MINUTE keys (the read's
// visit, the sort) and the steps that tombstone them, ORDO_RETENTION_SWEEP_BATCH at a time.
// Usage: npx tsx bench/retention-sweep-cost.ts [keys] [batch]
import { InMemoryStore } from '../src/engine/state-store.js';
import { stringCodec } from '../src/model/store.js';
import { RetentionSweeper } from '../src/retention/retention-sweep.js';
import { aggregateKey } from '../src/usage/aggregation.js';

const keys = Number(process.argv[2] ?? 100_000);
const batch = Number(process.argv[3] ?? 1_000);
const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;
const log = Array.from({ length: keys }, (_, i) => ({
  key: aggregateKey({ meter: 'api-spend', subject: `customer-${i % 1_000}`, groupBy: { region: 'eu' }, windowSize: 'MINUTE', windowStart: T0 + Math.floor(i / 1_000) * MINUTE }),
  ts: T0 + Math.floor(i / 1_000) * MINUTE + 30_000,
}));
const meta = new InMemoryStore<string>('meta', stringCodec);
let visitMs = 0;
const sweeper = new RetentionSweeper({
  policy: { MINUTE: MINUTE },
  allowedLatenessMs: 0,
  maxFutureMs: 0,
  maxSkewMs: 0,
  sweepBatch: batch,
  aggregatesTopic: 'aggregates',
  maxKeysPerRound: keys,
  read: async (_p, _range, visit) => {
    await Promise.resolve();
    const t = performance.now();
    for (const r of log) visit(r.key, Buffer.from('x'), r.ts);
    visitMs = performance.now() - t;
  },
});
const now = T0 + 400 * MINUTE;
const start = performance.now();
sweeper.step(0, meta, { horizon: now, now });
await new Promise((r) => setImmediate(r));
const roundMs = performance.now() - start;
let tombstones = 0;
let steps = 0;
const t = performance.now();
for (;;) {
  const result = sweeper.step(0, meta, { horizon: now, now });
  meta.commit();
  steps += 1;
  if (!result || result.outputs.length === 0) break;
  tombstones += result.outputs.length;
}
const stepMs = performance.now() - t;
console.log(JSON.stringify({ keys, batch, visitMs: Math.round(visitMs), roundMs: Math.round(roundMs), tombstones, steps, stepMs: Math.round(stepMs), usPerTombstone: +((stepMs * 1000) / tombstones).toFixed(2), usPerKeyRead: +((roundMs * 1000) / keys).toFixed(2) }));
