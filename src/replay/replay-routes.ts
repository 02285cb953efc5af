import type { ServerResponse } from 'node:http';
import type { ApiRoute } from '../api/routes.js';
import { sendJson as send } from '../http/json.js';
import { parseBulkRequest, parseLetterPosition, parseListQuery } from './replay-request.js';
import type { ReplayService } from './replay-service.js';

/** The routes served, as OpenAPI path templates (docs/replay-openapi.yaml describes each). */
export const REPLAY_ROUTES = ['/v1/dead-letters', '/v1/dead-letters/replay', '/v1/dead-letters/{partition}/{offset}/replay'] as const;

/** Dead-letter replay on the api role, scope `admin` (src/api/routes.ts). */
export function replayRoutes(service: ReplayService): ApiRoute[] {
  return [
    {
      method: 'POST',
      path: '/v1/dead-letters/{partition}/{offset}/replay',
      scope: 'admin',
      async handle(params, request, res: ServerResponse) {
        const letter = parseLetterPosition(params);
        // The body is read (and refused if not JSON) before anything touches Kafka.
        const body = await request.json();
        send(res, 200, await service.replayOne(letter, body, request.principal.name));
      },
    },
    {
      method: 'POST',
      path: '/v1/dead-letters/replay',
      scope: 'admin',
      async handle(_params, request, res) {
        const bulk = parseBulkRequest(await request.json());
        send(res, 200, await service.replayBulk(bulk, request.principal.name));
      },
    },
    {
      method: 'GET',
      path: '/v1/dead-letters',
      scope: 'admin',
      async handle(_params, request, res) {
        const { filter, limit } = parseListQuery(request.params);
        send(res, 200, await service.list(filter, limit));
      },
    },
  ];
}
