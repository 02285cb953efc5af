import { type AclRole, roleAcls } from '../../src/roles/acls.js';
import { markdownTable } from './markdown.js';

/** Placeholder names, as docs/operations.md writes them. */
const NAMES = {
  groupId: '<G>',
  nodeId: '<node>',
  allowedLatenessMs: 1,
  topics: { input: '<input>', ordered: '<ordered>', dlq: '<dlq>', late: '<late>', aggregates: '<aggregates>', watermarks: '<watermarks>', global: '<global>', schemas: '<schemas>', sessions: '<sessions>', nodes: '<nodes>', forward: '<forward>', replies: '<replies>', deletions: '<deletions>', replays: '<replays>', duplicates: '<duplicates>', apiNodes: '<api-nodes>' },
};

/** The ACL table of docs/operations.md#acls as the code gives it: one row per role and resource. */
export function aclTable(): string {
  const rows: string[][] = [];
  for (const role of ['pipeline', 'merge', 'api', 'ingest', 'deliver'] as AclRole[]) {
    const byResource = new Map<string, { cells: string[]; ops: string[]; notes: Set<string> }>();
    for (const acl of roleAcls(role, NAMES)) {
      const cells = [role, acl.resource, acl.pattern, `\`${acl.name}\``];
      const key = cells.join('|');
      const entry = byResource.get(key) ?? { cells, ops: [], notes: new Set<string>() };
      entry.ops.push(acl.optional ? `${acl.operation}*` : acl.operation);
      entry.notes.add(acl.why + (acl.optional === 'create-topics' ? ' (*: only with ORDO_CREATE_TOPICS=true)' : acl.optional === 'cleanup' ? ' (*: optional)' : ''));
      byResource.set(key, entry);
    }
    for (const entry of byResource.values()) rows.push([...entry.cells, entry.ops.join(', '), [...entry.notes].join('; ')]);
  }
  return markdownTable(['role', 'resource', 'pattern', 'name', 'operations', 'note'], rows);
}
