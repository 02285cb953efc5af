/**
 * One base error with a stable `ORDO_...` code, a `retriable` flag and a `cause`.
 * Subclasses exist only for the kinds a caller acts on differently:
 *   BadRecordError  -> the record goes to the dead-letter topic with `reason`
 *   ConfigError     -> exit non-zero at start, naming the variable
 *   FencedError     -> drop the task (another worker owns the partition now)
 */
export class OrdoError extends Error {
  static readonly code: string = 'ORDO_ERROR';
  /** Stable `ORDO_...` code of the error's class. */
  readonly code: string;
  /** Whether trying the same thing again may succeed. */
  readonly retriable: boolean;

  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = (new.target).code;
    this.retriable = options.retriable ?? false;
  }
}

/** DLQ reasons: stable strings written to the `ordo-dlq-reason` header. */
/** Why a record went to the DLQ (header `ordo-dlq-reason`, label of ordo_events_dead_lettered_total). */
export const DEAD_LETTER_REASONS = ['undecodable', 'unknown-schema', 'incompatible-schema', 'invalid-event', 'clock-skew', 'bad-service-time', 'invalid-value', 'subject-deleted', 'invalid-correction', 'correction-unknown-original'] as const;
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number];

/** A record that cannot be processed: data, not a crash. Goes to the DLQ. */
export class BadRecordError extends OrdoError {
  static override readonly code: string = 'ORDO_BAD_RECORD';
  /** The dead-letter reason name (`bad-service-time`, `clock-skew`, `invalid-event`, ...). */
  readonly reason: DeadLetterReason;

  constructor(reason: DeadLetterReason, message: string, options: { cause?: unknown } = {}) {
    super(message, { retriable: false, cause: options.cause });
    this.reason = reason;
  }
}

/** A received service time too far ahead of local physical time; the clock is unchanged. */
export class ClockSkewError extends BadRecordError {
  static override readonly code = 'ORDO_CLOCK_SKEW';
  /** How far ahead of local physical time the received time was, in ms. */
  readonly skewMs: number;

  constructor(skewMs: number, maxSkewMs: number) {
    super('clock-skew', `received service time is ${skewMs} ms ahead of local physical time (max ${maxSkewMs} ms)`);
    this.skewMs = skewMs;
  }
}

/** A `service-time` header (or service time value) that does not parse. */
export class BadServiceTimeError extends BadRecordError {
  static override readonly code = 'ORDO_BAD_SERVICE_TIME';

  constructor(message: string) {
    super('bad-service-time', message);
  }
}

/** Invalid configuration: the process exits at start with this message. */
export class ConfigError extends OrdoError {
  static override readonly code = 'ORDO_CONFIG';
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

/** Another producer with the same transactional id took over: drop the task, never retry. */
export class FencedError extends OrdoError {
  static override readonly code = 'ORDO_FENCED';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retriable: false, cause: options.cause });
  }
}

/** The registry or broker could not be reached: retry the batch, never dead-letter it. */
export class TransientError extends OrdoError {
  static override readonly code = 'ORDO_TRANSIENT';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retriable: true, cause: options.cause });
  }
}

/**
 * A query the API cannot answer as asked (unknown meter, bad range, a time zone the
 * maintained windows cannot answer exactly): an HTTP 4xx with this message, never a guess.
 */
export class QueryError extends OrdoError {
  static override readonly code = 'ORDO_QUERY';
  readonly status: number;
  /** Stable machine-readable kind, e.g. 'unknown-meter', 'bad-parameter', 'not-exact'. */
  readonly kind: string;
  /** More fields of the error body (e.g. per-item errors). */
  readonly details: Record<string, unknown> | undefined;
  /** Response headers (e.g. Retry-After). */
  readonly headers: Record<string, string> | undefined;

  constructor(kind: string, message: string, status = 400, extra: { details?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
    super(message, { retriable: false });
    this.kind = kind;
    this.status = status;
    this.details = extra.details;
    this.headers = extra.headers;
  }
}

/**
 * The broker refused an operation for lack of an ACL (or a SASL/TLS identity it rejects):
 * never retried, never read as a fence. The message names the operation and resource.
 */
export class NotAuthorizedError extends OrdoError {
  static override readonly code = 'ORDO_NOT_AUTHORIZED';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retriable: false, cause: options.cause });
  }
}

/**
 * A schema registry id that now names a different schema than Ordo recorded under it
 * (src/schema/schema-ids.ts): decoding with it would misread every record, so this is
 * fatal, never a dead letter and never retried.
 */
export class SchemaConflictError extends OrdoError {
  static override readonly code = 'ORDO_SCHEMA_CONFLICT';
  readonly schemaId: number;

  constructor(schemaId: number, message: string) {
    super(message, { retriable: false });
    this.schemaId = schemaId;
  }
}
