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
      if (isRoutineNoise(message, meta)) return log.debug(text, meta);
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

/**
 * Retriable broker answers kafkajs logs at ERROR for every attempt although it retries
 * them itself: normal on a fresh broker (coordinators loading, leaders of just-created
 * topics not known yet) and during rebalances. If the retries run out, the error reaches
 * our code, which logs it with its context; each attempt is only debug.
 */
const RETRIED_RESPONSES = new Set([
  "The coordinator is loading and hence can't process requests for this group", // GROUP_LOAD_IN_PROGRESS
  'The group coordinator is not available', // GROUP_COORDINATOR_NOT_AVAILABLE
  'This is not the correct coordinator for this group', // NOT_COORDINATOR_FOR_GROUP
  'This server does not host this topic-partition', // UNKNOWN_TOPIC_OR_PARTITION (just created)
  'There is no leader for this topic-partition as we are in the middle of a leadership election', // LEADER_NOT_AVAILABLE
  'This server is not the leader for that topic-partition', // NOT_LEADER_FOR_PARTITION
  'The group is rebalancing, so a rejoin is needed', // REBALANCE_IN_PROGRESS
  'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing', // CONCURRENT_TRANSACTIONS
]);

/** kafkajs log entries that say nothing an operator should act on. */
export function isRoutineNoise(message: string, meta: Record<string, unknown>): boolean {
  // Our producers are transactional: a send that exhausts its retries aborts the whole
  // transaction and the engine retries the batch, so this kafkajs warning does not apply.
  if (message.startsWith('Limiting retries for the idempotent producer')) return true;
  // Every Ordo producer either sets its partition or its partitioner explicitly.
  if (message.startsWith('KafkaJS v2.0.0 switched default partitioner')) return true;
  return message.startsWith('Response ') && typeof meta.error === 'string' && RETRIED_RESPONSES.has(meta.error);
}
