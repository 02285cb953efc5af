import { ConfigError, FencedError, NotAuthorizedError, OrdoError, TransientError } from '../errors.js';
import { recentAuthorizationFailure } from '../kafka/authorization-witness.js';

/**
 * The one error policy every role uses (pipeline worker, merge, api reader, start-up):
 *
 *   fenced  another producer with our transactional id took over: drop the task, never retry.
 *   fatal   retrying cannot help: who we are (authentication, authorization, TLS identity),
 *           what we send (size limits), how we are configured, or a bug of ours. Stop with a
 *           message that says which (`fatalMessage`).
 *   retry   everything else the broker, the network or the registry says: wait it out with
 *           backoff (bounded by the caller), with a fresh producer where a transaction broke.
 *
 * kafkajs' own `retriable` flag is not the answer: it marks "Failed to find group
 * coordinator" (a broker restart) as non-retriable, and it gives up after its own retries by
 * wrapping a retriable cause in a non-retriable KafkaJSNumberOfRetriesExceeded. So the chain
 * of causes is read for the kinds that are really fatal, and any other Kafka error is retried.
 * An error that is neither Kafka's, the network's nor marked transient is a bug: fatal.
 */
export type ErrorKind = 'fenced' | 'retry' | 'fatal';

const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);
/** Broker error codes of the same, for errors that carry only the code. */
const FENCED_CODES = new Set([47, 90]);
const AUTHORIZATION_TYPES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
]);
const AUTHENTICATION_TYPES = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);
/** What we send or ask for can never be accepted as it is. */
const REQUEST_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'OFFSET_METADATA_TOO_LARGE',
  'INVALID_REQUIRED_ACKS',
  'INVALID_CONFIG',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_PARTITIONS',
  'INVALID_TOPIC_EXCEPTION',
  'POLICY_VIOLATION',
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'UNSUPPORTED_COMPRESSION_TYPE',
  'INVALID_TRANSACTION_TIMEOUT',
]);
const KAFKAJS_FATAL_NAMES = new Set(['KafkaJSSASLAuthenticationError', 'KafkaJSServerDoesNotSupportApiKey', 'KafkaJSNotImplemented', 'KafkaJSUnsupportedMagicByteInMessageSet']);
/** Node's network errors: the peer is away or slow. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED']);
/** Node's TLS verification errors: the peer is not who the trust settings accept. */
export const TLS_CODES: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

interface ErrorLike {
  name?: string;
  type?: string;
  code?: number | string;
  retriable?: boolean;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
  errors?: unknown[];
}

/** The error and its causes (kafkajs' `originalError`, `cause`, aggregate `errors`), outermost first. */
export function causes(error: unknown): ErrorLike[] {
  const chain: ErrorLike[] = [];
  const pending: unknown[] = [error];
  const seen = new Set<unknown>();
  while (pending.length > 0 && chain.length < 16) {
    const e = pending.shift();
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const like = e as ErrorLike;
    chain.push(like);
    pending.push(like.cause, like.originalError, ...(Array.isArray(like.errors) ? like.errors : []));
  }
  return chain;
}

function isProgrammerError(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;
}

/** Why an error is fatal, or undefined if it is not. */
function fatalReason(chain: ErrorLike[]): { kind: 'authorization' | 'authentication' | 'tls' | 'request' | 'config' | 'bug' | 'refused'; link: ErrorLike } | undefined {
  for (const link of chain) {
    if (isProgrammerError(link)) return { kind: 'bug', link };
    if (link instanceof ConfigError) return { kind: 'config', link };
    if (link instanceof NotAuthorizedError) return { kind: 'authorization', link };
    if (link.type !== undefined && AUTHORIZATION_TYPES.has(link.type)) return { kind: 'authorization', link };
    // kafkajs reports a FindCoordinator refused for lack of ACLs as a coordinator not found.
    const refused = link.name === 'KafkaJSGroupCoordinatorNotFound' ? recentAuthorizationFailure() : undefined;
    if (refused) return { kind: 'authorization', link: { type: refused.type, message: `the broker answered ${refused.type} to ${refused.request}` } };
    if ((link.type !== undefined && AUTHENTICATION_TYPES.has(link.type)) || (link.name !== undefined && link.name === 'KafkaJSSASLAuthenticationError')) {
      return { kind: 'authentication', link };
    }
    if (typeof link.code === 'string' && (TLS_CODES.has(link.code) || link.code.startsWith('ERR_SSL_'))) return { kind: 'tls', link };
    if (link.type !== undefined && REQUEST_TYPES.has(link.type)) return { kind: 'request', link };
    if (link.name !== undefined && KAFKAJS_FATAL_NAMES.has(link.name)) return { kind: 'request', link };
  }
  const outer = chain[0];
  // Ordo's own errors say for themselves whether a retry can help.
  if (outer instanceof OrdoError && !outer.retriable && !(outer instanceof FencedError)) return { kind: 'refused', link: outer };
  return undefined;
}

function isFencedChain(chain: ErrorLike[]): boolean {
  return chain.some((e) => e instanceof FencedError || (e.type !== undefined && FENCED_TYPES.has(e.type)) || (typeof e.code === 'number' && FENCED_CODES.has(e.code)));
}

function isRetriableChain(chain: ErrorLike[]): boolean {
  return chain.some(
    (e) =>
      (e instanceof OrdoError && e.retriable) ||
      (typeof e.name === 'string' && e.name.startsWith('KafkaJS')) ||
      (typeof e.code === 'string' && NETWORK_CODES.has(e.code)),
  );
}

export function classify(error: unknown): ErrorKind {
  const chain = causes(error);
  // A fenced producer may also see an authorization error on its dead transactional id; the
  // fence is the truth then only if nothing says we lack the right in the first place.
  if (fatalReason(chain)) return 'fatal';
  if (isFencedChain(chain)) return 'fenced';
  return isRetriableChain(chain) ? 'retry' : 'fatal';
}

/** Text of anything thrown, even an object whose toString throws or is not a function. */
function describe(error: unknown): string {
  const message = (error as ErrorLike | null | undefined)?.message;
  if (typeof message === 'string') return message;
  try {
    return String(error);
  } catch {
    return Object.prototype.toString.call(error);
  }
}

/**
 * A one-line message for a fatal error that says what to fix. `doing` names the operation and
 * resource when the caller knows them (kafkajs' authorization errors do not), e.g.
 * "Write on transactional id ordo-pipeline-usage-events-0".
 */
export function fatalMessage(error: unknown, doing?: string): string {
  const chain = causes(error);
  const reason = fatalReason(chain);
  const outer = chain[0];
  const text = (e: ErrorLike | undefined): string => (typeof e?.message === 'string' ? e.message : describe(error));
  const on = doing === undefined ? '' : ` for ${doing}`;
  switch (reason?.kind) {
    case 'authorization':
      return reason.link instanceof NotAuthorizedError
        ? reason.link.message
        : `not authorized${on}: ${reason.link.type ?? 'authorization failed'} (${text(reason.link)}); grant the ACLs listed in docs/operations.md`;
    case 'authentication':
      return `authentication failed${on}: ${text(reason.link)}; check KAFKA_SASL_MECHANISM and the credentials`;
    case 'tls':
      return `TLS handshake failed${on}: ${text(reason.link)} (${String(reason.link.code)}); check KAFKA_SSL_CA_FILE and the client certificate settings`;
    case 'request':
      return `refused by the broker${on}: ${reason.link.type ?? reason.link.name ?? ''} (${text(reason.link)})`;
    default:
      return `${doing === undefined ? '' : `${doing}: `}${text(outer)}`;
  }
}

/** `error` as the error its kind calls for: FencedError, TransientError (retry), NotAuthorizedError, or itself (other fatal). */
export function asOrdoError(error: unknown, doing?: string): Error {
  const kind = classify(error);
  if (kind === 'fenced') {
    return error instanceof FencedError ? error : new FencedError(`fenced by a newer producer with the same transactional id: ${describe(error)}`, { cause: error });
  }
  if (kind === 'fatal') {
    const reason = fatalReason(causes(error));
    if (reason?.kind === 'authorization' && !(error instanceof NotAuthorizedError)) return new NotAuthorizedError(fatalMessage(error, doing), { cause: error });
    return error instanceof Error ? error : new OrdoError(describe(error));
  }
  return new TransientError(`transaction failed: ${describe(error)}`, { cause: error });
}
