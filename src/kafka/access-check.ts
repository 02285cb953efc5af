import type { OrdoConfig } from '../config/config.js';
import type { KafkaSecurity } from '../config/security.js';
import { TLS_CODES, causes } from '../engine/error-policy.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { createKafka } from './client.js';

/** TLS alerts a broker sends when it does not accept (or did not get) our client certificate. */
const CLIENT_CERT_ALERT = /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|UNKNOWN_CA|HANDSHAKE_FAILURE|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED)$/;

/**
 * Connects once at role start and turns what can only be a wrong setting (credentials the
 * broker refuses, a broker certificate we do not trust, a client certificate it does not
 * accept) into a ConfigError naming the variable, so the process exits 78 within seconds
 * instead of a role retrying or failing later with a protocol message. A broker that is only
 * unreachable is the roles' business: logged, and the role starts (and waits) as usual.
 */
export async function checkKafkaAccess(config: Pick<OrdoConfig, 'brokers' | 'clientId' | 'security'>, logger: Logger): Promise<void> {
  const kafka = createKafka({ brokers: config.brokers, clientId: config.clientId, logger, security: config.security.kafka });
  const admin = kafka.admin({ retry: { retries: 1, initialRetryTime: 200 } });
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    const wrong = wrongSetting(error, config.security.kafka);
    if (wrong) throw wrong;
    logger.warn('kafka not reachable at start; the role waits for it', { brokers: config.brokers, error });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The ConfigError that `error` (from connecting with `security`) stands for, if it is one. */
export function wrongSetting(error: unknown, security: KafkaSecurity): ConfigError | undefined {
  const chain = causes(error);
  const configError = chain.find((e): e is ConfigError => e instanceof ConfigError);
  if (configError) return configError;
  if (chain.some((e) => e.name === 'KafkaJSSASLAuthenticationError' || e.type === 'SASL_AUTHENTICATION_FAILED')) {
    const sasl = security.sasl;
    if (sasl?.mechanism === 'OAUTHBEARER') {
      return new ConfigError(
        'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL',
        `the broker refused the OAUTHBEARER token issued for client "${sasl.oauth.clientId}" (issuer, audience or signing key not accepted)`,
      );
    }
    if (sasl !== undefined) {
      return new ConfigError(sasl.password.source, `the broker refused SASL ${sasl.mechanism} authentication as "${sasl.username}": wrong password or KAFKA_SASL_USERNAME`);
    }
    return new ConfigError('KAFKA_SECURITY_PROTOCOL', `the broker asks for SASL authentication but KAFKA_SECURITY_PROTOCOL=${security.protocol}`);
  }
  const code = chain.map((e) => e.code).find((c): c is string => typeof c === 'string' && (TLS_CODES.has(c) || c.startsWith('ERR_SSL_')));
  if (code === undefined) return undefined;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new ConfigError('KAFKA_BROKERS', `the broker's TLS certificate does not name the host it was reached at (${code})`);
  if (TLS_CODES.has(code)) {
    const fix = security.tls?.ca ? 'it is not signed by the CA in KAFKA_SSL_CA_FILE' : 'set KAFKA_SSL_CA_FILE to the CA that signed it';
    return new ConfigError('KAFKA_SSL_CA_FILE', `the broker's TLS certificate is not trusted (${code}): ${fix}`);
  }
  if (CLIENT_CERT_ALERT.test(code)) {
    return security.tls?.cert
      ? new ConfigError('KAFKA_SSL_CERT_FILE', `the broker did not accept the client certificate (${code})`)
      : new ConfigError('KAFKA_SSL_CERT_FILE', `the broker requires a client certificate (mTLS) and none is set (${code}); set KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE`);
  }
  return new ConfigError('KAFKA_SECURITY_PROTOCOL', `the TLS handshake failed (${code}): does the listener at KAFKA_BROKERS speak ${security.protocol}?`);
}
