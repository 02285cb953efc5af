/**
 * kafkajs drops some authorization errors on the way up: FindCoordinator answering
 * GROUP_AUTHORIZATION_FAILED or TRANSACTIONAL_ID_AUTHORIZATION_FAILED surfaces only as
 * "Failed to find group coordinator" (which a broker restart also causes, so it is retried).
 * It does log the broker's response first, and createKafka's log hook notes every
 * authorization failure here, so the error policy can tell the two apart: a coordinator that
 * cannot be found right after the broker refused us is a missing ACL, fatal.
 */
export interface WitnessedFailure {
  /** The Kafka error type, e.g. TRANSACTIONAL_ID_AUTHORIZATION_FAILED. */
  type: string;
  /** The request the broker refused, e.g. GroupCoordinator. */
  request: string;
  at: number;
}

/** kafkajs' messages for the broker's authorization error codes. */
const MESSAGES: [RegExp, string][] = [
  [/Transactional Id authorization failed/i, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'],
  [/Group authorization failed/i, 'GROUP_AUTHORIZATION_FAILED'],
  [/Topic authorization failed/i, 'TOPIC_AUTHORIZATION_FAILED'],
  [/Cluster authorization failed/i, 'CLUSTER_AUTHORIZATION_FAILED'],
];

let last: WitnessedFailure | undefined;

/** Called with each kafkajs log entry's message and error text; notes an authorization refusal. */
export function witnessKafkaLog(message: string, error: unknown, now = Date.now()): WitnessedFailure | undefined {
  if (typeof error !== 'string') return undefined;
  const type = MESSAGES.find(([pattern]) => pattern.test(error))?.[1];
  if (type === undefined) return undefined;
  const request = /Response (\w+)\(/.exec(message)?.[1] ?? 'request';
  last = { type, request, at: now };
  return last;
}

/** The authorization failure the broker answered within the last `withinMs`, if any. */
export function recentAuthorizationFailure(withinMs = 60_000, now = Date.now()): WitnessedFailure | undefined {
  return last !== undefined && now - last.at <= withinMs ? last : undefined;
}

/** For tests. */
export function forgetAuthorizationFailures(): void {
  last = undefined;
}
