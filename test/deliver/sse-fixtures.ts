// What the deliver server tests share: a stream source over in-memory partitions (no broker),
// views of its records, and a small SSE client over a raw HTTP/1.1 connection.
import { type Socket, connect } from 'node:net';
import type { RecordView } from '../../src/commands/record-view.js';
import type { RecordViews } from '../../src/deliver/delivery.js';
import type { DeliverSource } from '../../src/deliver/server.js';
import type { StreamReader } from '../../src/deliver/sse.js';
import { QueryError } from '../../src/errors.js';
import type { SourceRecord } from '../../src/model/records.js';
import { type Positions, type StreamName, encodeCursor } from '../../src/model/stream-cursor.js';

/** The value of every fake record: JSON, as the views show it. */
export interface FakeEvent {
  type: string;
  subject: string | null;
  n: number;
  pad?: string;
}

/**
 * A stream topic in memory: partitions of records (key = subject, `ordo-seq` per subject,
 * `ordo-global-seq` on the global stream), a log start that can move (retention), readers
 * that wait for appends like StreamSource's do.
 */
export class MemorySource implements DeliverSource {
  readonly logs: SourceRecord[][];
  readonly earliest: bigint[];
  private readonly seqs = new Map<string, number>();
  private globalSeq = 0;
  private n = 0;
  private readonly waiters = new Set<() => void>();
  /** Readers open now. */
  openReaders = 0;
  /** open() refuses beyond this many readers (503 too-many-readers), as StreamSource with its catch-up bound. */
  maxReaders = Infinity;

  constructor(
    readonly stream: StreamName,
    partitions: number,
  ) {
    this.logs = Array.from({ length: partitions }, () => []);
    this.earliest = Array.from({ length: partitions }, () => 0n);
  }

  /** Appends one record for `subject` (to the subject's partition; the global stream has one). */
  append(subject: string | null, type = 'api.call', pad?: string): SourceRecord {
    const partition = subject === null ? 0 : hash(subject) % this.logs.length;
    const log = this.logs[partition]!;
    const headers: Record<string, string> = {};
    if (subject !== null) {
      const seq = (this.seqs.get(subject) ?? 0) + 1;
      this.seqs.set(subject, seq);
      headers['ordo-seq'] = String(seq);
    }
    if (this.stream === 'global') headers['ordo-global-seq'] = String(++this.globalSeq);
    const event: FakeEvent = { type, subject, n: this.n++, ...(pad === undefined ? {} : { pad }) };
    const record: SourceRecord = {
      topic: `ordo-${this.stream}`,
      partition,
      offset: String(Number(this.earliest[partition]!) + log.length),
      key: subject === null ? null : Buffer.from(subject),
      value: Buffer.from(JSON.stringify(event)),
      headers,
      timestamp: Date.now(),
    };
    log.push(record);
    for (const wake of [...this.waiters]) wake();
    return record;
  }

  /** Drops the records below `offset` of a partition (retention). */
  expire(partition: number, offset: bigint): void {
    const log = this.logs[partition]!;
    log.splice(0, Number(offset - this.earliest[partition]!));
    this.earliest[partition] = offset;
  }

  partitions(): number {
    return this.logs.length;
  }

  bounds(): Promise<Map<number, { earliest: bigint; end: bigint }>> {
    return Promise.resolve(new Map(this.logs.map((log, p) => [p, { earliest: this.earliest[p]!, end: this.end(p) }])));
  }

  open(from: Positions): Promise<StreamReader> {
    for (const [p, next] of from) {
      if (next < this.earliest[p]!) {
        return Promise.reject(
          new QueryError('cursor-expired', `partition ${p}: offset ${next} is no longer stored`, 410, { details: { earliest: encodeCursor({ kind: 'vector', next: [...this.earliest] }) } }),
        );
      }
      if (next > this.end(p)) return Promise.reject(new QueryError('cursor-ahead', `partition ${p}: offset ${next} is beyond the end ${this.end(p)}`, 400));
    }
    if (this.openReaders >= this.maxReaders) return Promise.reject(new QueryError('too-many-readers', 'too many catch-up readers', 503, { headers: { 'retry-after': '1' } }));
    this.openReaders += 1;
    const positions = new Map(from);
    let closed = false;
    const available = (max: number): SourceRecord[] => {
      // Delivery order: the order of appends across partitions (each partition in offset order).
      const out: SourceRecord[] = [];
      const heads = [...positions].map(([p, next]) => ({ p, i: Number(next - this.earliest[p]!) }));
      while (out.length < max) {
        let best: { p: number; i: number } | undefined;
        for (const head of heads) {
          const record = this.logs[head.p]![head.i];
          if (record === undefined) continue;
          if (best === undefined || order(record) < order(this.logs[best.p]![best.i]!)) best = head;
        }
        if (best === undefined) break;
        out.push(this.logs[best.p]![best.i]!);
        best.i += 1;
      }
      for (const head of heads) positions.set(head.p, this.earliest[head.p]! + BigInt(head.i));
      return out;
    };
    return Promise.resolve({
      next: async (max, waitMs, signal) => {
        const deadline = Date.now() + waitMs;
        for (;;) {
          if (closed) throw new Error('reader closed');
          const records = available(max);
          if (records.length > 0 || signal?.aborted || Date.now() >= deadline) return records;
          await new Promise<void>((resolve) => {
            const wake = (): void => {
              clearTimeout(timer);
              this.waiters.delete(wake);
              signal?.removeEventListener('abort', wake);
              resolve();
            };
            const timer = setTimeout(wake, deadline - Date.now());
            this.waiters.add(wake);
            signal?.addEventListener('abort', wake);
          });
        }
      },
      close: () => {
        if (!closed) this.openReaders -= 1;
        closed = true;
        return Promise.resolve();
      },
    });
  }

  private end(p: number): bigint {
    return this.earliest[p]! + BigInt(this.logs[p]!.length);
  }
}

function order(record: SourceRecord): number {
  return (JSON.parse(record.value!.toString()) as FakeEvent).n;
}

function hash(text: string): number {
  let h = 7;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

/** Views as RecordDecoder makes them for events: the fake JSON value decoded. */
export const fakeViews: RecordViews = (records) =>
  Promise.resolve(
    records.map(
      (r): RecordView => ({
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: new Date(r.timestamp).toISOString(),
        key: r.key === null ? null : r.key.toString(),
        headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)])),
        kind: 'event',
        value: JSON.parse(r.value!.toString()) as FakeEvent,
      }),
    ),
  );

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** A delivered record's data as the client parses it. */
export interface Delivered {
  stream: string;
  cursor: string;
  partition: number;
  offset: string;
  key: string | null;
  headers: Record<string, string>;
  value: FakeEvent;
}

/**
 * One SSE request over a raw connection (so a test can stop reading, and see every byte):
 * the status and headers, then events and comments as they come.
 */
export class SseClient {
  status = 0;
  headers: Record<string, string> = {};
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  /** The body of a non-200 answer. */
  body = '';
  ended = false;
  raw = '';
  private buffer = '';
  private headDone = false;
  private readonly listeners = new Set<() => void>();
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.feed(chunk));
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.ended = true;
      this.notify();
      resolve();
    }));
    socket.on('error', () => undefined);
  }

  static open(port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const socket = connect(port, '127.0.0.1');
    const client = new SseClient(socket);
    const lines = [`GET ${path} HTTP/1.1`, 'host: 127.0.0.1', 'accept: text/event-stream', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''];
    socket.write(lines.join('\r\n'));
    return client.until(() => client.status !== 0 && (client.status === 200 || client.ended || client.complete()), 10_000).then(() => client);
  }

  /** The records received (event: record), parsed. */
  records(): Delivered[] {
    return this.events.filter((e) => e.event === 'record').map((e) => JSON.parse(e.data) as Delivered);
  }

  /** The JSON error of a non-200 answer. */
  error(): { kind: string; message: string } & Record<string, unknown> {
    return (JSON.parse(this.body) as { error: { kind: string; message: string } & Record<string, unknown> }).error;
  }

  /** Resolves once `predicate` holds (checked on every chunk), rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`SSE client: condition not met in ${timeoutMs} ms (status ${this.status}, ${this.events.length} events, ended ${this.ended})`));
      }, timeoutMs);
      this.listeners.add(check);
    });
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  private complete(): boolean {
    const length = Number(this.headers['content-length'] ?? NaN);
    return Buffer.byteLength(this.body) >= length;
  }

  private feed(chunk: string): void {
    this.raw += chunk;
    this.buffer += chunk;
    if (!this.headDone) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine, ...headerLines] = this.buffer.slice(0, end).split('\r\n');
      this.status = Number(statusLine!.split(' ')[1]);
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        this.headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      this.buffer = this.buffer.slice(end + 4);
      this.headDone = true;
    }
    if (this.status !== 200) {
      this.body += this.buffer;
      this.buffer = '';
    } else {
      this.parseEvents();
    }
    this.notify();
  }

  /** The body is chunked: the chunk framing is taken out before the event lines are read. */
  private chunked = '';
  private parseEvents(): void {
    this.chunked += this.buffer;
    this.buffer = '';
    let text = '';
    for (;;) {
      const lineEnd = this.chunked.indexOf('\r\n');
      if (lineEnd === -1) break;
      const size = parseInt(this.chunked.slice(0, lineEnd), 16);
      if (this.chunked.length < lineEnd + 2 + size + 2) break;
      text += this.chunked.slice(lineEnd + 2, lineEnd + 2 + size);
      this.chunked = this.chunked.slice(lineEnd + 2 + size + 2);
      if (size === 0) this.ended = true;
    }
    this.pending += text;
    let end: number;
    while ((end = this.pending.indexOf('\n\n')) !== -1) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const event: SseEvent = { id: undefined, event: 'message', data: '' };
      const data: string[] = [];
      let isEvent = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        isEvent = true;
        if (field === 'id') event.id = value;
        else if (field === 'event') event.event = value;
        else if (field === 'data') data.push(value);
      }
      if (isEvent) {
        event.data = data.join('\n');
        this.events.push(event);
      }
    }
  }
  private pending = '';

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
