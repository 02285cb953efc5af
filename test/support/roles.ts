import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BROKERS } from './cluster.js';
import { freePort } from './prometheus.js';
import { WorkerProcess, sleep } from './process.js';
import { childEnv } from './worker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** An `ordo <role>` process with its metrics server on a port of its own. */
export interface RunningRole {
  process: WorkerProcess;
  metricsPort: number;
}

/** Starts `ordo <role>` for the test's topics (named after `prefix`) with /healthz and /readyz on a free port. */
export async function spawnRole(role: string, prefix: string, name: string, overrides: Record<string, string> = {}): Promise<RunningRole> {
  const metricsPort = await freePort();
  const extra: Record<string, string> = { ORDO_METRICS_PORT: String(metricsPort), ...overrides };
  if (role === 'api') {
    extra.ORDO_API_PORT ??= String(await freePort());
    extra.ORDO_API_HOST ??= '127.0.0.1'; // no auth, so loopback only (any other address warns)
  }
  if (role === 'deliver') {
    extra.ORDO_DELIVER_PORT ??= String(await freePort());
    extra.ORDO_DELIVER_HOST ??= '127.0.0.1';
  }
  return { process: new WorkerProcess(role, childEnv(prefix, name, extra), name), metricsPort };
}

/** GET http://127.0.0.1:<port><path>: status and JSON body, or status 0 when nothing answers. */
export async function probe(port: number, path: '/healthz' | '/readyz'): Promise<{ status: number; body: unknown }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
    return { status: res.status, body: await res.json() };
  } catch {
    return { status: 0, body: null };
  }
}

/** Waits until every role answers /readyz 200; fails early if one exits, with its last log lines. */
export async function waitAllReady(roles: RunningRole[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exited = roles.find((r) => r.process.child.exitCode !== null || r.process.child.signalCode !== null);
    if (exited) throw new Error(`${exited.process.name} exited (${exited.process.child.exitCode}); last lines:\n${exited.process.stderr.slice(-15).join('\n')}`);
    const answers = await Promise.all(roles.map((r) => probe(r.metricsPort, '/readyz')));
    if (answers.every((a) => a.status === 200)) return;
    if (Date.now() > deadline) {
      const states = roles.map((r, i) => `${r.process.name}: ${answers[i]!.status} ${JSON.stringify(answers[i]!.body)}`).join('; ');
      throw new Error(`not every role ready within ${timeoutMs} ms: ${states}`);
    }
    await sleep(250);
  }
}

/**
 * Restarts the broker of KAFKA_BROKERS through the project's script (stays down `downSeconds`).
 * The script refuses (and this rejects) unless that broker was started by scripts/kafka/up.sh
 * under ORDO_LOCAL_DIR, so a shared broker someone else started is never touched.
 */
export function restartBroker(downSeconds: number): Promise<void> {
  const kafkaPort = BROKERS[0]!.split(':').pop()!;
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      ['scripts/kafka/restart-broker.sh'],
      { cwd: ROOT, env: { ...process.env, KAFKA_PORT: kafkaPort, ORDO_BROKER_DOWN_SECONDS: String(downSeconds) }, timeout: 180_000 },
      (error, _stdout, stderr) => (error ? reject(new Error(`broker restart failed: ${error.message}\n${stderr}`)) : resolve()),
    );
  });
}
