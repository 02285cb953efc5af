import { randomBytes } from 'node:crypto';
import { QueryError } from '../errors.js';

/**
 * Receiver session ids: `<base64url(node id)>.<22 chars base64url random>`. The first part
 * names the node that created the session, so any replica can send a request for a session
 * it has not read yet (created a moment ago elsewhere) to that node; the current owner after
 * a takeover is in the session's state, not in its id. The random part (128 bits) makes ids
 * unguessable and never reused.
 */

const RANDOM = /^[A-Za-z0-9_-]{22}$/;
const NODE = /^[A-Za-z0-9_-]{1,344}$/;

export function newSessionId(node: string): string {
  if (node === '') throw new Error('a session id needs a node id');
  return `${Buffer.from(node, 'utf8').toString('base64url')}.${randomBytes(16).toString('base64url')}`;
}

/** The node that created the session `id`; QueryError 400 bad-session-id for anything this module did not make. */
export function decodeSessionId(id: string): { node: string } {
  const bad = (why: string): QueryError =>
    new QueryError('bad-session-id', `session id ${JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id)} ${why}`, 400);
  const parts = id.split('.');
  if (parts.length !== 2) throw bad('is not <node>.<random>, the form of the ids POST /v1/streams/{stream}/sessions answers');
  const [node, random] = parts as [string, string];
  if (!NODE.test(node) || !RANDOM.test(random)) throw bad('is not <node>.<random> in base64url (22 random characters)');
  const decoded = Buffer.from(node, 'base64url');
  const text = decoded.toString('utf8');
  // Only the canonical encoding of valid UTF-8 round-trips: anything else was not made here.
  if (text === '' || Buffer.from(text, 'utf8').toString('base64url') !== node) throw bad('does not name a node');
  return { node: text };
}
