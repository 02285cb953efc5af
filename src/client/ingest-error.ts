import { OrdoError } from '../errors.js';

/** Why one event of a request was refused (the 400 answer's `items`). */
export interface IngestItemError {
  /** Position of the event in the request. */
  index: number;
  /** The event's id, as sent (the client fills it in). */
  id?: string;
  /** A dead-letter reason name: `invalid-event`, `invalid-value`, `bad-service-time`, ... */
  kind: string;
  /** What is wrong with the event. */
  message: string;
}

/**
 * The ingest API did not accept a request. `status` is the HTTP status (undefined when no
 * answer came: `kind` is then `network` or `timeout`); `kind` the answer's error kind
 * (`invalid-events`, `clock-skew`, `too-large`, `invalid-token`, `unavailable`, ... see
 * docs/openapi.yaml; or `bad-response` for an answer that is not the API's, `closed` for an
 * event enqueued after `close()`, `queue-full` beyond `maxPendingEvents`); `items` the per-event errors of a 400. `retriable` is true when the failure was one the client
 * retries (network, 5xx) and it gave up after `attempts` attempts: sending the same events
 * again later is safe, the pipeline deduplicates by (source, id).
 */
export class OrdoIngestError extends OrdoError {
  static override readonly code = 'ORDO_INGEST';
  /** The HTTP status of the last answer; undefined when none came. */
  readonly status: number | undefined;
  /** The API's error kind, or the client's (`network`, `timeout`, `bad-response`, `closed`). */
  readonly kind: string;
  /** Per-event errors of a 400 (empty otherwise). */
  readonly items: readonly IngestItemError[];
  /** Attempts made (0 when nothing was sent). */
  readonly attempts: number;

  constructor(
    message: string,
    details: { status?: number; kind: string; items?: readonly IngestItemError[]; attempts: number; retriable: boolean; cause?: unknown },
  ) {
    super(message, { retriable: details.retriable, cause: details.cause });
    this.status = details.status;
    this.kind = details.kind;
    this.items = details.items ?? [];
    this.attempts = details.attempts;
  }
}
