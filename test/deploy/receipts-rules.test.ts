// The trail alert (deploy/prometheus/rules/receipts.rules.yml) with the real promtool: syntax,
// a firing and a quiet case, and only metrics Ordo exports. Kept apart from ordo.rules.yml
// until its runbook section is in docs/operations.md (see the rules file's header).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { OrdoMetrics } from '../../src/metrics/metrics.js';
import { alertRules, loadRules, metricNames, runTool } from '../support/prometheus.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RULES = join(ROOT, 'deploy/prometheus/rules/receipts.rules.yml');
const TESTS = join(ROOT, 'deploy/prometheus/tests/receipts.rules.test.yml');

describe('deploy/prometheus/rules/receipts.rules.yml', () => {
  it('passes `promtool check rules` and its unit tests', () => {
    const check = runTool('promtool', ['check', 'rules', RULES]);
    expect(check.status, check.output).toBe(0);
    expect(check.output).toContain('SUCCESS: 1 rules found');
    const test = runTool('promtool', ['test', 'rules', TESTS]);
    expect(test.status, test.output).toBe(0);
  });

  it('alerts on stalled trails with a severity and a runbook link, from metrics Ordo exports', async () => {
    const [rule] = alertRules(RULES);
    expect(rule).toMatchObject({ alert: 'OrdoTrailsStalled', labels: { severity: 'warning' } });
    expect(rule!.annotations?.runbook_url).toMatch(/docs\/operations\.md#ordotrailsstalled$/);
    const exported = new Set((await new OrdoMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    for (const group of loadRules(RULES)) for (const r of group.rules) for (const metric of metricNames(r.expr)) expect(exported.has(metric), metric).toBe(true);
  });
});
