import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LogLine {
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

/** Splits a child's stderr into lines (all of them in `raw`) and parses the JSON log lines into `logs`. */
export function collectLines(stream: NodeJS.ReadableStream, raw: string[], logs: LogLine[]): void {
  let buffer = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      raw.push(line);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        /* not a log line (e.g. a config error message) */
      }
    }
  });
}

/** An `ordo <role>` child process with its JSON log lines collected. */
export class WorkerProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  /** Raw stdout chunks (Ordo logs to stderr; kept to prove nothing else is written there). */
  readonly stdout: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    role: string,
    /** The environment given (on top of this process's). */
    readonly env: Record<string, string>,
    readonly name = role,
  ) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', role], {
      cwd: ROOT,
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ORDO_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    collectLines(this.child.stderr!, this.stderr, this.lines);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.stdout.push(chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  }

  has(predicate: (line: LogLine) => boolean): boolean {
    return this.lines.some(predicate);
  }

  async waitFor(predicate: (line: LogLine) => boolean, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.has(predicate)) {
      if (Date.now() > deadline) throw new Error(`${this.name}: log line not seen within ${timeoutMs} ms; last lines:\n${this.stderr.slice(-15).join('\n')}`);
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited (${this.child.exitCode}); last lines:\n${this.stderr.slice(-15).join('\n')}`);
      await sleep(100);
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 30_000): Promise<number | null> {
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
