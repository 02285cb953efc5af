/**
 * The events the ingest client sends: CloudEvents 1.0 in JSON, as `POST /v1/events` takes
 * them (docs/client.md; field mapping in README, Schema).
 */

/** A usage event to send. `id` and `time` are filled in when absent. */
export interface UsageEventInput {
  /**
   * Unique per `source`; `(source, id)` identifies the event and the pipeline drops a
   * repeat within 24 h, which is what makes retries safe. Absent: a random UUID is assigned
   * before the first attempt, so every retry carries the same id.
   */
  id?: string;
  /** Who sends it, e.g. `//checkout/eu-1`. */
  source: string;
  /** Kind of usage, e.g. `api-call`; meters select on it. */
  type: string;
  /** The customer the usage is billed to (the Kafka key). */
  subject: string;
  /** When the usage happened: a Date or an RFC 3339 string. Absent: when it was given to the client. */
  time?: Date | string;
  /** The usage: its amount and dimensions. */
  data?: {
    /** A plain decimal STRING such as `"12.50"` (no exponent; a number may already have lost digits). Absent: `"1"`. */
    value?: string;
    /** String dimensions meters group or filter by. */
    dimensions?: Record<string, string>;
  };
  /** W3C trace context, passed through to the record. */
  traceparent?: string;
}

/** A {@link UsageEventInput} as sent: CloudEvents JSON with its id and time settled. */
export interface CloudEventJson {
  /** Always `1.0`. */
  specversion: '1.0';
  /** The event id (given or assigned). */
  id: string;
  /** As {@link UsageEventInput.source}. */
  source: string;
  /** As {@link UsageEventInput.type}. */
  type: string;
  /** As {@link UsageEventInput.subject}. */
  subject: string;
  /** RFC 3339 (toISOString of a Date). */
  time: string;
  /** Always `application/json`. */
  datacontenttype: 'application/json';
  /** As {@link UsageEventInput.data}. */
  data: { value?: string; dimensions?: Record<string, string> };
  /** As {@link UsageEventInput.traceparent}. */
  traceparent?: string;
}

/** Content type of a request carrying an array of CloudEvents. */
export const CLOUDEVENTS_BATCH = 'application/cloudevents-batch+json';

/** Settles the id (given, else `newId()`) and time (given, else `now`), once, before any attempt. */
export function toCloudEvent(event: UsageEventInput, newId: () => string, now: Date): CloudEventJson {
  const { id, source, type, subject, time, data, traceparent } = event;
  const out: CloudEventJson = {
    specversion: '1.0',
    id: id ?? newId(),
    source,
    type,
    subject,
    time: time instanceof Date ? time.toISOString() : (time ?? now.toISOString()),
    datacontenttype: 'application/json',
    data: { ...data },
  };
  if (traceparent !== undefined) out.traceparent = traceparent;
  return out;
}
