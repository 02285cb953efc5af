/**
 * A typed client of the ingest API (`POST /v1/events`): one request per `send()`, or
 * batching with `enqueue()` + `flush()`; retries network errors and 5xx answers with
 * backoff (a 503's Retry-After honoured), never a 4xx; idempotent by event id.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HybridClock } from '../clock/hybrid-clock.js';
import { BadRecordError } from '../errors.js';
import type { AcceptedEvent } from '../model/ingest-answer.js';
import { CLOUDEVENTS_BATCH, type CloudEventJson, type UsageEventInput, toCloudEvent } from './cloud-event.js';
import type { FetchLike } from './fetch.js';
import { type IngestItemError, OrdoIngestError } from './ingest-error.js';
import { type RetryOptions, type RetryPolicy, retryDelay, retryPolicy } from './retry.js';
import { receiveTimeContext, sendTimeContext } from './time-headers.js';

/** Options of {@link OrdoIngestClient}. */
export interface OrdoIngestClientOptions {
  /** Base URL of the ingest role, e.g. `http://ordo-ingest:8090`: the client posts to `<url>/v1/events`. */
  url: string | URL;
  /** Bearer token with the `ingest` scope, or a function returning the current one (asked before each attempt). */
  token?: string | (() => string | Promise<string>);
  /**
   * The caller's hybrid clock: each request then carries its send stamp as `service-time` /
   * `service-node` (the events' origin service time), and the answer's `service-time` is
   * received into it. Without one, the ingest role stamps the events on arrival.
   */
  clock?: HybridClock;
  /** The fetch to use. Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Most events in one request of the batcher. Default 500 (the ingest role's default limit is 1,000). */
  maxBatchEvents?: number;
  /** Most body bytes in one request of the batcher. Default 1,000,000 (the role's default limit is 1 MiB). */
  maxBatchBytes?: number;
  /** How long an enqueued event may wait for others to share its request. Default 50 ms. */
  maxDelayMs?: number;
  /**
   * Most events enqueued and not yet accepted or refused (queued, in a request, or waiting
   * for a retry). Beyond it `enqueue()` rejects at once with kind `queue-full` (retriable:
   * enqueue again later): a long outage of the ingest never grows the client's memory
   * without bound. Default 100,000.
   */
  maxPendingEvents?: number;
  /** Time limit of one attempt, answer body included; past it the attempt counts as a network error. Default 30,000 ms. */
  timeoutMs?: number;
  /** Retries of network errors and 5xx answers. */
  retry?: RetryOptions;
  /** Called when an answer's `service-time` is refused by the clock (it stays unchanged). Default: a process warning. */
  onRejectedTime?: (error: BadRecordError) => void;
}

/** Options of one {@link OrdoIngestClient.send} call. */
export interface SendOptions {
  /** Aborts the request and any wait between attempts; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

interface Pending {
  event: CloudEventJson;
  /** The event's JSON, made once: it sizes the batch and is the batch body's part. */
  json: string;
  bytes: number;
  resolve: (accepted: AcceptedEvent) => void;
  reject: (error: unknown) => void;
}

const HEX16 = /^[0-9a-f]{16}$/;

/**
 * Client of Ordo's ingest API. Every event gets its `id` (a UUID when absent) and `time`
 * before the first attempt, so a retry resends the same body: safe, because the pipeline
 * drops a repeated (source, id). A request is all or nothing (one Kafka transaction).
 *
 * @example
 * const client = new OrdoIngestClient({ url: 'http://localhost:8090', token: process.env.ORDO_TOKEN });
 * const { events } = await client.send([{ source: '//shop', type: 'api-call', subject: 'acme', data: { value: '1' } }]);
 * console.log(events[0].token); // consistentWith=<token> on a usage query reads this write
 */
export class OrdoIngestClient {
  readonly #endpoint: URL;
  readonly #token: OrdoIngestClientOptions['token'];
  readonly #clock: HybridClock | undefined;
  readonly #fetch: FetchLike;
  readonly #maxBatchEvents: number;
  readonly #maxBatchBytes: number;
  readonly #maxDelayMs: number;
  readonly #maxPendingEvents: number;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #onRejectedTime: (error: BadRecordError) => void;

  #queue: Pending[] = [];
  #queuedBytes = 0;
  /** Events enqueued and not yet settled (see maxPendingEvents). */
  #pending = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Batches go one at a time, in enqueue order: this is the last one's completion (never rejects). */
  #sending: Promise<void> = Promise.resolve();
  #failures: unknown[] = [];
  #closed = false;

  constructor(options: OrdoIngestClientOptions) {
    this.#endpoint = new URL('v1/events', withSlash(new URL(options.url)));
    this.#token = options.token;
    this.#clock = options.clock;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#maxBatchEvents = whole('maxBatchEvents', options.maxBatchEvents ?? 500, 1);
    this.#maxBatchBytes = whole('maxBatchBytes', options.maxBatchBytes ?? 1_000_000, 2);
    this.#maxDelayMs = whole('maxDelayMs', options.maxDelayMs ?? 50, 0);
    this.#maxPendingEvents = whole('maxPendingEvents', options.maxPendingEvents ?? 100_000, 1);
    this.#timeoutMs = whole('timeoutMs', options.timeoutMs ?? 30_000, 1);
    this.#retry = retryPolicy(options.retry);
    this.#onRejectedTime =
      options.onRejectedTime ?? ((error) => process.emitWarning(`ignored the service-time of an ingest answer: ${error.message}`, { code: error.code }));
  }

  /**
   * Sends the events in ONE request (all are written or none) and resolves with the
   * accepted events, in the order given (no events: no request). Rejects with {@link OrdoIngestError}: at once for a
   * 4xx, after the retries for network errors and 5xx.
   */
  async send(events: UsageEventInput | readonly UsageEventInput[], options: SendOptions = {}): Promise<{ events: AcceptedEvent[] }> {
    const list: readonly UsageEventInput[] = isList(events) ? events : [events];
    if (list.length === 0) return { events: [] }; // nothing to write: no request
    const now = new Date();
    const cloudEvents = list.map((e) => toCloudEvent(e, randomUUID, now));
    return { events: await this.#post(cloudEvents, JSON.stringify(cloudEvents), options.signal) };
  }

  /**
   * Queues one event for a batched request: the queue is sent when it holds
   * `maxBatchEvents` events or `maxBatchBytes` bytes, or `maxDelayMs` after its first event.
   * Resolves when the event is accepted. An event the API refuses in a 400 is rejected
   * alone and the rest of its batch is sent again without it. Ignoring the promise is
   * safe: failures are also reported by the next {@link flush}.
   */
  enqueue(event: UsageEventInput): Promise<AcceptedEvent> {
    if (this.#closed) return Promise.reject(new OrdoIngestError('the ingest client is closed', { kind: 'closed', attempts: 0, retriable: false }));
    if (this.#pending >= this.#maxPendingEvents) {
      return Promise.reject(new OrdoIngestError(`${this.#pending} events are pending (maxPendingEvents); enqueue again once some are accepted`, { kind: 'queue-full', attempts: 0, retriable: true }));
    }
    const cloudEvent = toCloudEvent(event, randomUUID, new Date());
    const json = JSON.stringify(cloudEvent);
    const bytes = Buffer.byteLength(json) + 1;
    if (this.#queue.length > 0 && this.#queuedBytes + bytes + 1 > this.#maxBatchBytes) void this.#drain();
    this.#pending += 1;
    let settled = false;
    const settle = (): void => {
      if (!settled) this.#pending -= 1;
      settled = true;
    };
    const promise = new Promise<AcceptedEvent>((resolve, reject) =>
      this.#queue.push({
        event: cloudEvent,
        json,
        bytes,
        resolve: (accepted) => {
          settle();
          resolve(accepted);
        },
        reject: (error) => {
          settle();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      }),
    );
    promise.catch(() => undefined); // the caller may not await it; flush() reports the failure
    this.#queuedBytes += bytes;
    if (this.#queue.length >= this.#maxBatchEvents || this.#queuedBytes + 1 >= this.#maxBatchBytes) void this.#drain();
    else this.#timer ??= setTimeout(() => void this.#drain(), this.#maxDelayMs);
    return promise;
  }

  /**
   * Sends everything queued and waits until every event enqueued so far is accepted or
   * refused. Rejects with the first failure since the previous flush (each failed event's
   * own promise has its error).
   */
  async flush(): Promise<void> {
    await this.#drain();
    const failures = this.#failures.splice(0);
    if (failures.length > 0) throw failures[0];
  }

  /** Flushes, then refuses further `enqueue()` calls (kind `closed`). `send()` still works. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #drain(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (batch.length > 0) this.#sending = this.#sending.then(() => this.#sendBatch(batch, true));
    return this.#sending;
  }

  async #sendBatch(batch: Pending[], mayResendRest: boolean): Promise<void> {
    try {
      const accepted = await this.#post(
        batch.map((p) => p.event),
        `[${batch.map((p) => p.json).join(',')}]`,
      );
      batch.forEach((p, i) => p.resolve(accepted[i]!));
    } catch (error) {
      // A 400 naming some items wrote nothing: refuse those, send the others again.
      if (mayResendRest && error instanceof OrdoIngestError && error.status === 400 && error.items.length > 0 && error.items.length < batch.length) {
        const bad = new Map(error.items.map((item) => [item.index, item]));
        for (const [index, item] of bad) {
          const pending = batch[index];
          if (pending === undefined) continue;
          const refused = new OrdoIngestError(`event ${pending.event.id} refused (${item.kind}): ${item.message}`, { status: 400, kind: item.kind, items: [item], attempts: error.attempts, retriable: false });
          this.#failures.push(refused);
          pending.reject(refused);
        }
        await this.#sendBatch(batch.filter((_p, i) => !bad.has(i)), false);
        return;
      }
      this.#failures.push(error);
      for (const p of batch) p.reject(error);
    }
  }

  async #post(events: CloudEventJson[], body: string, signal?: AbortSignal): Promise<AcceptedEvent[]> {
    // One stamp per request: every attempt sends the same headers and body.
    const headers: Record<string, string> = { 'content-type': CLOUDEVENTS_BATCH, accept: 'application/json', ...(this.#clock && sendTimeContext(this.#clock)) };
    for (let attempt = 1; ; attempt += 1) {
      signal?.throwIfAborted();
      const authorization = await this.#authorization();
      let failure: OrdoIngestError;
      let retryAfter: string | null = null;
      try {
        const attemptSignal = signal === undefined ? AbortSignal.timeout(this.#timeoutMs) : AbortSignal.any([signal, AbortSignal.timeout(this.#timeoutMs)]);
        const response = await this.#fetch(this.#endpoint, { method: 'POST', headers: { ...headers, ...authorization }, body, signal: attemptSignal });
        this.#receive(response.headers);
        const text = await response.text();
        if (response.ok) return accepted(text, events, response.status, attempt);
        failure = refusal(response.status, text, events, attempt);
        if (response.status < 500) throw failure;
        retryAfter = response.headers.get('retry-after');
      } catch (error) {
        if (error instanceof OrdoIngestError) throw error;
        signal?.throwIfAborted();
        failure = noAnswer(error, attempt);
      }
      if (attempt >= this.#retry.maxAttempts) throw failure;
      // timers/promises rejects with its own AbortError: rethrow the caller's reason instead.
      await sleep(retryDelay(attempt, retryAfter, this.#retry), undefined, signal === undefined ? undefined : { signal }).catch((error: unknown) => {
        signal?.throwIfAborted();
        throw error;
      });
    }
  }

  async #authorization(): Promise<Record<string, string>> {
    if (this.#token === undefined) return {};
    const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    return { authorization: `Bearer ${token}` };
  }

  #receive(headers: Headers): void {
    if (this.#clock === undefined) return;
    try {
      receiveTimeContext(this.#clock, headers);
    } catch (error) {
      if (!(error instanceof BadRecordError)) throw error;
      this.#onRejectedTime(error);
    }
  }
}

function isList(events: UsageEventInput | readonly UsageEventInput[]): events is readonly UsageEventInput[] {
  return Array.isArray(events);
}

function withSlash(url: URL): URL {
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function whole(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`OrdoIngestClient option ${name} must be a whole number >= ${min}, got ${value}`);
  return value;
}

/** A 2xx answer: one accepted event per event sent, same ids in the same order. */
function accepted(text: string, sent: readonly CloudEventJson[], status: number, attempts: number): AcceptedEvent[] {
  const bad = (why: string): OrdoIngestError =>
    new OrdoIngestError(`ingest answered ${status} with ${why}; the events may have been written: sending them again is safe`, { status, kind: 'bad-response', attempts, retriable: false });
  const body = parseJson(text) as { events?: unknown } | undefined;
  if (body === undefined || !Array.isArray(body.events)) throw bad('a body that is not {"events": [...]}');
  if (body.events.length !== sent.length) throw bad(`${body.events.length} accepted events for ${sent.length} sent`);
  return body.events.map((item: unknown, index) => {
    const e = item as Partial<Record<keyof AcceptedEvent, unknown>> | null;
    const ok =
      typeof e === 'object' && e !== null && e.id === sent[index]!.id && typeof e.source === 'string' && typeof e.serviceTime === 'string' && HEX16.test(e.serviceTime) &&
      Number.isSafeInteger(e.partition) && typeof e.offset === 'string' && typeof e.token === 'string';
    if (!ok) throw bad(`an item ${index} that is not the accepted event ${JSON.stringify(sent[index]!.id)}`);
    return { id: e.id, source: e.source, serviceTime: e.serviceTime, partition: e.partition, offset: e.offset, token: e.token } as AcceptedEvent;
  });
}

/** A non-2xx answer in the API's error format, or whatever came instead. */
function refusal(status: number, text: string, sent: readonly CloudEventJson[], attempts: number): OrdoIngestError {
  const body = parseJson(text) as { error?: { kind?: unknown; message?: unknown; items?: unknown } } | undefined;
  const error = body?.error;
  const kind = typeof error?.kind === 'string' ? error.kind : `http-${status}`;
  const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200) || `HTTP ${status}`;
  const items: IngestItemError[] = Array.isArray(error?.items)
    ? (error.items as { index?: unknown; kind?: unknown; message?: unknown }[]).flatMap((item) =>
        typeof item?.index === 'number' && typeof item.kind === 'string' && typeof item.message === 'string'
          ? [{ index: item.index, id: sent[item.index]?.id, kind: item.kind, message: item.message }]
          : [],
      )
    : [];
  return new OrdoIngestError(`ingest answered ${status} ${kind}: ${message}`, { status, kind, items, attempts, retriable: status >= 500 });
}

function noAnswer(error: unknown, attempts: number): OrdoIngestError {
  const timeout = error instanceof Error && error.name === 'TimeoutError';
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  const what = error instanceof Error ? `${error.message}${cause}` : String(error);
  return new OrdoIngestError(`no answer from the ingest API (${what})`, { kind: timeout ? 'timeout' : 'network', attempts, retriable: true, cause: error });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
