// Stops and starts parts of the local stack through the project's own scripts
// (scripts/kafka/*.sh), for fault tests. Only a stack those scripts started from this
// checkout (its pid file under ORDO_LOCAL_DIR) is touched, and only the one the tests use
// (ports taken from KAFKA_BROKERS and SCHEMA_REGISTRY_URL).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BROKERS, REGISTRY_URL } from './cluster.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/** The scripts' environment for the stack the tests talk to. */
function stackEnv(): NodeJS.ProcessEnv {
  const registryPort = new URL(REGISTRY_URL).port || '80';
  const kafkaPort = BROKERS[0]!.split(':').pop()!;
  return { ...process.env, KAFKA_PORT: kafkaPort, REGISTRY_PORT: registryPort };
}

function localDir(): string {
  return process.env.ORDO_LOCAL_DIR ?? path.join(ROOT, '.local');
}

/** Throws unless the registry at SCHEMA_REGISTRY_URL was started by scripts/kafka/up.sh from this checkout. */
export function assertOwnRegistry(): void {
  const pidFile = path.join(localDir(), 'registry', 'pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
  let alive = false;
  try {
    alive = Number.isInteger(pid) && process.kill(pid, 0);
  } catch {
    alive = false;
  }
  if (!alive) {
    throw new Error(
      `the registry at ${REGISTRY_URL} was not started by scripts/kafka/up.sh with ORDO_LOCAL_DIR=${localDir()} (no live pid in ${pidFile}); ` +
        'this test restarts it, so run it against a stack of its own (npm test starts one)',
    );
  }
}

async function registryAnswers(): Promise<boolean> {
  try {
    return (await fetch(`${REGISTRY_URL}/subjects`, { signal: AbortSignal.timeout(2_000) })).ok;
  } catch {
    return false;
  }
}

/** `scripts/kafka/down.sh --registry-only`; resolves once the registry no longer answers. */
export async function stopRegistry(): Promise<void> {
  assertOwnRegistry();
  await run('bash', ['scripts/kafka/down.sh', '--registry-only'], { cwd: ROOT, env: stackEnv() });
  if (await registryAnswers()) throw new Error(`the registry at ${REGISTRY_URL} still answers after down.sh --registry-only`);
}

/** `scripts/kafka/up.sh` (the broker is up, so only the registry starts); resolves once it answers. */
export async function startRegistry(): Promise<void> {
  await run('bash', ['scripts/kafka/up.sh'], { cwd: ROOT, env: stackEnv(), timeout: 180_000 });
  if (!(await registryAnswers())) throw new Error(`the registry at ${REGISTRY_URL} does not answer after up.sh`);
}
