import { createRequire } from 'node:module';
import fc from 'fast-check';
import * as kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { asOrdoError, classify, fatalMessage } from '../../src/engine/error-policy.js';
import { classifyKafkaError } from '../../src/engine/transaction.js';
import { BadRecordError, ConfigError, FencedError, NotAuthorizedError, OrdoError, TransientError } from '../../src/errors.js';

// The broker's error table as kafkajs builds protocol errors from it: the real objects.
const require = createRequire(import.meta.url);
const { createErrorFromCode } = require('kafkajs/src/protocol/error') as { createErrorFromCode(code: number): Error };
// The real classes, constructed as kafkajs itself does (its typings omit the options argument).
type ErrorClass = new (e: Error | string, options?: object) => Error;
const {
  KafkaJSConnectionError,
  KafkaJSError,
  KafkaJSGroupCoordinatorNotFound,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  KafkaJSSASLAuthenticationError,
} = kafkajs as unknown as Record<
  | 'KafkaJSConnectionError'
  | 'KafkaJSError'
  | 'KafkaJSGroupCoordinatorNotFound'
  | 'KafkaJSNonRetriableError'
  | 'KafkaJSNumberOfRetriesExceeded'
  | 'KafkaJSProtocolError'
  | 'KafkaJSRequestTimeoutError'
  | 'KafkaJSSASLAuthenticationError',
  ErrorClass
>;
const protocol = (code: number): Error => new KafkaJSProtocolError(createErrorFromCode(code));
const retriesExceeded = (e: Error): Error => new KafkaJSNumberOfRetriesExceeded(e, { retryCount: 5, retryTime: 1000 });
const nodeError = (code: string): Error => Object.assign(new Error(`connect ${code}`), { code });

describe('classify', () => {
  it.each([
    ['INVALID_PRODUCER_EPOCH', protocol(47)],
    // kafkajs 2.2 has no entry for code 90 (the broker answers its old request versions with 47).
    ['PRODUCER_FENCED', Object.assign(new KafkaJSError('fenced'), { type: 'PRODUCER_FENCED', code: 90 })],
    ['FencedError', new FencedError('fenced')],
    ['a fence wrapped by the client', new KafkaJSNonRetriableError(protocol(47), { cause: protocol(47) })],
  ])('fenced: %s', (_name, error) => {
    expect(classify(error)).toBe('fenced');
  });

  it.each([
    ['TOPIC_AUTHORIZATION_FAILED', protocol(29)],
    ['GROUP_AUTHORIZATION_FAILED', protocol(30)],
    ['CLUSTER_AUTHORIZATION_FAILED', protocol(31)],
    // It used to be read as a fence: the task was dropped and the partition retried forever.
    ['TRANSACTIONAL_ID_AUTHORIZATION_FAILED', protocol(53)],
    ['SASL_AUTHENTICATION_FAILED', protocol(58)],
    ['a SASL failure of the client', new KafkaJSSASLAuthenticationError('SASL SCRAM SHA512 authentication failed: bad password')],
    ['MESSAGE_TOO_LARGE', protocol(10)],
    ['RECORD_LIST_TOO_LARGE', protocol(18)],
    ['UNSUPPORTED_VERSION', protocol(35)],
    ['an untrusted CA', new KafkaJSConnectionError('Connection error: self-signed certificate in certificate chain', { code: 'SELF_SIGNED_CERT_IN_CHAIN' })],
    ['a refused client certificate', new KafkaJSConnectionError('Connection error: alert certificate required', { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' })],
    ['authorization behind exhausted retries', retriesExceeded(protocol(29))],
    ['a TypeError', new TypeError('x is undefined')],
    ['a RangeError', new RangeError('bad')],
    ['a ConfigError', new ConfigError('KAFKA_BROKERS', 'bad')],
    ['NotAuthorizedError', new NotAuthorizedError('not authorized for Write on topic t')],
    ['a non-retriable OrdoError', new OrdoError('no acknowledgement for t/3')],
    ['a plain Error (a bug, not the broker)', new Error('something of ours')],
    ['not an Error at all', 'a string'],
  ])('fatal: %s', (_name, error) => {
    expect(classify(error)).toBe('fatal');
  });

  it.each([
    ['NOT_LEADER_OR_FOLLOWER', protocol(6)],
    ['UNKNOWN_TOPIC_OR_PARTITION (does not host this topic-partition)', protocol(3)],
    ['COORDINATOR_LOAD_IN_PROGRESS', protocol(14)],
    ['NOT_COORDINATOR', protocol(16)],
    ['CONCURRENT_TRANSACTIONS', protocol(51)],
    // kafkajs marks these non-retriable; a broker restart produces them and they pass.
    ['Failed to find group coordinator', new KafkaJSGroupCoordinatorNotFound('Failed to find group coordinator')],
    ['retries exhausted on a leader change', retriesExceeded(protocol(6))],
    ['a non-retriable kafkajs error of no known kind', new KafkaJSNonRetriableError('Transaction state exception: Invalid transaction state')],
    ['a request timeout', new KafkaJSRequestTimeoutError('Request Produce timed out')],
    ['a refused connection', new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092', { code: 'ECONNREFUSED' })],
    ['a reset socket (registry)', nodeError('ECONNRESET')],
    ['TransientError', new TransientError('registry unreachable')],
    ['a generic KafkaJSError', new KafkaJSError('Something')],
  ])('retry: %s', (_name, error) => {
    expect(classify(error)).toBe('retry');
  });

  it('an authorization error wins over a fence in the same chain', () => {
    const both = Object.assign(protocol(53), { cause: protocol(47) });
    expect(classify(both)).toBe('fatal');
  });

  it('never throws and always answers one of the three kinds, whatever it is given', () => {
    const anyError = fc.oneof(
      fc.anything(),
      fc.record({ name: fc.string(), type: fc.string(), code: fc.oneof(fc.integer(), fc.string()), message: fc.string(), retriable: fc.boolean() }),
    );
    fc.assert(
      fc.property(anyError, anyError, (outer, inner) => {
        const error = outer !== null && typeof outer === 'object' ? Object.assign(outer, { cause: inner }) : outer;
        expect(['fenced', 'retry', 'fatal']).toContain(classify(error));
        expect(typeof fatalMessage(error)).toBe('string');
      }),
    );
  });

  it('does not loop on a cause cycle', () => {
    const a = new KafkaJSError('a') as Error & { cause?: unknown };
    const b = new KafkaJSError('b') as Error & { cause?: unknown };
    a.cause = b;
    b.cause = a;
    expect(classify(a)).toBe('retry');
  });
});

describe('fatalMessage', () => {
  it('names the refused operation and points to the ACL list', () => {
    const message = fatalMessage(protocol(53), 'Write on transactional id ordo-pipeline-usage-events-0');
    expect(message).toMatch(/^not authorized for Write on transactional id ordo-pipeline-usage-events-0: TRANSACTIONAL_ID_AUTHORIZATION_FAILED/);
    expect(message).toContain('docs/operations.md');
  });

  it('says which settings to check for authentication and TLS failures', () => {
    expect(fatalMessage(new KafkaJSSASLAuthenticationError('bad password'))).toMatch(/authentication failed.*KAFKA_SASL_MECHANISM/);
    expect(fatalMessage(new KafkaJSConnectionError('unable to verify', { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }))).toMatch(/TLS handshake failed.*KAFKA_SSL_CA_FILE/);
  });
});

describe('asOrdoError and the transaction classifier', () => {
  it('turns an authorization error into NotAuthorizedError naming what was refused, not a fence', () => {
    const error = classifyKafkaError(protocol(53), 'a transaction writing to t');
    expect(error).toBeInstanceOf(NotAuthorizedError);
    expect(error.message).toContain('not authorized for a transaction writing to t');
    expect(classify(error)).toBe('fatal');
  });

  it('keeps fences as FencedError and transient failures as TransientError', () => {
    expect(classifyKafkaError(protocol(47))).toBeInstanceOf(FencedError);
    const transient = classifyKafkaError(new KafkaJSGroupCoordinatorNotFound('Failed to find group coordinator'));
    expect(transient).toBeInstanceOf(TransientError);
    expect(transient.message).toContain('Failed to find group coordinator');
  });

  it('leaves programmer errors and Ordo errors as they are', () => {
    const bug = new TypeError('oops');
    expect(asOrdoError(bug)).toBe(bug);
    const bad = new BadRecordError('invalid-event', 'x');
    expect(classifyKafkaError(bad)).toBe(bad);
  });
});
