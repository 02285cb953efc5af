import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type LogLine, ROOT, collectLines } from '../support/process.js';

/**
 * Runs the runnable blocks of a Markdown document as a reader would type them.
 *
 *   ```bash runnable [id=<name>]                      runs to completion; must exit 0
 *   ```bash runnable background=<name> ready=<port>   one command line started in a process
 *                                                     group of its own (a terminal), exec'd so
 *                                                     its pid is the worker's; waits for /readyz
 *   <!-- docs-test: stop <name> SIGINT|SIGTERM -->    Ctrl-C (SIGINT to the process group, as a
 *                                                     terminal sends it) or `kill <pid>`
 *
 * Blocks share their shell variables (`export`s carry over, as in one terminal session).
 * Ports and topic names in the text are replaced before running (see `substitute`).
 */

export type Step =
  | { kind: 'run'; doc: string; line: number; id: string | undefined; script: string }
  | { kind: 'background'; doc: string; line: number; name: string; readyPort: string; command: string }
  | { kind: 'stop'; doc: string; line: number; name: string; signal: 'SIGINT' | 'SIGTERM' };

export function parseSteps(doc: string): Step[] {
  const text = readFileSync(`${ROOT}/${doc}`, 'utf8');
  const lines = text.split('\n');
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const stop = /^<!-- docs-test: stop (\S+) (SIGINT|SIGTERM) -->$/.exec(line);
    if (stop) {
      steps.push({ kind: 'stop', doc, line: i + 1, name: stop[1]!, signal: stop[2] as 'SIGINT' | 'SIGTERM' });
      continue;
    }
    const fence = /^```bash runnable\b(.*)$/.exec(line);
    if (!fence) continue;
    const attrs = Object.fromEntries([...fence[1]!.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j] !== '```'; j++) body.push(lines[j]!);
    if (j === lines.length) throw new Error(`${doc}:${i + 1}: unterminated block`);
    if (attrs.background !== undefined) {
      if (body.length !== 1 || attrs.ready === undefined) throw new Error(`${doc}:${i + 1}: a background block is one command line with ready=<port>`);
      steps.push({ kind: 'background', doc, line: i + 1, name: attrs.background, readyPort: attrs.ready, command: body[0]! });
    } else {
      steps.push({ kind: 'run', doc, line: i + 1, id: attrs.id, script: body.join('\n') });
    }
    i = j;
  }
  return steps;
}

/** Whole numbers (ports) and whole topic names, replaced; longest names first. */
export function substitute(text: string, replacements: Map<string, string>): string {
  let out = text;
  for (const [from, to] of [...replacements].sort((a, b) => b[0].length - a[0].length)) {
    const escaped = from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`(?<![\\w.-])${escaped}(?![\\w-]|\\.\\w)`, 'g'), to);
  }
  return out;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a script in bash with the shared state file; its exports are saved back to it. */
export function runScript(script: string, env: NodeJS.ProcessEnv, stateFile: string, timeoutMs = 60_000): Promise<RunResult> {
  const wrapped = `set -eo pipefail\nsource "${stateFile}"\n${script}\nexport -p > "${stateFile}"\n`;
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', wrapped], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A role started the way a reader starts it in a terminal of its own. */
export class Background {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    command: string,
    env: NodeJS.ProcessEnv,
    stateFile: string,
  ) {
    // `exec env …`: the command's assignments apply and its process replaces the shell, as
    // bin/ordo's own exec does: the pid is the worker's.
    this.child = spawn('bash', ['-c', `source "${stateFile}"\nexec env ${command}`], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    collectLines(this.child.stderr!, this.stderr, this.logs);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  }

  async ready(port: string, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited ${this.child.exitCode}:\n${this.stderr.slice(-20).join('\n')}`);
      const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`${this.name} not ready on ${port} within ${timeoutMs} ms:\n${this.stderr.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** SIGINT to the process group (a terminal's Ctrl-C), SIGTERM to the pid (`kill <pid>`). */
  signal(signal: 'SIGINT' | 'SIGTERM'): void {
    if (signal === 'SIGINT') process.kill(-this.child.pid!, 'SIGINT');
    else this.child.kill('SIGTERM');
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-this.child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}
