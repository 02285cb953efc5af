import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.js';
import { deleteTopicsWithPrefix, testKafka, uniqueName } from '../support/cluster.js';
import { childEnv } from '../support/worker.js';

/**
 * Signals sent the way a user sends them, to the process the user started with the
 * documented commands: Ctrl-C in a terminal is SIGINT to the whole foreground process
 * group; `kill <pid>` is SIGTERM to that pid. Every role must drain (exit 0, `"to":
 * "stopped"`), including when one Ctrl-C reaches the worker twice (`npm start` forwards its
 * own copy besides the terminal's).
 */
const kafka = testKafka();
const prefix = uniqueName('it-signals');
const children: ChildProcess[] = [];

interface Started {
  child: ChildProcess;
  logs: { msg?: string; to?: string; state?: string }[];
  exited: Promise<number | null>;
}

function start(command: string, args: string[], env: Record<string, string>): Started {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env, ORDO_LOG_LEVEL: 'debug' }, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const logs: Started['logs'] = [];
  let buffer = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Started['logs'][number]);
      } catch {
        /* npm's own output */
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, logs, exited };
}

async function ready(s: Started, port: number): Promise<void> {
  const deadline = Date.now() + 90_000;
  while ((await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0)) !== 200) {
    if (s.child.exitCode !== null) throw new Error(`exited ${s.child.exitCode}: ${JSON.stringify(s.logs.slice(-5))}`);
    if (Date.now() > deadline) throw new Error('not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One drain, no forced exit, the final state `stopped` (`code`: the worker's exit code, when the test sees it). */
function expectDrained(role: string, s: Started, code?: number | null): void {
  const messages = s.logs.map((l) => l.msg);
  expect({
    role,
    ...(code === undefined ? {} : { code }),
    draining: messages.filter((m) => m === 'signal received: draining').length,
    forced: messages.includes('second signal: exiting without drain'),
    exit: s.logs.find((l) => l.msg === 'exit')?.state,
  }).toEqual({ role, ...(code === undefined ? {} : { code: 0 }), draining: 1, forced: false, exit: 'stopped' });
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** True if the process was still there to receive it. */
function signalIfRunning(child: ChildProcess, signal: NodeJS.Signals): boolean {
  try {
    return child.exitCode === null && process.kill(child.pid!, signal);
  } catch {
    return false; // exited meanwhile
  }
}

const port = (): number => 20_000 + Math.floor(Math.random() * 20_000);

describe('signals reach the worker and drain it', () => {
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await deleteTopicsWithPrefix(kafka, prefix);
  });

  const env = (role: string, metricsPort: number): Record<string, string> => ({
    ...childEnv(prefix, `n-${role}`, { ORDO_METRICS_PORT: String(metricsPort), ORDO_API_PORT: String(port()), ORDO_METERS_FILE: 'docs/meters.example.yaml' }),
    ORDO_TOPIC_PARTITIONS: '2',
  });

  it('bin/ordo: one Ctrl-C (SIGINT to the process group) drains each role, twice over in a row (pipeline, merge, api)', async () => {
    for (const role of ['pipeline', 'merge', 'api']) {
      const metricsPort = port();
      const s = start('bin/ordo', [role], env(role, metricsPort));
      await ready(s, metricsPort);
      process.kill(-s.child.pid!, 'SIGINT'); // the terminal's Ctrl-C
      // A forwarded copy (npm sends one), once the first was taken: two signals that arrive
      // together are merged by the kernel, so only a later copy exercises the worker's rule.
      await until(() => s.logs.some((l) => l.msg === 'signal received: draining') || s.child.exitCode !== null);
      const copySent = signalIfRunning(s.child, 'SIGINT');
      expectDrained(role, s, await s.exited);
      if (copySent) expect(s.logs.some((l) => l.msg === 'same signal again within a second: still draining')).toBe(true);
    }
  }, 240_000);

  it('bin/ordo: `kill <pid>` (SIGTERM) reaches the worker itself, not a wrapper', async () => {
    const metricsPort = port();
    const s = start('bin/ordo', ['pipeline'], env('pipeline', metricsPort));
    await ready(s, metricsPort);
    s.child.kill('SIGTERM');
    expectDrained('pipeline', s, await s.exited);
  }, 120_000);

  it('npm start -- api: one Ctrl-C reaches the worker from the terminal and from npm, and it drains', async () => {
    const metricsPort = port();
    const s = start('npm', ['start', '--silent', '--', 'api'], env('api', metricsPort));
    await ready(s, metricsPort);
    process.kill(-s.child.pid!, 'SIGINT');
    await s.exited; // npm's own exit code says how npm ended (it re-raises the signal), not the worker
    expectDrained('api', s);
  }, 120_000);
});
