import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Meter, parseMeters } from '../src/usage/meters.js';

/**
 * The bench's meters: what a gateway operator would bill and watch on `api.request`
 * events. Every bench event is an api.request, so each one updates
 * UPDATES_PER_EVENT aggregates (one per meter and window size).
 */
export const BENCH_METERS_YAML = `
meters:
  - slug: api-requests
    description: API calls handled by the gateway, per region
    eventType: api.request
    aggregation: COUNT
    groupBy: { region: region }
    windows: [HOUR, DAY, MONTH]
  - slug: api-spend
    description: Billed amount of the calls (the event value)
    eventType: api.request
    aggregation: SUM
    windows: [HOUR, DAY, MONTH]
  - slug: response-time
    description: Mean response time, ms
    eventType: api.request
    aggregation: AVG
    valueProperty: dimensions.latency_ms
    windows: [HOUR, DAY]
  - slug: active-users
    description: Distinct users calling the API
    eventType: api.request
    aggregation: UNIQUE_COUNT
    valueProperty: dimensions.user
    windows: [DAY, MONTH]
`;

export const BENCH_METERS: Meter[] = parseMeters(BENCH_METERS_YAML, 'yaml', 'bench-meters.yaml');

/** Aggregates one bench event updates: one per meter and window size it keeps. */
export const UPDATES_PER_EVENT = BENCH_METERS.reduce((n, m) => n + m.windows.length, 0);

let metersDir: string | undefined;

/** The meters as a YAML file for ORDO_METERS_FILE (written once per run; see removeBenchMetersFile). */
export function benchMetersFile(): string {
  metersDir ??= mkdtempSync(join(tmpdir(), 'ordo-bench-meters-'));
  const path = join(metersDir, 'meters.yaml');
  writeFileSync(path, BENCH_METERS_YAML);
  return path;
}

/** Best effort; never throws. */
export function removeBenchMetersFile(): void {
  if (metersDir === undefined) return;
  rmSync(metersDir, { recursive: true, force: true });
  metersDir = undefined;
}
