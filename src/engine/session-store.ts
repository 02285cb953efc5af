import { randomBytes } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { type SessionState, decodeSessionState, encodeSessionState, reduceSession } from '../deliver/session-state.js';
import { TransientError } from '../errors.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import type { Liveness } from './liveness.js';
import { TopicReader } from './topic-reader.js';

export interface SessionStoreOptions {
  kafka: Kafka;
  /** The compacted sessions topic (config.topics.sessions). */
  topic: string;
  /** Prefix of the follower's consumer group (a group of its own per start, see TopicReader). */
  groupId: string;
  logger: Logger;
  liveness?: Liveness;
  /** The follower cannot go on: the role fails. */
  onFailure?: (error: unknown) => void;
  /** A record of a session did not take effect; `current` is the session's state (see Sessions.heal). */
  onIgnored?: (current: SessionState) => void;
  /** A write not applied by the follower within this rejects (TransientError); default 30 s. */
  writeTimeoutMs?: number;
}

/** Header naming one write, so the writer knows its record when the follower applies it. */
const WRITE_HEADER = 'ordo-session-write';

interface Pending {
  resolve(accepted: boolean): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

/**
 * Every replica's copy of the receiver sessions: it follows the whole compacted sessions
 * topic from the beginning and keeps, per session id, the state reduced in log order
 * (src/deliver/session-state.ts). A write is a plain append; it resolves once this
 * replica's follower has applied that very record, telling whether it took effect, so the
 * log order (the broker's) decides every race and each writer learns the outcome.
 */
export class SessionStore {
  private readonly sessions = new Map<string, SessionState>();
  private readonly pending = new Map<string, Pending>();
  private readonly reader: TopicReader;
  private producer: Producer | undefined;
  private failure: Error | undefined;

  constructor(private readonly options: SessionStoreOptions) {
    this.reader = new TopicReader({
      kafka: options.kafka,
      topic: options.topic,
      groupId: options.groupId,
      logger: options.logger,
      liveness: options.liveness,
      apply: (records) => this.apply(records),
      onFailure: (error) => {
        this.failure = error instanceof Error ? error : new Error(String(error));
        for (const p of this.takeAll()) p.reject(error);
        options.onFailure?.(error);
      },
    });
  }

  /** Resolves once the topic has been read to its end (every session known at start is here). */
  async start(): Promise<void> {
    const producer = (this.producer = this.options.kafka.producer({ allowAutoTopicCreation: false }));
    await producer.connect();
    await this.reader.start();
    await this.reader.caughtUp();
  }

  async stop(): Promise<void> {
    await this.reader.stop();
    await this.producer?.disconnect().catch(() => undefined);
    for (const p of this.takeAll()) p.reject(new TransientError('the session store stopped'));
  }

  get(id: string): SessionState | undefined {
    return this.sessions.get(id);
  }

  states(): IterableIterator<SessionState> {
    return this.sessions.values();
  }

  /** Appends `state`; resolves once applied here: true if it took effect, false if the log had moved on (a higher seq). */
  write(state: SessionState): Promise<boolean> {
    return this.append(state.id, encodeSessionState(state));
  }

  /** Appends a tombstone for `id` (compaction drops the session); resolves once applied here. */
  async remove(id: string): Promise<void> {
    await this.append(id, null);
  }

  private async append(id: string, value: string | null): Promise<boolean> {
    if (this.failure !== undefined) throw this.failure;
    if (this.producer === undefined) throw new Error('SessionStore.start() first');
    const token = randomBytes(12).toString('hex');
    const applied = new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(token);
        reject(new TransientError(`session ${id}: the write was not read back from ${this.options.topic} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(token, { resolve, reject, timer });
    });
    try {
      await this.producer.send({ topic: this.options.topic, acks: -1, messages: [{ key: id, value, headers: { [WRITE_HEADER]: token } }] });
    } catch (error) {
      const p = this.pending.get(token);
      this.pending.delete(token);
      if (p !== undefined) clearTimeout(p.timer);
      // The promise above is dropped: keep its rejection from becoming an unhandled one.
      applied.catch(() => undefined);
      throw error;
    }
    return applied;
  }

  private get timeoutMs(): number {
    return this.options.writeTimeoutMs ?? 30_000;
  }

  private apply(records: SourceRecord[]): void {
    for (const record of records) {
      const id = record.key?.toString('utf8');
      if (id === undefined || id === '') continue;
      let value: SessionState | null = null;
      if (record.value !== null) {
        try {
          value = decodeSessionState(record.value.toString('utf8'));
          if (value.id !== id) throw new Error(`session record keyed ${id} names session ${value.id}`);
        } catch (error) {
          this.options.logger.warn('ignored a record of the sessions topic that is not a session', { topic: record.topic, offset: record.offset, error });
          continue;
        }
      }
      const current = this.sessions.get(id);
      const { state, accepted } = reduceSession(current, value);
      if (state === undefined) this.sessions.delete(id);
      else this.sessions.set(id, state);
      if (!accepted && state !== undefined) this.options.onIgnored?.(state);
      const raw = record.headers[WRITE_HEADER];
      const token = (Array.isArray(raw) ? raw[0] : raw)?.toString();
      const p = token === undefined ? undefined : this.pending.get(token);
      if (p !== undefined) {
        this.pending.delete(token!);
        clearTimeout(p.timer);
        p.resolve(accepted);
      }
    }
  }

  private takeAll(): Pending[] {
    const all = [...this.pending.values()];
    for (const p of all) clearTimeout(p.timer);
    this.pending.clear();
    return all;
  }
}
