import { randomBytes, randomUUID } from 'node:crypto';
import { CompressionTypes, Partitioners, type Admin, type Consumer, type Kafka, type Producer } from 'kafkajs';
import { FORWARDED_BY_HEADER, SERVED_BY_HEADER, type DeliverAnswer, type DeliverRequest } from '../deliver/delivery.js';
import { QueryError } from '../errors.js';
import { waitForTopic } from '../kafka/topics.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import type { Logger } from '../observability/logger.js';
import { causes, classify, fatalMessage } from './error-policy.js';
import { decodeForwardedReply, decodeForwardedRequest, encodeForwardedReply, encodeForwardedRequest, type ForwardedRequest } from './forwarder-wire.js';
import { Liveness } from './liveness.js';
import { retrying } from './retry.js';

export interface ForwarderOptions {
  kafka: Kafka;
  /** Requests, keyed by the node asked to serve them. */
  forwardTopic: string;
  /** Answers, keyed by the node that forwarded the request. */
  replyTopic: string;
  /** This replica's node id (ORDO_NODE_ID). */
  nodeId: string;
  /** Prefix of its consumer group: `<groupId>-<8 hex>`, a group of its own per start, never committed. */
  groupId: string;
  /** A forward not answered within this (plus its extraMs) answers 504 forward-timeout. */
  timeoutMs: number;
  logger: Logger;
  metrics?: Pick<OrdoMetrics, 'deliverForwards' | 'deliverForwardedServed'>;
  /** Serves a request another node forwarded here (`from`: that node). A QueryError becomes its error answer. */
  serve(request: DeliverRequest, from: string): Promise<DeliverAnswer>;
  /** Bounds the retries of transient start-up failures (and reports them to /healthz); default: 2 minutes. */
  liveness?: Liveness;
  /** After start: forwarding cannot go on (its consumer crashed for good, e.g. a missing ACL). */
  onFailure?: (error: unknown) => void;
  /**
   * kafkajs' maxWaitTimeInMs of its consumer, default 1 s. A fetch returns as soon as a record
   * came, so this does not delay a forward (round trip p50 2-7 ms, p99 7-25 ms on the local
   * broker alike with 100 ms, 1 s and kafkajs' 5 s); it bounds an empty fetch, which stop() waits for.
   */
  maxWaitMs?: number;
}

/** See ForwarderOptions.maxWaitMs. */
const DEFAULT_MAX_WAIT_MS = 1_000;
/** Answers larger than this are sent gzip-compressed (a session read may carry many records). */
const COMPRESS_ABOVE_BYTES = 16 * 1024;

interface Pending {
  node: string;
  resolve(answer: DeliverAnswer): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

/**
 * Node-addressed routing through the broker: a request for a session another replica owns
 * is published to the forward topic keyed by that node, with a correlation id, the origin
 * and a deadline; each replica reads the forward topic, serves the records keyed for itself
 * and publishes the answer to the reply topic keyed by the origin, which resolves the
 * waiting request by its correlation id. Both topics are read from their end at start
 * (only new requests matter) by one consumer in a group of its own per start. Serving does
 * not hold up the consumer: a long-polling session read runs while the next records (other
 * requests, replies to our own forwards) are read.
 */
export class Forwarder {
  private admin: Admin | undefined;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly serving = new Set<Promise<void>>();
  /** Per `topic:partition`, the next offset to read: where a restarted consumer seeks to. */
  private readonly next = new Map<string, { topic: string; partition: number; offset: string }>();
  private readonly liveness: Liveness;
  private started = false;
  private stopped = false;
  private failure: Error | undefined;
  private readonly stopWaiters: (() => void)[] = [];

  /** The consumer group actually joined (see ForwarderOptions.groupId). */
  readonly groupId: string;

  constructor(private readonly options: ForwarderOptions) {
    this.groupId = `${options.groupId}-${randomBytes(4).toString('hex')}`.slice(0, 255);
    this.liveness = options.liveness ?? new Liveness(120_000);
  }

  /**
   * Waits for both topics (created by the role; transient errors retried), notes their end
   * offsets, joins the consumer's group and seeks it to those ends: every record written
   * after start() resolves is read, none before it. Resolves once the consumer has joined.
   */
  async start(): Promise<void> {
    const o = this.options;
    const admin = (this.admin = o.kafka.admin());
    const ready = await retrying(
      async () => {
        await admin.connect();
        for (const topic of [o.forwardTopic, o.replyTopic]) await waitForTopic(admin, topic, { stopped: () => this.stopped, logger: o.logger });
        for (const topic of [o.forwardTopic, o.replyTopic]) {
          for (const { partition, high } of await admin.fetchTopicOffsets(topic)) this.next.set(`${topic}:${partition}`, { topic, partition, offset: high });
        }
      },
      { what: 'forwarder start', meta: { topics: `${o.forwardTopic}, ${o.replyTopic}` }, log: o.logger, liveness: this.liveness, abandoned: () => this.stopped },
    );
    if (!ready.ok) {
      if (ready.why === 'abandoned') return;
      throw ready.error;
    }
    if (this.stopped) return;
    // Not idempotent: kafkajs then retries a send for ever, and a forward must fail within its
    // timeout. A request sent twice is served twice (session reads and acks are repeatable); a
    // second answer finds no one waiting and is dropped.
    const producer = (this.producer = o.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner }));
    await producer.connect();
    const consumer = (this.consumer = o.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: o.maxWaitMs ?? DEFAULT_MAX_WAIT_MS,
      retry: { restartOnFailure: (error) => Promise.resolve(classify(error) === 'retry') },
    }));
    let joined!: () => void;
    let crashed!: (error: unknown) => void;
    const join = new Promise<void>((resolve, reject) => {
      joined = resolve;
      crashed = reject;
    });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      // Also after a restart of a crashed consumer: it has no committed offsets to resume from.
      for (const position of this.next.values()) consumer.seek(position);
      joined();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart || this.stopped) return;
      crashed(event.payload.error);
      this.fail(event.payload.error);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [o.forwardTopic, o.replyTopic], fromBeginning: false });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) this.received(batch.topic, m.key, m.value);
        const last = batch.messages.at(-1);
        if (last !== undefined) this.next.set(`${batch.topic}:${batch.partition}`, { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() });
        return Promise.resolve();
      },
    });
    await Promise.race([join, this.whenStopped()]);
    this.started = true;
  }

  /** Sends `request` to `node` and resolves with its answer; QueryError 504 forward-timeout after timeoutMs + extraMs. */
  async forward(node: string, request: DeliverRequest, extraMs = 0): Promise<DeliverAnswer> {
    const o = this.options;
    if (!this.started || this.stopped || this.failure !== undefined || !this.producer) {
      throw new QueryError('forward-unavailable', `node ${o.nodeId} cannot forward requests ${this.stopped ? 'while it stops' : 'now'}; ask again`, 503, { headers: { 'retry-after': '1' } });
    }
    const waitMs = o.timeoutMs + Math.max(0, extraMs);
    const id = randomUUID();
    const deadline = Date.now() + waitMs;
    const answered = new Promise<DeliverAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        o.metrics?.deliverForwards.inc({ outcome: 'timeout' });
        o.logger.warn('forwarded request not answered in time', { node, path: request.path, id, waitMs });
        reject(new QueryError('forward-timeout', `node ${node}, which serves this session, did not answer within ${waitMs} ms`, 504, { details: { node } }));
      }, waitMs);
      // Registered before the send: the answer may come back before send() resolves.
      this.pending.set(id, { node, resolve, reject, timer });
    });
    try {
      await this.producer.send({ topic: o.forwardTopic, acks: -1, messages: [{ key: node, value: encodeForwardedRequest({ id, from: o.nodeId, to: node, deadline, request }) }] });
    } catch (error) {
      const entry = this.pending.get(id);
      if (entry !== undefined) {
        this.pending.delete(id);
        clearTimeout(entry.timer);
        o.metrics?.deliverForwards.inc({ outcome: 'failed' });
        o.logger.warn('forwarding a request failed', { node, path: request.path, error });
        entry.reject(new QueryError('forward-failed', `the request could not be forwarded to node ${node}, which serves this session: ${(error as Error).message}`, 503, { details: { node }, headers: { 'retry-after': '1' } }));
      }
    }
    return answered;
  }

  /**
   * Rejects the forwards still waiting (503), stops reading, lets the requests being served
   * here finish and send their answers (for at most timeoutMs), then disconnects.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeStopped();
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new QueryError('node-stopping', `node ${this.options.nodeId} is stopping; ask again`, 503, { details: { node: entry.node }, headers: { 'retry-after': '1' } }));
    }
    await this.consumer?.disconnect().catch(() => undefined);
    if (this.serving.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.timeoutMs)));
      await Promise.race([Promise.allSettled([...this.serving]), grace]);
      clearTimeout(timer);
    }
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }

  /** A record of either topic; only those keyed for this node matter. Never throws: a bad record is logged and skipped. */
  private received(topic: string, key: Buffer | null, value: Buffer | null): void {
    const o = this.options;
    if (key?.toString('utf8') !== o.nodeId || this.stopped) return;
    if (topic === o.forwardTopic) {
      let forwarded: ForwardedRequest;
      try {
        forwarded = decodeForwardedRequest(value);
      } catch (error) {
        o.logger.warn('unreadable forwarded request skipped', { topic, error: (error as Error).message });
        return;
      }
      if (forwarded.to !== o.nodeId) {
        o.logger.warn('forwarded request keyed for this node but addressed to another skipped', { topic, to: forwarded.to, id: forwarded.id });
        return;
      }
      const lateMs = Date.now() - forwarded.deadline;
      if (lateMs > 0) {
        o.logger.info('forwarded request past its deadline not served', { from: forwarded.from, id: forwarded.id, lateMs });
        return;
      }
      const work = this.serveForwarded(forwarded).finally(() => this.serving.delete(work));
      this.serving.add(work);
      return;
    }
    let reply;
    try {
      reply = decodeForwardedReply(value);
    } catch (error) {
      o.logger.warn('unreadable forwarded answer skipped', { topic, error: (error as Error).message });
      return;
    }
    const entry = this.pending.get(reply.id);
    if (entry === undefined) {
      // Its forward timed out (or this node restarted since): the client already has its 504.
      o.logger.debug('late answer to a forwarded request dropped', { from: reply.from, id: reply.id });
      return;
    }
    this.pending.delete(reply.id);
    clearTimeout(entry.timer);
    o.metrics?.deliverForwards.inc({ outcome: 'answered' });
    entry.resolve({ ...reply.answer, headers: { ...reply.answer.headers, [SERVED_BY_HEADER]: reply.answer.headers[SERVED_BY_HEADER] ?? reply.from, [FORWARDED_BY_HEADER]: o.nodeId } });
  }

  /** Serves one forwarded request and publishes its answer (an error answer if serving threw). */
  private async serveForwarded(f: ForwardedRequest): Promise<void> {
    const o = this.options;
    let answer: DeliverAnswer;
    try {
      answer = await o.serve(f.request, f.from);
    } catch (error) {
      answer = errorAnswer(error);
      if (answer.status >= 500 && !(error instanceof QueryError)) o.logger.error('serving a forwarded request failed', { from: f.from, path: f.request.path, error });
    }
    answer = { ...answer, headers: { ...answer.headers, [SERVED_BY_HEADER]: o.nodeId, [FORWARDED_BY_HEADER]: f.from } };
    const value = encodeForwardedReply({ id: f.id, from: o.nodeId, to: f.from, answer });
    try {
      await this.publishReply(f.from, value);
    } catch (error) {
      if (!causes(error).some((e) => e.type === 'MESSAGE_TOO_LARGE' || e.type === 'RECORD_LIST_TOO_LARGE')) {
        // The origin answers 504 when its wait ends: nothing better to tell it without the broker.
        o.logger.warn('answer to a forwarded request could not be sent', { to: f.from, id: f.id, error });
        return;
      }
      o.logger.warn('answer to a forwarded request too large for the reply topic', { to: f.from, id: f.id, bytes: value.length });
      const tooLarge = errorAnswer(new QueryError('answer-too-large', `the answer (${value.length} bytes) is larger than the reply topic accepts; ask for fewer records`, 502));
      tooLarge.headers = { ...tooLarge.headers, [SERVED_BY_HEADER]: o.nodeId, [FORWARDED_BY_HEADER]: f.from };
      await this.publishReply(f.from, encodeForwardedReply({ id: f.id, from: o.nodeId, to: f.from, answer: tooLarge })).catch((again: unknown) => {
        o.logger.warn('answer to a forwarded request could not be sent', { to: f.from, id: f.id, error: again });
      });
      return;
    }
    o.metrics?.deliverForwardedServed.inc();
  }

  private async publishReply(to: string, value: string): Promise<void> {
    if (!this.producer) throw new Error('Forwarder used before start');
    const compression = Buffer.byteLength(value) > COMPRESS_ABOVE_BYTES ? CompressionTypes.GZIP : CompressionTypes.None;
    await this.producer.send({ topic: this.options.replyTopic, acks: -1, compression, messages: [{ key: to, value }] });
  }

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    const o = this.options;
    o.logger.error(`forwarding stopped: ${fatalMessage(error, `reading ${o.forwardTopic} and ${o.replyTopic} as group ${this.groupId}`)}`, { error });
    o.onFailure?.(error);
  }

  private whenStopped(): Promise<void> {
    return this.stopped ? Promise.resolve() : new Promise((resolve) => this.stopWaiters.push(resolve));
  }

  private wakeStopped(): void {
    for (const wake of this.stopWaiters.splice(0)) wake();
  }
}

/** The answer of an error thrown while serving: a QueryError as the HTTP layer renders it, anything else 500. */
export function errorAnswer(error: unknown): DeliverAnswer {
  if (error instanceof QueryError) {
    return { status: error.status, headers: { ...error.headers }, body: { error: { kind: error.kind, message: error.message, ...error.details } } };
  }
  return { status: 500, headers: {}, body: { error: { kind: 'internal', message: 'internal error; the serving node\'s log has the details' } } };
}
