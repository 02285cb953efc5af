import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Counter, Gauge, Histogram, Metric } from 'prom-client';
import { OrdoMetrics } from '../../src/metrics/metrics.js';

const LIST = new URL('../../docs/metrics-list.txt', import.meta.url);

interface Listed {
  name: string;
  type: string;
  labels: string[];
}

function listed(): Listed[] {
  return readFileSync(LIST, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((line) => {
      const m = /^(\S+) (counter|gauge|histogram|summary) \{([^}]*)\}$/.exec(line);
      if (!m) throw new Error(`docs/metrics-list.txt: cannot read "${line}"`);
      return { name: m[1]!, type: m[2]!, labels: m[3] === '' ? [] : m[3]!.split(',') };
    });
}

type Described = Metric & { name: string; type: string; labelNames?: string[] };

/** One sample for every Ordo metric, with every label it declares, so the exposition shows them all. */
function touchAll(metrics: OrdoMetrics): void {
  // The lag gauges are computed at scrape time from their sources (a worker's ConsumerLag).
  metrics.consumerLagSources.add({ sample: () => Promise.resolve([{ group: 'g', topic: 't', partition: 0, records: 1, seconds: 1 }]) });
  for (const metric of metrics.registry.getMetricsAsArray() as unknown as Described[]) {
    if (!metric.name.startsWith('ordo_') || /^ordo_(process|nodejs)_/.test(metric.name)) continue;
    const labels = Object.fromEntries((metric.labelNames ?? []).map((l) => [l, 'x']));
    if (metric.type === 'counter') (metric as unknown as Counter).inc(labels, 1);
    else if (metric.type === 'gauge') (metric as unknown as Gauge).set(labels, 1);
    else if (metric.type === 'histogram') (metric as unknown as Histogram).observe(labels, 0.1);
  }
}

/** Families of the Prometheus text exposition: name -> type and the label names seen on its samples. */
function parseExposition(text: string): Map<string, { type: string; labels: Set<string> }> {
  const families = new Map<string, { type: string; labels: Set<string> }>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      families.set(type[1]!, { type: type[2]!, labels: new Set() });
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample) throw new Error(`not an exposition line: ${line}`);
    const name = sample[1]!;
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (!family) throw new Error(`sample ${name} has no # TYPE line`);
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) family.labels.add(pair[1]!);
  }
  return families;
}

describe('metric names and labels', () => {
  it('the exposition has exactly the checked-in metrics, each with exactly its listed labels', async () => {
    const metrics = new OrdoMetrics({ defaultMetrics: true });
    touchAll(metrics);
    const families = parseExposition(await metrics.registry.metrics());
    const expected = listed();
    expect([...families.keys()].sort()).toEqual(expected.map((m) => m.name).sort());
    for (const m of expected) {
      const family = families.get(m.name)!;
      expect(family.type, m.name).toBe(m.type);
      if (/^ordo_(process|nodejs)_/.test(m.name)) continue; // prom-client's: their labels depend on the runtime
      const seen = [...family.labels].filter((l) => l !== 'le').sort();
      expect(seen, `labels of ${m.name}`).toEqual([...m.labels].sort());
    }
  });

  it('follows the Prometheus naming rules: prefix, base units, _total counters, bounded labels', () => {
    const unbounded = new Set(['subject', 'id', 'event', 'event_id', 'key', 'customer', 'offset', 'node']);
    for (const m of listed()) {
      expect(m.name, m.name).toMatch(/^ordo_[a-z0-9_]+$/);
      if (m.type === 'counter') expect(m.name, m.name).toMatch(/_total$/);
      else expect(m.name, m.name).not.toMatch(/_(count|sum|bucket)$/);
      if (m.type === 'histogram') expect(m.name, m.name).toMatch(/_(seconds|bytes)$/);
      expect(m.name, `${m.name}: base units`).not.toMatch(/_(milliseconds|ms|minutes|hours|kilobytes|megabytes)(_|$)/);
      for (const label of m.labels) expect(unbounded.has(label), `${m.name} has label ${label}`).toBe(false);
    }
  });
});
