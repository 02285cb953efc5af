import type { ServerResponse } from 'node:http';
import { formatJson } from '../commands/record-view.js';
import { QueryError } from '../errors.js';
import type { OrdoMetrics } from '../metrics/metrics.js';
import { type CursorTracker, type StreamName, encodeCursor } from '../model/stream-cursor.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import { type DeliveredRecord, type RecordViews, type StreamFilter, matchesFilter, viewsOfPassing } from './delivery.js';

/**
 * One Server-Sent Events stream of the deliver role (docs/delivery.md#push-with-resume): the
 * records of a StreamReader that pass the filter, each as `id: <cursor>`, `event: record`,
 * `data: <DeliveredRecord JSON>`. The id is the cursor after the record, so a client that
 * reconnects anywhere with `Last-Event-ID` continues with no gap and no repeat.
 *
 * Memory per stream is bounded: a client that reads keeps the socket drained and the reader
 * waits for it (backpressure, so a slow client catching up is served at its pace); a client
 * that takes nothing for a heartbeat interval no longer holds the reader back, and once more
 * than `bufferBytes` wait in its socket it gets an `overflow` event and is disconnected.
 */

/** Records asked of the reader per read: a batch costs at most this many views and one check of the buffer. */
const BATCH = 256;

/**
 * The records of one stream from its start positions (src/engine/stream-source.ts's
 * StreamReader, declared here by its shape so that the HTTP side does not depend on the engine).
 */
export interface StreamReader {
  /** The next records in delivery order, at most `max`; waits up to `waitMs` for the first; [] when none came or `signal` aborted. */
  next(max: number, waitMs: number, signal?: AbortSignal): Promise<SourceRecord[]>;
  close(): Promise<void>;
  /** Reading records older than the source keeps in memory (a Kafka reader of its own); absent: never. */
  readonly catchingUp?: boolean;
}

export interface SseStreamOptions {
  res: ServerResponse;
  stream: StreamName;
  reader: StreamReader;
  /** Follows the reader from its start positions; every record read goes through it, delivered or not. */
  tracker: CursorTracker;
  /** What the client asked, its subjects narrowed to the token's. */
  filter: StreamFilter;
  /** A subject-scoped token with prefixes: the subjects it may see (records without a key are not among them). */
  allows: ((subject: string) => boolean) | undefined;
  /** The cursor the stream starts after (what a client that got nothing resumes from). */
  startCursor: string;
  views: RecordViews;
  heartbeatMs: number;
  bufferBytes: number;
  logger: Logger;
  metrics?: OrdoMetrics;
}

/** Why a stream ended, for the log. */
export type SseEnd = 'client-closed' | 'server-closing' | 'overflow' | 'failed';

export class SseStream {
  private readonly abort = new AbortController();
  private ended: SseEnd | undefined;
  /** The id of the last record written (the cursor a client resumes from). */
  private lastId: string;
  private lastWriteMs = 0;
  /** The client took nothing for a heartbeat interval: reads no longer wait for it until it takes something. */
  private stalled = false;

  constructor(private readonly options: SseStreamOptions) {
    this.lastId = options.startCursor;
  }

  /** Sends the headers, then records until the client goes, overflows, the reader fails or close() is called. */
  async run(): Promise<SseEnd> {
    const { res, reader } = this.options;
    res.on('close', () => this.finish('client-closed'));
    // The client may have gone while the reader was being opened: its 'close' came already.
    if (res.socket === null || res.socket.destroyed) this.finish('client-closed');
    res.on('drain', () => (this.stalled = false));
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A proxy that buffers responses would hold the events back (nginx reads this).
      'x-accel-buffering': 'no',
      // A stream is its connection's last response: when it ends, the client reconnects afresh.
      connection: 'close',
    });
    this.write(`: stream ${this.options.stream} from ${this.lastId}\n\n`);
    try {
      while (this.ended === undefined) {
        await this.drained();
        if (this.ended !== undefined) break;
        let waitMs = this.lastWriteMs + this.options.heartbeatMs - Date.now();
        if (waitMs <= 0) {
          this.write(': heartbeat\n\n');
          waitMs = this.options.heartbeatMs;
        }
        const records = await reader.next(BATCH, waitMs, this.abort.signal);
        if (this.ended !== undefined) break;
        // Delay is measured at the tail only: a catching-up reader's records are old by design.
        if (records.length > 0) await this.deliver(records, reader.catchingUp !== true);
      }
    } catch (error) {
      if (this.ended === undefined) this.fail(error);
    } finally {
      this.abort.abort();
      await reader.close().catch((error: unknown) => this.options.logger.warn('closing an SSE stream reader failed', { error }));
    }
    return this.ended ?? 'failed';
  }

  /** Ends the stream with a comment telling the client to reconnect (to another replica): the server is closing. */
  close(): void {
    if (this.ended !== undefined) return;
    this.write(': server closing; reconnect with Last-Event-ID\n\n');
    this.finish('server-closing');
    this.end();
  }

  private async deliver(records: SourceRecord[], atTail: boolean): Promise<void> {
    const { stream, tracker, filter, allows, metrics } = this.options;
    const views = await viewsOfPassing(records, filter, allows, this.options.views);
    if (this.ended !== undefined) return;
    let delivered = 0;
    const res = this.options.res;
    // One socket write per batch rather than per record: corked while the batch is written,
    // uncorked whenever the client must drain first (corked bytes would never drain).
    res.cork();
    try {
      for (const [i, record] of records.entries()) {
        const view = views[i];
        tracker.pass(record);
        if (view === undefined || !matchesFilter(filter, view)) continue;
        // A batch can be larger than the buffer: a reading client takes it record by record.
        if (res.writableNeedDrain) {
          res.uncork();
          await this.drained();
          res.cork();
        }
        if (this.ended !== undefined) break;
        const cursor = encodeCursor(tracker.cursorAfter(record));
        const item: DeliveredRecord = { ...view, stream, cursor };
        this.write(`id: ${cursor}\nevent: record\ndata: ${formatJson(item)}\n\n`);
        this.lastId = cursor;
        delivered += 1;
        if (atTail) metrics?.deliverDelay.observe({ stream }, Math.max(0, Date.now() - record.timestamp) / 1000);
        if (res.writableLength > this.options.bufferBytes) {
          metrics?.deliverRecords.inc({ stream, via: 'sse' }, delivered);
          res.uncork();
          this.overflow();
          return;
        }
      }
    } finally {
      if (res.writableCorked > 0) res.uncork();
    }
    if (delivered > 0) metrics?.deliverRecords.inc({ stream, via: 'sse' }, delivered);
  }

  /**
   * Waits while the socket is above its high-water mark, for up to a heartbeat interval (or
   * until the stream ends). A client that took nothing in that time is stalled: the next reads
   * do not wait for it, and the buffer bound (overflow) decides its fate.
   */
  private drained(): Promise<void> {
    const { res, heartbeatMs } = this.options;
    if (this.stalled || !res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        res.off('drain', done);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.stalled = true;
        done();
      }, heartbeatMs);
      res.on('drain', done);
      this.abort.signal.addEventListener('abort', done);
    });
  }

  /** The client does not read: tell it where it stands (if it ever reads again), then disconnect it. */
  private overflow(): void {
    const { res, stream, bufferBytes, heartbeatMs, metrics, logger } = this.options;
    metrics?.deliverOverflows.inc({ stream });
    logger.warn('SSE client does not read: overflow, disconnected', { stream, queuedBytes: res.writableLength, bufferBytes });
    const message = `more than ${bufferBytes} bytes waited for this client (ORDO_DELIVER_BUFFER_BYTES); reconnect with Last-Event-ID to continue`;
    this.write(`event: overflow\ndata: ${JSON.stringify({ message, cursor: this.lastId })}\n\n`);
    this.finish('overflow');
    this.end();
    // What is queued is bounded already; a client that takes none of it within a heartbeat interval loses the connection.
    const timer = setTimeout(() => res.destroy(), heartbeatMs);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
  }

  /** After the headers an error is an event, then the end (the client reconnects from its last id). */
  private fail(error: unknown): void {
    const { stream, logger } = this.options;
    const known = error instanceof QueryError;
    if (!known) logger.error('SSE stream failed', { stream, error });
    const body = known ? { kind: error.kind, message: error.message, ...error.details } : { kind: 'internal', message: 'the stream failed; the server log has the details' };
    this.write(`event: error\ndata: ${JSON.stringify({ ...body, cursor: this.lastId })}\n\n`);
    this.finish('failed');
    this.end();
  }

  private write(text: string): void {
    const { res } = this.options;
    if (res.writableEnded || res.destroyed) return;
    res.write(text);
    this.lastWriteMs = Date.now();
  }

  private finish(reason: SseEnd): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.abort.abort();
  }

  private end(): void {
    const { res } = this.options;
    if (!res.writableEnded && !res.destroyed) res.end();
  }
}
