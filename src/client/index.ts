/**
 * `ordo/client`: what a service needs to send Ordo usage events and take part in the
 * service-time protocol (docs/client.md). No Kafka client, Avro, metrics or storage code
 * is loaded by it: kafkajs appears only as types (test/client/import-graph.test.ts).
 *
 * @packageDocumentation
 */

// The hybrid clock and its codecs (docs/hybrid-time.md).
export { HybridClock, DEFAULT_MAX_SKEW_MS, type HybridClockOptions } from '../clock/hybrid-clock.js';
export { systemClock, type PhysicalClock } from '../clock/physical-clock.js';
export {
  MAX_SERVICE_TIME,
  compareStamps,
  counterOf,
  formatServiceTime,
  makeServiceTime,
  millisOf,
  parseServiceTime,
  parseServiceTimeHeader,
  type ServiceTime,
  type Stamp,
} from '../clock/service-time.js';
export { readTimeContext } from '../clock/time-context.js';
export type { TimeContext } from '../model/headers.js';
export { BadRecordError, BadServiceTimeError, ClockSkewError, OrdoError } from '../errors.js';

// The time context on HTTP.
export {
  SERVICE_NODE_HEADER,
  SERVICE_TIME_HEADER,
  formatTimeContext,
  receiveTimeContext,
  sendTimeContext,
  type HeaderSource,
  type TimeContextHeaders,
} from './time-headers.js';
export { withServiceTime, type FetchLike, type WithServiceTimeOptions } from './fetch.js';
export {
  receivedTimeContext,
  serviceTimeMiddleware,
  withServiceTimeHandler,
  type NextFunction,
  type RequestHandler,
  type ServiceTimeErrorBody,
  type ServiceTimeMiddleware,
} from './middleware.js';

// Kafka producers: the time context on a record, consistency tokens from record metadata.
export { consistencyTokens, lastPositions, sendWithConsistencyToken, stampRecord, type ProducerLike, type WrittenToken } from './kafka.js';
export { ConsistencyTokenError, decodeConsistencyToken, encodeConsistencyToken, highestPerPartition, type InputPosition } from '../model/consistency-token.js';

// The ingest API.
export { OrdoIngestClient, type OrdoIngestClientOptions, type SendOptions } from './ingest-client.js';
export type { AcceptedEvent } from '../model/ingest-answer.js';
export { OrdoIngestError, type IngestItemError } from './ingest-error.js';
export { CLOUDEVENTS_BATCH, type CloudEventJson, type UsageEventInput } from './cloud-event.js';
export { DEFAULT_RETRY, backoffDelay, parseRetryAfter, retryDelay, type RetryOptions, type RetryPolicy } from './retry.js';
