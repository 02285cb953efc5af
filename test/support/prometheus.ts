import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { sleep } from './process.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RULES_FILE = join(ROOT, 'deploy/prometheus/rules/ordo.rules.yml');
export const RULES_TEST_FILE = join(ROOT, 'deploy/prometheus/tests/ordo.rules.test.yml');
export const DASHBOARD_FILE = join(ROOT, 'deploy/grafana/dashboards/ordo.json');

/**
 * Runs a Prometheus tool (Debian's `prometheus` package: `promtool`, `prometheus`), or
 * fails with how to install it.
 */
export function runTool(tool: 'promtool' | 'prometheus', args: string[], options: { cwd?: string; timeoutMs?: number } = {}): { status: number | null; output: string } {
  const result = spawnSync(toolPath(tool), args, { cwd: options.cwd ?? ROOT, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The tool's path: $PROMTOOL / $PROMETHEUS if set, else the PATH. Throws if it is not installed. */
export function toolPath(tool: 'promtool' | 'prometheus'): string {
  const path = process.env[tool.toUpperCase()] ?? tool;
  const probe = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error !== undefined && 'code' in probe.error && probe.error.code === 'ENOENT') {
    throw new Error(`${tool} is not installed (Debian's prometheus package, 2.42 or later): run \`bash scripts/install-tools.sh\``);
  }
  if (probe.error) throw probe.error;
  return path;
}

// ---- rules ----

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RecordingRule {
  record: string;
  expr: string;
}

export function loadRules(file = RULES_FILE): { name: string; rules: (AlertRule | RecordingRule)[] }[] {
  return (parse(readFileSync(file, 'utf8')) as { groups: { name: string; rules: (AlertRule | RecordingRule)[] }[] }).groups;
}

export function alertRules(file = RULES_FILE): AlertRule[] {
  return loadRules(file).flatMap((g) => g.rules.filter((r): r is AlertRule => 'alert' in r));
}

// ---- dashboard ----

export interface DashboardQuery {
  panel: string;
  refId: string;
  expr: string;
}

interface Panel {
  title?: string;
  targets?: { refId?: string; expr?: string }[];
  panels?: Panel[];
}

export interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: unknown; definition?: string }[] };
}

export function loadDashboard(file = DASHBOARD_FILE): Dashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
}

/** Every PromQL target of every panel, rows' nested panels included. */
export function dashboardQueries(dashboard: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const visit = (panels: Panel[] | undefined): void => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) {
        if (target.expr !== undefined) out.push({ panel: panel.title ?? '(untitled)', refId: target.refId ?? '?', expr: target.expr });
      }
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  return out;
}

/** The `label_values(selector, label)` query of each query variable. */
export function variableQueries(dashboard: Dashboard): { name: string; selector: string; label: string }[] {
  return (dashboard.templating?.list ?? [])
    .filter((v) => v.type === 'query')
    .map((v) => {
      const query = typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? '');
      const match = /^label_values\((.*),\s*(\w+)\s*\)$/s.exec(query.trim());
      if (!match) throw new Error(`variable ${v.name}: not a label_values(selector, label) query: ${query}`);
      return { name: v.name, selector: match[1]!.trim(), label: match[2]! };
    });
}

/** Replaces `$name`, `${name}` and `${name:format}` with `values[name]`; an unknown variable throws. */
export function substituteVariables(expr: string, values: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g, (_match, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const value = values[name];
    if (value === undefined) throw new Error(`no value for the template variable $${name} in: ${expr}`);
    return value;
  });
}

/** Metric names a PromQL expression selects (Ordo's, plus `up` and `ALERTS`). */
export function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set([...withoutStrings.matchAll(/\b(ordo_[a-z0-9_]+|up|ALERTS)\b/g)].map((m) => m[1]!))];
}

// ---- a real Prometheus server ----

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  query: string;
  health: string;
  lastError?: string;
  state?: 'inactive' | 'pending' | 'firing';
  lastEvaluation: string;
  alerts?: { labels: Record<string, string>; state: string }[];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A `prometheus` child process on 127.0.0.1 with its own storage; stop() removes it all. */
export class PrometheusServer {
  readonly url: string;
  private readonly output: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    const keep = (chunk: string): void => {
      this.output.push(chunk);
      if (this.output.length > 200) this.output.shift();
    };
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /**
   * Starts Prometheus with `config` (a prometheus.yml as an object; JSON is YAML) and waits
   * until it is ready.
   */
  static async start(config: Record<string, unknown>, timeoutMs = 15_000): Promise<PrometheusServer> {
    const binary = toolPath('prometheus');
    const dir = mkdtempSync(join(tmpdir(), 'ordo-prometheus-'));
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const port = await freePort();
    const child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new PrometheusServer(child, dir, port);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await server.stop();
        throw new Error(`prometheus exited (${child.exitCode ?? child.signalCode}):\n${server.log()}`);
      }
      const ready = await fetch(`${server.url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) return server;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`prometheus not ready within ${timeoutMs} ms:\n${server.log()}`);
      }
      await sleep(200);
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  log(): string {
    return this.output.join('').split('\n').slice(-40).join('\n');
  }

  async api<T>(path: string, params: Record<string, string | string[]> = {}): Promise<{ status: string; data?: T; error?: string; errorType?: string }> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) for (const v of Array.isArray(value) ? value : [value]) search.append(key, v);
    const response = await fetch(`${this.url}/api/v1/${path}?${search.toString()}`);
    return (await response.json()) as { status: string; data?: T; error?: string; errorType?: string };
  }

  /** An instant query at the current time. */
  async query(expr: string): Promise<{ status: string; result: Sample[]; resultType?: string; error?: string }> {
    const body = await this.api<{ resultType: string; result: Sample[] | [number, string] }>('query', { query: expr });
    if (body.status !== 'success' || !body.data) return { status: body.status, result: [], error: `${body.errorType}: ${body.error}` };
    const { resultType, result } = body.data;
    // A scalar comes back as one [time, value] pair; make it one unlabelled sample.
    const samples = resultType === 'scalar' ? [{ metric: {}, value: result as [number, string] }] : (result as Sample[]);
    return { status: body.status, result: samples, resultType };
  }

  async rules(): Promise<RuleState[]> {
    const body = await this.api<{ groups: { rules: RuleState[] }[] }>('rules');
    if (body.status !== 'success' || !body.data) throw new Error(`/api/v1/rules: ${body.error}`);
    return body.data.groups.flatMap((g) => g.rules);
  }

  /** SIGTERM to its pid, SIGKILL after `graceMs`; then removes its config and storage. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) {
      process.kill(this.child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
      }, graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
