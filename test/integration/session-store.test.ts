// The receiver sessions' store against the real broker: replicas following one compacted
// sessions topic agree on every session, the log decides a race between two takers, and a
// restarted replica rebuilds the same state from the topic.
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SessionState, claimState, nextState } from '../../src/deliver/session-state.js';
import { SessionStore } from '../../src/engine/session-store.js';
import { noopLogger } from '../../src/observability/logger.js';
import { deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';

function session(id: string, owner: string): SessionState {
  return { id, stream: 'ordered', filter: {}, principal: 'alice', acked: 'v.0.0', inflight: null, owner, epoch: 1, seq: 1, lastActiveMs: Date.now() };
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('session store', () => {
  const kafka: Kafka = testKafka();
  const prefix = uniqueName('it-sessions');
  const stores: SessionStore[] = [];

  beforeAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: `${prefix}-a`, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
        { topic: `${prefix}-b`, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
  });

  afterAll(async () => {
    for (const store of stores) await store.stop();
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  async function open(topic: string, ignored: SessionState[] = []): Promise<SessionStore> {
    const store = new SessionStore({ kafka, topic, groupId: `${prefix}-g`, logger: noopLogger, onIgnored: (s) => ignored.push(s) });
    stores.push(store);
    await store.start();
    return store;
  }

  it('two replicas racing to take over one session: exactly one claim takes effect, and both agree on it', async () => {
    const topic = `${prefix}-a`;
    const ignoredOnA: SessionState[] = [];
    const [a, b] = await Promise.all([open(topic, ignoredOnA), open(topic)]);
    const ids = Array.from({ length: 10 }, (_, i) => `race-${i}`);
    for (const id of ids) expect(await a.write(session(id, 'gone'))).toBe(true);
    await until(() => ids.every((id) => b.get(id) !== undefined), 'b to read every session');

    for (const id of ids) {
      const base = a.get(id)!;
      expect(b.get(id)).toEqual(base);
      const [wonA, wonB] = await Promise.all([a.write(claimState(base, 'node-a')), b.write(claimState(base, 'node-b'))]);
      expect([wonA, wonB].filter(Boolean)).toHaveLength(1);
      const winner = wonA ? 'node-a' : 'node-b';
      await until(() => a.get(id)?.seq === 2 && b.get(id)?.seq === 2, 'both to apply the claims');
      expect(a.get(id)).toEqual(b.get(id));
      expect(a.get(id)).toMatchObject({ owner: winner, epoch: 2 });
      // The loser writing again from what it had is ignored as well: the winner's state stays.
      const loser = wonA ? b : a;
      expect(await loser.write(claimState(base, 'late'))).toBe(false);
      expect(loser.get(id)?.owner).toBe(winner);
    }
    // Each loser's record (3 per session) reached onIgnored on a, with the winning state.
    await until(() => ignoredOnA.length === 2 * ids.length, 'a to see every ignored record');
    expect(ignoredOnA.every((s) => s.seq === 2)).toBe(true);
  });

  it('a restarted replica rebuilds the same sessions from the topic (writes, claims, lost writes and tombstones)', async () => {
    const topic = `${prefix}-b`;
    const a = await open(topic);
    const kept = session('kept', 'node-a');
    expect(await a.write(kept)).toBe(true);
    const acked = nextState(kept, { acked: 'v.7.3', inflight: { from: 'v.7.3', to: 'v.9.3', count: 2 } });
    expect(await a.write(acked)).toBe(true);
    const taken = claimState(acked, 'node-b');
    expect(await a.write(taken)).toBe(true);
    expect(await a.write(nextState(acked, { acked: 'v.9.9' }))).toBe(false); // the old owner, too late
    const dropped = session('dropped', 'node-a');
    expect(await a.write(dropped)).toBe(true);
    await a.remove('dropped');
    expect(a.get('dropped')).toBeUndefined();
    await a.stop();
    stores.splice(stores.indexOf(a), 1);

    const again = await open(topic);
    expect(again.get('kept')).toEqual(taken);
    expect(again.get('dropped')).toBeUndefined();
    expect([...again.states()].map((s) => s.id)).toEqual(['kept']);
  });
});
