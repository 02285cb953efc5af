import { describe, expect, it } from 'vitest';
import { aclTable } from '../support/acl-table.js';
import { readDoc } from '../support/markdown.js';

describe('the ACL table in docs/operations.md', () => {
  it('is the one the code gives (src/roles/acls.ts)', () => {
    expect(readDoc('docs/operations.md')).toContain(aclTable());
  });
});
