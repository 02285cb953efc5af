import { afterAll, describe, expect, it } from 'vitest';
import { deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
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
