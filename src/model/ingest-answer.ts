/**
 * The ingest API's 202 answer, one home for the server (src/ingest) and the client SDK
 * (src/client): a leaf without server types, so the SDK's declarations need nothing else.
 */

/** One accepted event of the 202 answer (docs/openapi.yaml, AcceptedEvent). */
export interface AcceptedEvent {
  /** The event's id, as sent. */
  id: string;
  /** The event's source, as sent. */
  source: string;
  /** Ordo's stamp of the event (its origin service time when no context was sent): 16 lowercase hex digits. */
  serviceTime: string;
  /** Where the record was written in the input topic. */
  partition: number;
  /** Offset of the record in that partition (int64, a decimal string). */
  offset: string;
  /** Consistency token naming that record: `consistentWith` on a usage query reads your write. */
  token: string;
}
