import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import type { KafkaSecurity } from '../../src/config/security.js';
import { ConfigError } from '../../src/errors.js';
import { wrongSetting } from '../../src/kafka/access-check.js';

/** kafkajs' shapes: a retries-exceeded error around a connection error carrying Node's TLS code. */
function connectionError(code: string): Error {
  const inner = Object.assign(new Error(`Connection error: ${code}`), { name: 'KafkaJSConnectionError', code, retriable: true });
  return Object.assign(new Error(inner.message), { name: 'KafkaJSNumberOfRetriesExceeded', cause: inner, retriable: false });
}

const scram: KafkaSecurity = { protocol: 'SASL_SSL', tls: {}, sasl: { mechanism: 'SCRAM-SHA-512', username: 'ordo', password: new Secret('pw', 'KAFKA_SASL_PASSWORD_FILE') } };
const mtls: KafkaSecurity = { protocol: 'SSL', tls: { ca: Buffer.from('ca'), cert: Buffer.from('c'), key: Buffer.from('k') } };

describe('wrongSetting: which variable a connect failure blames', () => {
  it.each([
    [Object.assign(new Error('SASL SCRAM SHA512 authentication failed'), { name: 'KafkaJSSASLAuthenticationError' }), scram, 'KAFKA_SASL_PASSWORD_FILE'],
    [connectionError('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), scram, 'KAFKA_SSL_CA_FILE'],
    [connectionError('SELF_SIGNED_CERT_IN_CHAIN'), mtls, 'KAFKA_SSL_CA_FILE'],
    [connectionError('ERR_TLS_CERT_ALTNAME_INVALID'), mtls, 'KAFKA_BROKERS'],
    [connectionError('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'), { protocol: 'SSL', tls: {} } satisfies KafkaSecurity, 'KAFKA_SSL_CERT_FILE'],
    [connectionError('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), mtls, 'KAFKA_SSL_CERT_FILE'],
    [connectionError('ERR_SSL_WRONG_VERSION_NUMBER'), mtls, 'KAFKA_SECURITY_PROTOCOL'],
  ])('%s with %j -> %s', (error, security, variable) => {
    const wrong = wrongSetting(error, security);
    expect(wrong).toBeInstanceOf(ConfigError);
    expect(wrong?.variable).toBe(variable);
  });

  it('an OAUTHBEARER token the broker refuses names the token endpoint; a ConfigError from the token provider is kept', () => {
    const oauth: KafkaSecurity = {
      protocol: 'SASL_SSL',
      sasl: { mechanism: 'OAUTHBEARER', oauth: { tokenEndpointUrl: 'https://idp/token', clientId: 'c', clientSecret: new Secret('s', 'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET') } },
    };
    expect(wrongSetting(Object.assign(new Error('x'), { name: 'KafkaJSSASLAuthenticationError' }), oauth)?.variable).toBe('KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL');
    const fromProvider = new ConfigError('KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET', 'refused');
    expect(wrongSetting(Object.assign(new Error('wrapped'), { cause: fromProvider }), oauth)).toBe(fromProvider);
  });

  it('a broker that is only unreachable is no wrong setting', () => {
    expect(wrongSetting(connectionError('ECONNREFUSED'), scram)).toBeUndefined();
    expect(wrongSetting(new Error('Request timed out'), scram)).toBeUndefined();
  });
});
