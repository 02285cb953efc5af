import { describe, expect, it } from 'vitest';
import { REPLAY_ROUTES, replayRoutes } from '../../src/replay/replay-routes.js';
import type { ReplayService } from '../../src/replay/replay-service.js';

describe('the replay routes', () => {
  it('are the documented paths, each needing scope admin', () => {
    const routes = replayRoutes({} as ReplayService);
    expect(routes.map((r) => r.path).sort()).toEqual([...REPLAY_ROUTES].sort());
    expect(routes.map((r) => `${r.method} ${r.path}`).sort()).toEqual(['GET /v1/dead-letters', 'POST /v1/dead-letters/replay', 'POST /v1/dead-letters/{partition}/{offset}/replay']);
    expect(routes.every((r) => r.scope === 'admin')).toBe(true);
  });
});
