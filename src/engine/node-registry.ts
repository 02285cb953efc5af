import type { Kafka, Producer } from 'kafkajs';
import { Partitioners } from 'kafkajs';
import { TransientError } from '../errors.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { Liveness } from './liveness.js';
import { RepeatedFailures } from './retry.js';
import { TopicReader } from './topic-reader.js';

/** A node's last word in the nodes topic (key = node id): a heartbeat, or a clean leave. */
export interface NodeHeartbeat {
  node: string;
  /** When it was written, ms since the epoch (the writer's clock). */
  at: number;
  url?: string;
  /** Written by a clean stop: the node is gone now, its sessions may be taken over at once. */
  leaving?: boolean;
  /** What the role says about the node (opaque JSON here; the api role's partitions: src/api/router.ts). */
  info?: unknown;
}

export function encodeHeartbeat(h: NodeHeartbeat): string {
  return JSON.stringify({
    node: h.node,
    at: h.at,
    ...(h.url !== undefined ? { url: h.url } : {}),
    ...(h.leaving === true ? { leaving: true } : {}),
    ...(h.info !== undefined ? { info: h.info } : {}),
  });
}

/** The heartbeat in a record of the nodes topic; throws an Error saying what is wrong with it. */
export function decodeHeartbeat(key: string, value: Buffer | string): NodeHeartbeat {
  let o: unknown;
  try {
    o = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw new Error('the value is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('the value is not a JSON object');
  const { node, at, url, leaving, info } = o as Record<string, unknown>;
  if (node !== key) throw new Error(`node ${JSON.stringify(node)} is not the record's key ${JSON.stringify(key)}`);
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) throw new Error(`at ${JSON.stringify(at)} is not a time in ms`);
  if (url !== undefined && typeof url !== 'string') throw new Error('url is not a string');
  if (leaving !== undefined && typeof leaving !== 'boolean') throw new Error('leaving is not a boolean');
  return { node: key, at, ...(url !== undefined ? { url } : {}), ...(leaving === true ? { leaving } : {}), ...(info !== undefined ? { info } : {}) };
}

/**
 * Every node's last heartbeat, in log order (pure: the clock is passed in). A heartbeat
 * counts from the earlier of its own time and when it was read, so a writer whose clock is
 * ahead does not look live for longer than it is; a writer whose clock is behind looks
 * older by its skew, which the heartbeat interval's margin under the TTL absorbs.
 */
export class NodeTable {
  private readonly nodes = new Map<string, { seenAt: number; leaving: boolean; url: string | undefined; info: unknown }>();

  constructor(private readonly ttlMs: number) {}

  /** A record of the nodes topic, read at `now`; a tombstone (null) forgets the node. */
  observe(heartbeat: NodeHeartbeat | { node: string; removed: true }, now: number): void {
    if ('removed' in heartbeat) {
      this.nodes.delete(heartbeat.node);
      return;
    }
    this.nodes.set(heartbeat.node, { seenAt: Math.min(heartbeat.at, now), leaving: heartbeat.leaving === true, url: heartbeat.url, info: heartbeat.info });
  }

  /** The info of the node's last heartbeat (undefined: none, or never seen). */
  info(node: string): unknown {
    return this.nodes.get(node)?.info;
  }

  isLive(node: string, now: number): boolean {
    const n = this.nodes.get(node);
    return n !== undefined && !n.leaving && now - n.seenAt < this.ttlMs;
  }

  /** ms since the node's last heartbeat (or its leave), undefined if never seen. */
  goneFor(node: string, now: number): number | undefined {
    const n = this.nodes.get(node);
    return n === undefined ? undefined : Math.max(0, now - n.seenAt);
  }

  liveNodes(now: number): string[] {
    return [...this.nodes.keys()].filter((node) => this.isLive(node, now)).sort();
  }
}

export interface NodeRegistryOptions {
  kafka: Kafka;
  /** The compacted nodes topic (created by the role). */
  topic: string;
  nodeId: string;
  /** How often this node writes its heartbeat. */
  heartbeatMs: number;
  /** A node without a heartbeat for this long is gone. */
  ttlMs: number;
  /** Prefix of the reader's consumer group (a group of its own per start; see TopicReader). */
  groupId: string;
  logger: Logger;
  /** This node's address, written in its heartbeats (informational). */
  url?: string;
  /** The info of the first heartbeat: a JSON value, or a function giving the current one at each heartbeat (see setInfo). */
  info?: unknown;
  /** The number of live nodes (this one included), after every heartbeat: the role sets metrics.deliverLiveNodes. */
  onLiveNodes?(n: number): void;
  /** Bounds the retries of transient failures (and reports them to /healthz); default: 2 minutes. */
  liveness?: Liveness;
  /** After start: the registry cannot go on (its reader stopped for good, or heartbeats failed past the bound). */
  onFailure?: (error: unknown) => void;
  /** Injectable for tests. */
  now?: () => number;
}

/** How long start() waits to read the nodes topic to its end. */
const CATCH_UP_MS = 30_000;
/** How long stop() tries to write the leaving record. */
const LEAVE_MS = 5_000;

/**
 * The live deliver replicas: each writes a heartbeat {node, at} to the compacted nodes topic
 * (key = node id) every heartbeatMs and reads the whole topic, from the beginning at start,
 * so it knows every node's last heartbeat (also of nodes that died before it started). A
 * node is live while its last heartbeat is younger than ttlMs; a clean stop writes a leaving
 * record, so the others take its sessions over at once instead of after the TTL.
 */
export class NodeRegistry {
  private readonly table: NodeTable;
  private readonly reader: TopicReader;
  private readonly liveness: Liveness;
  private readonly heartbeatFailures: RepeatedFailures;
  private producer: Producer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private failed = false;
  private beating = false;
  private ownInfo: unknown;
  /** setInfo during a write: one more write follows it. */
  private again = false;

  constructor(private readonly options: NodeRegistryOptions) {
    this.ownInfo = options.info;
    this.table = new NodeTable(options.ttlMs);
    this.liveness = options.liveness ?? new Liveness(120_000);
    this.heartbeatFailures = new RepeatedFailures({ what: 'node heartbeat', meta: { topic: options.topic }, log: options.logger, liveness: this.liveness });
    this.reader = new TopicReader({
      kafka: options.kafka,
      topic: options.topic,
      groupId: options.groupId,
      logger: options.logger,
      liveness: this.liveness,
      apply: (records) => this.apply(records),
      onFailure: (error) => this.fail(error),
    });
  }

  /** Reads the nodes topic to its end (so every node's last heartbeat is known), then writes this node's first heartbeat. */
  async start(): Promise<void> {
    const o = this.options;
    try {
      await this.reader.start();
      if (this.stopped) return;
      await within(this.reader.caughtUp(), CATCH_UP_MS, `could not read ${o.topic} to its end`);
      if (this.stopped) return;
      // Not idempotent: kafkajs then retries a send for ever; a heartbeat is retried by the next tick instead.
      this.producer = o.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
      await this.producer.connect();
      await this.write(this.heartbeat());
    } catch (error) {
      await this.stop({ leave: false });
      throw error;
    }
    this.started = true;
    o.logger.info('node registered', { node: o.nodeId, topic: o.topic, liveNodes: this.liveNodes() });
    this.report();
    this.timer = setInterval(() => void this.beat(), o.heartbeatMs);
    this.timer.unref();
  }

  /**
   * Stops heartbeating; `leave` (default) writes a leaving record first, so the other nodes
   * take over at once. `leave: false` goes silent as a killed node would (they wait ttlMs).
   */
  async stop(options: { leave?: boolean } = {}): Promise<void> {
    const o = this.options;
    const wasStarted = this.started && !this.stopped;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.heartbeatFailures.close();
    if (wasStarted && options.leave !== false && !this.failed) {
      // Bounded: a broker that is away must not hold up the shutdown (the others then wait the TTL).
      await within(this.write({ node: o.nodeId, at: this.now(), leaving: true }), LEAVE_MS, 'leaving record not written').catch((error: unknown) => {
        o.logger.warn('leaving record not written: the other nodes take over after the node TTL', { node: o.nodeId, error });
      });
    }
    await this.producer?.disconnect().catch(() => undefined);
    await this.reader.stop();
  }

  /** Heartbeat seen within ttlMs (this node: while started and not stopped). */
  isLive(node: string): boolean {
    if (node === this.options.nodeId) return this.started && !this.stopped;
    return this.table.isLive(node, this.now());
  }

  /** ms since the node's last heartbeat (or its leave); undefined: not seen since this registry started. */
  goneFor(node: string): number | undefined {
    if (node === this.options.nodeId && this.started && !this.stopped) return 0;
    return this.table.goneFor(node, this.now());
  }

  /** The live nodes, this one included while started, sorted. */
  liveNodes(): string[] {
    const live = new Set(this.table.liveNodes(this.now()));
    if (this.started && !this.stopped) live.add(this.options.nodeId);
    else live.delete(this.options.nodeId);
    return [...live].sort();
  }

  /** The info of the other live nodes' last heartbeats, by node id (this node's own is the caller's). */
  liveInfo(): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const node of this.table.liveNodes(this.now())) if (node !== this.options.nodeId) out.set(node, this.table.info(node));
    return out;
  }

  /**
   * The info of this node's next heartbeats (a function: asked at each one); written at once
   * (a changed assignment must not wait for the next tick). A write already under way is
   * followed by one more at once.
   */
  setInfo(info: unknown): void {
    this.ownInfo = info;
    if (!this.started || this.stopped) return;
    if (this.beating) this.again = true;
    else void this.beat();
  }

  private heartbeat(): NodeHeartbeat {
    const o = this.options;
    const info = this.infoNow();
    return { node: o.nodeId, at: this.now(), ...(o.url !== undefined ? { url: o.url } : {}), ...(info !== undefined ? { info } : {}) };
  }

  private infoNow(): unknown {
    return typeof this.ownInfo === 'function' ? (this.ownInfo as () => unknown)() : this.ownInfo;
  }

  private async beat(): Promise<void> {
    // A heartbeat still being sent (the broker is slow or away) is not joined by another.
    if (this.beating) return;
    this.beating = true;
    try {
      await this.write(this.heartbeat());
      this.heartbeatFailures.succeeded();
    } catch (error) {
      if (this.stopped) return;
      // The next tick is the retry; past the bound (or a fatal error) the role fails: the
      // others think this node gone and take its sessions over anyway.
      const next = this.heartbeatFailures.failed(error);
      if (!next.ok) this.fail(next.error);
    } finally {
      this.beating = false;
    }
    this.report();
    if (this.again && !this.stopped) {
      this.again = false;
      void this.beat();
    }
  }

  private async write(heartbeat: NodeHeartbeat): Promise<void> {
    if (!this.producer) throw new Error('NodeRegistry used before start');
    await this.producer.send({ topic: this.options.topic, acks: -1, messages: [{ key: heartbeat.node, value: encodeHeartbeat(heartbeat) }] });
  }

  private apply(records: readonly SourceRecord[]): void {
    const now = this.now();
    for (const record of records) {
      const key = record.key?.toString('utf8');
      if (key === undefined || key === '') {
        this.options.logger.warn('nodes topic record without a key skipped', { topic: record.topic, offset: record.offset });
        continue;
      }
      if (record.value === null) {
        this.table.observe({ node: key, removed: true }, now);
        continue;
      }
      try {
        this.table.observe(decodeHeartbeat(key, record.value), now);
      } catch (error) {
        this.options.logger.warn('unreadable nodes topic record skipped', { topic: record.topic, offset: record.offset, node: key, error: (error as Error).message });
      }
    }
  }

  private report(): void {
    this.options.onLiveNodes?.(this.liveNodes().length);
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    if (this.stopped) return;
    this.options.logger.error('node registry stopped', { node: this.options.nodeId, error });
    this.options.onFailure?.(error);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

/** `promise`, or a TransientError after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TransientError(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
