/**
 * The scale bench's child processes: `ordo api` replicas (as test/support/worker.ts spawns
 * roles) and the in-memory baseline (bench/scale-baseline.ts), with what the bench measures
 * of them from the outside: resident memory from /proc (anonymous and file-backed apart: a
 * memory-mapped store's pages are file-backed page cache), the V8 heap from /metrics, and
 * the bytes of the store directory on disk. Every child is killed by its pid when the bench
 * ends, whatever happens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, withTimeout } from './kafka.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOG_LINES_KEPT = 40;

const children = new Set<ChildProcess>();

/** SIGKILLs every child still running (on exit, error or interrupt). */
export function killAllChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export class ChildRole {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private readonly tail: string[] = [];
  private readonly stdoutLines: string[] = [];

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(this.child);
    lines(this.child.stderr!, (line) => {
      this.tail.push(line);
      if (this.tail.length > LOG_LINES_KEPT) this.tail.shift();
    });
    lines(this.child.stdout!, (line) => this.stdoutLines.push(line));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        children.delete(this.child);
        resolve(code ?? (signal ? -1 : null));
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  lastLines(n = 8): string {
    return this.tail.slice(-n).map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line)).join('\n');
  }

  /** The first stdout line, parsed as JSON (the baseline's ready line). */
  async firstLine<T>(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.stdoutLines.length === 0) {
      if (!this.running()) throw new Error(`${this.name} exited (${this.child.exitCode}); last lines:\n${this.lastLines()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ready line within ${timeoutMs} ms; last lines:\n${this.lastLines()}`);
      await sleep(100);
    }
    return JSON.parse(this.stdoutLines[0]!) as T;
  }

  /** SIGTERM (clean) or SIGKILL (crash); resolves with the exit code. SIGKILL after `graceMs` anyway. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM', graceMs = 45_000): Promise<number | null> {
    if (this.running()) this.child.kill(signal);
    const timer = setTimeout(() => this.running() && this.child.kill('SIGKILL'), graceMs);
    try {
      return await withTimeout(this.exited, graceMs + 5_000, `${this.name} exit`);
    } finally {
      clearTimeout(timer);
    }
  }
}

function lines(stream: NodeJS.ReadableStream, each: (line: string) => void): void {
  let buffer = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      each(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  });
}

export interface ProcessMemory {
  /** VmRSS: all resident pages. */
  rssBytes: number | null;
  /** RssAnon: the process's own memory (heap, buffers, code). */
  rssAnonBytes: number | null;
  /** RssFile: resident file-backed pages (a memory-mapped store read through the page cache). */
  rssFileBytes: number | null;
  /** ordo_nodejs_heap_size_used_bytes from /metrics, when the child serves it. */
  heapUsedBytes: number | null;
}

/** Resident memory of `pid` from /proc (Linux; null elsewhere). */
export function procMemory(pid: number): Pick<ProcessMemory, 'rssBytes' | 'rssAnonBytes' | 'rssFileBytes'> {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number | null => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : null;
    };
    return { rssBytes: kb('VmRSS'), rssAnonBytes: kb('RssAnon'), rssFileBytes: kb('RssFile') };
  } catch {
    return { rssBytes: null, rssAnonBytes: null, rssFileBytes: null };
  }
}

/** A gauge's value from a Prometheus text exposition (the first sample of that name). */
export async function scrapeGauge(metricsPort: number, name: string): Promise<number | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Bytes the files under `dir` take: their sizes and their allocated blocks (lmdb files are sparse). */
export function diskBytes(dir: string): { apparent: number; allocated: number } {
  let apparent = 0;
  let allocated = 0;
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile()) {
        const s = statSync(path);
        apparent += s.size;
        allocated += s.blocks * 512;
      }
    }
  };
  walk(dir);
  return { apparent, allocated };
}
