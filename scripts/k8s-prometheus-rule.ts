import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
/** Writes k8s/base/prometheus-rule.yaml from deploy/prometheus/rules/ordo.rules.yml (run from the repo root). */
const rules = parse(readFileSync('deploy/prometheus/rules/ordo.rules.yml', 'utf8')) as { groups: unknown };
const header = `# Ordo's alert rules as a Prometheus Operator PrometheusRule: spec.groups is exactly
# deploy/prometheus/rules/ordo.rules.yml (test/deploy/k8s.test.ts checks they are equal;
# after editing the rules file, regenerate this with \`npx tsx scripts/k8s-prometheus-rule.ts\`).
# Your Prometheus' ruleSelector may need a label of its own: add it in an overlay.
`;
const doc = { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'ordo', labels: { 'app.kubernetes.io/part-of': 'ordo' } }, spec: { groups: rules.groups } };
writeFileSync('k8s/base/prometheus-rule.yaml', header + stringify(doc, { lineWidth: 0 }));
