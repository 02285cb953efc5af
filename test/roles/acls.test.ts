import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aclTable } from '../support/acl-table.js';

describe('the ACL table in docs/operations.md', () => {
  it('is the one the code gives (src/roles/acls.ts)', () => {
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    expect(doc).toContain(aclTable());
  });
});
