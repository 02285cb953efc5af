import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel, type LogEntry, type SASLOptions } from 'kafkajs';
import type { KafkaSecurity } from '../config/security.js';
import type { Logger } from '../observability/logger.js';
import { witnessKafkaLog } from './authorization-witness.js';
import { ClientCredentialsTokenProvider } from './oauth-token.js';

/**
 * A kafkajs client whose logs go through our structured logger, with the TLS and SASL
 * settings of `security` (PLAINTEXT when absent).
 */
export function createKafka(options: { brokers: string[]; clientId: string; logger: Logger; security?: KafkaSecurity }): Kafka {
  const log = options.logger.child({ component: 'kafkajs' });
  return new Kafka({
    brokers: options.brokers,
    clientId: options.clientId,
    ...kafkaSecurityOptions(options.security),
    logLevel: logLevel.WARN,
    retry: { initialRetryTime: 100, retries: 8 },
    logCreator: () => (entry: LogEntry) => {
      const { message, ...meta } = entry.log;
      const text = entry.namespace ? `${entry.namespace}: ${message}` : message;
      const refused = witnessKafkaLog(text, meta.error);
      if (refused) return log.error(`not authorized: the broker answered ${refused.type} to ${refused.request}`, meta);
      // Our producers are transactional: a send that exhausts its retries aborts the whole
      // transaction and the engine retries the batch, so this kafkajs warning does not apply.
      if (message.startsWith('Limiting retries for the idempotent producer')) return log.debug(text, meta);
      switch (entry.level) {
        case logLevel.ERROR:
          // kafkajs logs retriable protocol errors (coordinator loading, rebalancing) at ERROR.
          log.warn(text, meta);
          break;
        case logLevel.WARN:
          log.warn(text, meta);
          break;
        case logLevel.INFO:
          log.info(text, meta);
          break;
        default:
          log.debug(text, meta);
      }
    },
  });
}

/** kafkajs' `ssl` and `sasl` options for `security`. */
export function kafkaSecurityOptions(security: KafkaSecurity | undefined): { ssl?: ConnectionOptions; sasl?: SASLOptions } {
  if (security === undefined) return {};
  const { tls, sasl } = security;
  const out: { ssl?: ConnectionOptions; sasl?: SASLOptions } = {};
  if (tls !== undefined) {
    // `ca` replaces Node's system CAs, as a private CA needs; verification always stays on.
    out.ssl = {
      rejectUnauthorized: true,
      ...(tls.ca ? { ca: [tls.ca] } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      ...(tls.passphrase ? { passphrase: tls.passphrase.reveal() } : {}),
    };
  }
  if (sasl !== undefined) {
    if (sasl.mechanism === 'OAUTHBEARER') {
      out.sasl = { mechanism: 'oauthbearer', oauthBearerProvider: new ClientCredentialsTokenProvider(sasl.oauth).provide };
    } else {
      const mechanism = sasl.mechanism === 'PLAIN' ? 'plain' : sasl.mechanism === 'SCRAM-SHA-256' ? 'scram-sha-256' : 'scram-sha-512';
      out.sasl = { mechanism, username: sasl.username, password: sasl.password.reveal() };
    }
  }
  return out;
}
