import type { ApiRoute } from '../api/routes.js';
import { QueryError } from '../errors.js';
import { quoteClient as quote, sendJson } from '../http/json.js';
import type { ReceiptAnswer, TrailAnswer } from './answers.js';
import type { ReceiptsFreshness } from './receipts-service.js';

/** What the routes read: the receipts service, or anything answering like it (tests). */
export interface ReceiptsLookup {
  receipt(source: string, id: string): ReceiptAnswer | undefined;
  trail(id: string, keep: (subject: string) => boolean, limit: number): TrailAnswer | undefined;
  freshness(): ReceiptsFreshness;
}

export interface ReceiptRoutesOptions {
  /**
   * The deletion hook (src/deletion, part 5): the deletion that covers a subject, if any. A
   * receipt of a deleted subject answers 410 `subject-deleted`; a trail leaves its events out.
   */
  deleted?: (subject: string) => { id: string } | undefined;
}

/** Trail events listed by default, and at most (`?limit=`). */
export const DEFAULT_TRAIL_LIMIT = 1_000;
export const MAX_TRAIL_LIMIT = 10_000;

/**
 * `GET /v1/events/{source}/{id}` and `GET /v1/trails/{id}` (scope read). Subject scoping: a
 * token that may not see the event's subject gets the same 404 as for an event never seen,
 * so receipts do not tell which events exist for other subjects.
 */
export function receiptRoutes(lookup: ReceiptsLookup, options: ReceiptRoutesOptions = {}): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/events/{source}/{id}',
      scope: 'read',
      handle: ({ source, id }, { principal }, res) => {
        const answer = lookup.receipt(source!, id!);
        const visible = answer !== undefined && (answer.subject === null ? principal.subjects.all : principal.subjects.allows(answer.subject));
        if (!visible) {
          throw new QueryError('not-seen', `no record of event ${quote(id!)} from ${quote(source!)} in the receipts index (not processed yet, or older than its retention: see freshness)`, 404, {
            details: { status: 'not-seen', freshness: lookup.freshness() },
          });
        }
        const deletion = answer.subject === null ? undefined : options.deleted?.(answer.subject);
        if (deletion !== undefined) throw new QueryError('subject-deleted', `the event's subject was deleted (deletion ${deletion.id})`, 410, { details: { deletion: deletion.id } });
        sendJson(res, 200, { ...answer, freshness: lookup.freshness() });
        return Promise.resolve();
      },
    },
    {
      method: 'GET',
      path: '/v1/trails/{id}',
      scope: 'read',
      handle: ({ id }, { principal, params }, res) => {
        const limit = trailLimit(params.get('limit'));
        const keep = (subject: string): boolean => principal.subjects.allows(subject) && options.deleted?.(subject) === undefined;
        const answer = lookup.trail(id!, keep, limit);
        if (answer === undefined) {
          throw new QueryError('not-seen', `no events of trail ${quote(id!)} in the receipts index (not processed yet, or older than its retention: see freshness)`, 404, {
            details: { status: 'not-seen', freshness: lookup.freshness() },
          });
        }
        sendJson(res, 200, { ...answer, freshness: lookup.freshness() });
        return Promise.resolve();
      },
    },
  ];
}

function trailLimit(text: string | null): number {
  if (text === null) return DEFAULT_TRAIL_LIMIT;
  const n = Number(text);
  if (!/^\d{1,6}$/.test(text) || n < 1 || n > MAX_TRAIL_LIMIT) throw new QueryError('bad-parameter', `limit: ${quote(text)} is not an integer in 1..${MAX_TRAIL_LIMIT}`);
  return n;
}
