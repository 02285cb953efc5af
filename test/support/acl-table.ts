import { type AclRole, roleAcls } from '../../src/roles/acls.js';

/** Placeholder names, as docs/operations.md writes them. */
const NAMES = {
  groupId: '<G>',
  nodeId: '<node>',
  allowedLatenessMs: 1,
  topics: { input: '<input>', ordered: '<ordered>', dlq: '<dlq>', late: '<late>', aggregates: '<aggregates>', watermarks: '<watermarks>', global: '<global>', schemas: '<schemas>' },
};

/** The ACL table of docs/operations.md#acls as the code gives it: one row per role and resource. */
export function aclTable(): string {
  const rows = ['| role | resource | pattern | name | operations | note |', '|---|---|---|---|---|---|'];
  for (const role of ['pipeline', 'merge', 'api'] as AclRole[]) {
    const byResource = new Map<string, { ops: string[]; notes: Set<string> }>();
    for (const acl of roleAcls(role, NAMES)) {
      const key = `| ${role} | ${acl.resource} | ${acl.pattern} | \`${acl.name}\``;
      const cell = byResource.get(key) ?? { ops: [], notes: new Set<string>() };
      cell.ops.push(acl.optional ? `${acl.operation}*` : acl.operation);
      cell.notes.add(acl.why + (acl.optional === 'create-topics' ? ' (*: only with ORDO_CREATE_TOPICS=true)' : acl.optional === 'cleanup' ? ' (*: optional)' : ''));
      byResource.set(key, cell);
    }
    for (const [key, cell] of byResource) rows.push(`${key} | ${cell.ops.join(', ')} | ${[...cell.notes].join('; ')} |`);
  }
  return rows.join('\n');
}
