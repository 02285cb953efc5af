import { QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import type { Deletion } from './deletions.js';

/** 410 `subject-deleted`: what every read of a deleted subject (or a child of one) answers. */
export function subjectDeletedError(subject: string, deletion: Deletion): QueryError {
  const how = deletion.subject === subject ? '' : ` (with the children of ${quote(deletion.subject)})`;
  return new QueryError('subject-deleted', `subject ${quote(subject)} was deleted${how} at ${new Date(deletion.requestedAt).toISOString()}`, 410, {
    details: { deletion: { id: deletion.id, subject: deletion.subject, children: deletion.children, requestedAt: new Date(deletion.requestedAt).toISOString() } },
  });
}

/** Looks a subject up in the deletions in force (a role's DeletionSet). */
export type DeletedLookup = (subject: string) => Deletion | undefined;

/** 410 for the first deleted subject among those asked by name (a filter, a query's subjects). */
export function refuseDeleted(subjects: readonly string[] | undefined, deleted: DeletedLookup | undefined): void {
  if (deleted === undefined) return;
  for (const subject of subjects ?? []) {
    const deletion = deleted(subject);
    if (deletion !== undefined) throw subjectDeletedError(subject, deletion);
  }
}

/** A subject check that also leaves deleted subjects out (undefined stays undefined without deletions). */
export function withoutDeleted(allows: ((subject: string) => boolean) | undefined, deleted: DeletedLookup | undefined): ((subject: string) => boolean) | undefined {
  if (deleted === undefined) return allows;
  return (subject) => deleted(subject) === undefined && (allows === undefined || allows(subject));
}
