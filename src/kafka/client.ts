import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import type { Logger } from '../observability/logger.js';

/** A kafkajs client whose logs go through our structured logger. */
export function createKafka(options: { brokers: string[]; clientId: string; logger: Logger }): Kafka {
  const log = options.logger.child({ component: 'kafkajs' });
  return new Kafka({
    brokers: options.brokers,
    clientId: options.clientId,
    logLevel: logLevel.WARN,
    retry: { initialRetryTime: 100, retries: 8 },
    logCreator: () => (entry: LogEntry) => {
      const { message, ...meta } = entry.log;
      const text = entry.namespace ? `${entry.namespace}: ${message}` : message;
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
