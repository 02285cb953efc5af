import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSessionId, newSessionId } from '../../src/deliver/session-id.js';
import { QueryError } from '../../src/errors.js';

describe('session ids', () => {
  it('name the node that made them, for any node id, and are never the same twice', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }), (node) => {
        const id = newSessionId(node);
        expect(id).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
        expect(decodeSessionId(id)).toEqual({ node });
        expect(newSessionId(node)).not.toBe(id);
      }),
    );
  });

  it('anything else is 400 bad-session-id', () => {
    const good = newSessionId('node-a');
    const [node, random] = good.split('.') as [string, string];
    const bad = ['', 'nope', good + '.x', `${node}.${random.slice(1)}`, `${node}.${random}A`, `.${random}`, `${node}!.${random}`, `${node}A.${random}`, `${Buffer.from([0xff]).toString('base64url')}.${random}`, 'x'.repeat(5000)];
    for (const id of bad) {
      let error: unknown;
      try {
        decodeSessionId(id);
      } catch (e) {
        error = e;
      }
      expect(error, id).toBeInstanceOf(QueryError);
      expect(error).toMatchObject({ kind: 'bad-session-id', status: 400 });
    }
  });
});
