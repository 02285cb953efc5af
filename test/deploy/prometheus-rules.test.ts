// Ordo's Prometheus alert rules (deploy/prometheus/rules/) with the real promtool: syntax
// (`promtool check rules`) and behaviour (`promtool test rules` over
// deploy/prometheus/tests/, a firing and a quiet case per alert). Then what promtool does not
// check: every alert has a severity, annotations and a runbook section that exists; the rules
// and the Grafana dashboard (deploy/grafana/dashboards/ordo.json) query only metrics Ordo
// exports. test/integration/prometheus.test.ts runs all of it in a real Prometheus.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { headings, readDoc } from '../support/markdown.js';
import {
  DASHBOARD_FILE,
  RULES_FILE,
  RULES_TEST_FILE,
  alertRules,
  dashboardQueries,
  loadDashboard,
  loadRules,
  metricNames,
  runTool,
  substituteVariables,
  variableQueries,
} from '../support/prometheus.js';

const SEVERITIES = ['critical', 'warning', 'info'];
const RUNBOOK = 'docs/operations.md';

function runbookAnchors(): Set<string> {
  return new Set(headings(readDoc(RUNBOOK)).map((h) => h.anchor));
}

/** Every series name Ordo's metrics registry exposes (prom-client's defaults included, as the CLI runs). */
async function exportedSeriesNames(): Promise<Set<string>> {
  const metrics = new OrdoMetrics({ defaultMetrics: true });
  const names = new Set<string>(['up', 'ALERTS']);
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    if (String(metric.type) === 'summary') for (const suffix of ['_sum', '_count']) names.add(metric.name + suffix);
  }
  return names;
}

describe('deploy/prometheus/rules/ordo.rules.yml', () => {
  const alerts = alertRules();

  it('passes `promtool check rules`', () => {
    const { status, output } = runTool('promtool', ['check', 'rules', RULES_FILE]);
    expect(status, output).toBe(0);
    const count = loadRules().reduce((n, g) => n + g.rules.length, 0);
    expect(output).toContain(`SUCCESS: ${count} rules found`);
  });

  it('passes its unit tests (`promtool test rules`)', () => {
    const { status, output } = runTool('promtool', ['test', 'rules', RULES_TEST_FILE]);
    expect(status, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });

  it('tests every alert both firing and not firing', () => {
    const tests = (parse(readFileSync(RULES_TEST_FILE, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${alert}: no case where it fires`).toBe(true);
      expect(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${alert}: no case where it stays quiet`).toBe(true);
    }
    const names = new Set(alerts.map((a) => a.alert));
    for (const c of cases) expect(names.has(c.alertname), `the tests name an unknown alert ${c.alertname}`).toBe(true);
  });

  it('gives every alert a unique name, a `for`, a severity, a summary, a description and a runbook section', () => {
    const anchors = runbookAnchors();
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
    for (const rule of alerts) {
      expect(rule.alert, 'alert names are Ordo…').toMatch(/^Ordo[A-Z]\w+$/);
      expect(rule.for, `${rule.alert}: for`).toMatch(/^\d+[smh]$/);
      expect(SEVERITIES, `${rule.alert}: severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert}: summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert}: description`).toBeTruthy();
      const anchor = new RegExp(`/${RUNBOOK.replace('.', '\\.')}#([a-z0-9-]+)$`).exec(rule.annotations?.runbook_url ?? '')?.[1];
      expect(anchor, `${rule.alert}: runbook_url ${rule.annotations?.runbook_url} does not point into ${RUNBOOK}`).toBeDefined();
      expect(anchors.has(anchor!), `${rule.alert}: ${RUNBOOK} has no heading with the anchor #${anchor}`).toBe(true);
    }
  });

  it('queries only metrics that Ordo exports', async () => {
    const exported = await exportedSeriesNames();
    for (const group of loadRules()) {
      for (const rule of group.rules) {
        const name = 'alert' in rule ? rule.alert : rule.record;
        for (const metric of metricNames(rule.expr)) expect(exported.has(metric), `${name}: ${metric} is not exported by src/metrics/metrics.ts`).toBe(true);
      }
    }
  });
});

describe('deploy/grafana/dashboards/ordo.json', () => {
  const dashboard = loadDashboard();
  const VALUES = { job: 'ordo-pipeline', group: 'g', topic: 't', __rate_interval: '1m', __interval: '15s', __range: '1h' };

  it('has a stable uid, a schemaVersion and the group, topic and datasource variables', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const variables = new Map((dashboard.templating?.list ?? []).map((v) => [v.name, v.type]));
    expect(variables.get('datasource')).toBe('datasource');
    expect(variables.get('group')).toBe('query');
    expect(variables.get('topic')).toBe('query');
  });

  it('names no datasource uid of its own: every query goes through $datasource', () => {
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node !== null && typeof node === 'object') {
        const record = node as Record<string, unknown>;
        if ('datasource' in record) refs.push(JSON.stringify(record.datasource));
        Object.values(record).forEach(walk);
      }
    };
    walk(dashboard.panels);
    walk(dashboard.templating?.list?.filter((v) => v.type !== 'datasource'));
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref).toBe('{"type":"prometheus","uid":"${datasource}"}');
  });

  it('gives every panel a unique id and every query a known variable', () => {
    const ids: number[] = [];
    const visit = (panels: unknown[] | undefined): void => {
      for (const panel of (panels ?? []) as { id: number; panels?: unknown[] }[]) {
        ids.push(panel.id);
        visit(panel.panels);
      }
    };
    visit(dashboard.panels);
    expect(new Set(ids).size).toBe(ids.length);
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(20);
    for (const q of queries) expect(() => substituteVariables(q.expr, VALUES), `${q.panel} ${q.refId}`).not.toThrow();
    for (const v of variableQueries(dashboard)) expect(() => substituteVariables(v.selector, VALUES), v.name).not.toThrow();
  });

  it('queries only metrics that Ordo exports', async () => {
    const exported = await exportedSeriesNames();
    const exprs = [...dashboardQueries(dashboard).map((q) => ({ where: `${q.panel} ${q.refId}`, expr: q.expr })), ...variableQueries(dashboard).map((v) => ({ where: `$${v.name}`, expr: v.selector }))];
    for (const { where, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
      for (const metric of names) expect(exported.has(metric), `${DASHBOARD_FILE} ${where}: ${metric} is not exported`).toBe(true);
    }
  });
});
