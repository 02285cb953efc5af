import { QueryError } from '../errors.js';
import { quoteClient as quote } from '../http/json.js';
import { encodeConsistencyToken } from '../model/consistency-token.js';
import type { SourceRecord } from '../model/records.js';
import type { Logger } from '../observability/logger.js';
import type { UsageEvent } from '../schema/usage-event.js';
import { type DeadLetterView, type LetterFilter, matchesFilter, replayHeaders, viewDeadLetter } from './dead-letter-view.js';
import type { DeadLetterSource, OffsetRange } from './dead-letter-source.js';
import type { LetterCodec } from './letter-codec.js';
import type { ReplayRecord, ReplaySet } from './replay-record.js';
import { BULK_EXAMPLES, MAX_BULK_REPLAY, type BulkReplayRequest, correctedEvent } from './replay-request.js';
import { REPLAYS_PER_TRANSACTION, type ReplayWrite, type ReplayWriter } from './replay-writer.js';

export type ReplayOutcome = 'replayed' | 'already-replayed' | 'not-found';

export interface ReplayServiceOptions {
  source: Pick<DeadLetterSource, 'read' | 'bounds' | 'offsetsAt' | 'scan'>;
  writer: Pick<ReplayWriter, 'run' | 'write'>;
  replays: ReplaySet;
  codec: Pick<LetterCodec, 'decode' | 'encode'>;
  /** The pipeline's input topic: only its letters are replayed there (the merge role dead-letters records of the ordered topic). */
  inputTopic: string;
  /** The replays topic has been read to its end once (before, no 409 could be trusted). */
  ready(): boolean;
  onOutcome?: (outcome: ReplayOutcome, count: number) => void;
  logger: Logger;
  now?: () => number;
}

/** A letter as the API shows it (docs/replay-openapi.yaml, DeadLetter). */
export interface LetterAnswer extends Omit<DeadLetterView, 'timestamp'> {
  deadLetteredAt: string;
  key: string | null;
  /** The event as it decodes (unvalidated), or null when it does not. */
  event: UsageEvent | null;
  replay: ReplayRecord | null;
}

/**
 * Dead-letter replay: finds letters on the DLQ, writes them back to the input (unchanged
 * or with a corrected value) with their replay record in one transaction, and refuses a
 * letter replayed before (409). Every refusal is a QueryError with a 4xx, or a 503 when
 * Kafka or the registry cannot answer now.
 */
export class ReplayService {
  private readonly now: () => number;

  constructor(private readonly o: ReplayServiceOptions) {
    this.now = o.now ?? Date.now;
  }

  private requireReady(): void {
    if (!this.o.ready()) {
      throw new QueryError('replays-not-ready', 'this replica has not read the replays topic to its end yet, so it cannot tell a letter already replayed; retry in a moment', 503, { headers: { 'retry-after': '2' } });
    }
  }

  private count(outcome: ReplayOutcome, n = 1): void {
    if (n > 0) this.o.onOutcome?.(outcome, n);
  }

  /** One letter, with the body of its request (`{"value": {...}}` or nothing). */
  async replayOne(letter: { partition: number; offset: string }, body: unknown, by: string): Promise<{ replay: ReplayRecord; letter: LetterAnswer; consistencyToken: string }> {
    this.requireReady();
    const record = await this.kafka('reading the dead letter', () => this.o.source.read(letter.partition, BigInt(letter.offset)));
    const view = record === undefined ? undefined : viewDeadLetter(record);
    if (record === undefined || view === undefined) {
      this.count('not-found');
      const bounds = (await this.kafka('reading the dead-letter offsets', () => this.o.source.bounds())).get(letter.partition);
      throw new QueryError('dead-letter-not-found', `no dead letter at ${letter.partition}/${letter.offset}: ${record === undefined ? nothingAt(BigInt(letter.offset), letter.partition, bounds) : 'the record there is not a dead letter (no ordo-dlq-reason header)'}`, 404);
    }
    this.refuseReplayed(view);
    if (!this.fromInput(view)) {
      throw new QueryError(
        'not-replayable',
        `the dead letter at ${letter.partition}/${letter.offset} came from ${view.source === null ? 'an unknown topic (no ordo-source-* headers)' : `topic ${quote(view.source.topic)}`}, not from the input topic ${quote(this.o.inputTopic)}: only the pipeline's own letters are replayed to the input`,
      );
    }
    const original = await this.o.codec.decode(record.value);
    const corrected = correctedEvent(body, original);
    if (corrected === undefined && record.value === null) {
      throw new QueryError('bad-body', `the dead letter at ${letter.partition}/${letter.offset} has no value: give a corrected value ({"value": {...}})`);
    }
    const write = await this.toWrite(record, view, corrected, by);
    const [replay] = await this.o.writer.run(async () => {
      // Asked again alone: a concurrent request of this replica may have replayed it meanwhile.
      this.refuseReplayed(view);
      return this.commit([write]);
    });
    this.count('replayed');
    return { replay: replay!, letter: await this.answer(record, view, replay!), consistencyToken: encodeConsistencyToken(replay!.input) };
  }

  /**
   * A Kafka call of a request: a QueryError passes (404, 503 too-many-readers...); any other
   * failure (a broker down, a transaction aborted) is 503 with Retry-After, logged, never a 500.
   * A failed replay wrote nothing: its transaction was aborted.
   */
  private async kafka<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof QueryError) throw error;
      this.o.logger.warn(`dead-letter replay: ${what} failed; answered 503`, { error });
      throw new QueryError('dead-letters-unavailable', `${what} failed: ${(error as Error).message}; nothing was replayed by this step; retry`, 503, { headers: { 'retry-after': '5' } });
    }
  }

  private fromInput(view: DeadLetterView): boolean {
    return view.source !== null && view.source.topic === this.o.inputTopic;
  }

  private refuseReplayed(view: DeadLetterView): void {
    const replay = this.o.replays.get(view.partition, view.offset);
    if (replay === undefined) return;
    this.count('already-replayed');
    throw new QueryError(
      'already-replayed',
      `the dead letter at ${view.partition}/${view.offset} was replayed at ${new Date(replay.replayedAt).toISOString()} by ${quote(replay.by)} to ${replay.input.topic} partition ${replay.input.partition} offset ${replay.input.offset}`,
      409,
      { details: { replay } },
    );
  }

  private async toWrite(record: SourceRecord, view: DeadLetterView, corrected: UsageEvent | undefined, by: string): Promise<ReplayWrite> {
    return {
      // A corrected event is keyed and placed by its subject, as the ingest role writes events.
      key: corrected === undefined ? record.key : Buffer.from(corrected.subject),
      value: corrected === undefined ? record.value : await this.o.codec.encode(corrected),
      headers: replayHeaders(record.headers, view),
      // Unchanged, it goes back to its own partition: the DLQ keeps the input's partition number.
      place: corrected === undefined ? { partition: view.source?.partition ?? view.partition } : { subject: corrected.subject },
      record: { partition: view.partition, offset: view.offset, reason: view.reason, replayedAt: this.now(), by, corrected: corrected !== undefined },
    };
  }

  /** Writes and remembers (this replica answers 409 at once; the others when they read the record). */
  private async commit(writes: ReplayWrite[]): Promise<ReplayRecord[]> {
    const records = await this.kafka('writing the replay', () => this.o.writer.write(writes));
    for (const r of records) this.o.replays.add(r);
    return records;
  }

  /** Per partition the offsets whose DLQ timestamps may lie in [from, to): from the broker's time index. */
  private async rangesOf(filter: LetterFilter): Promise<Map<number, OffsetRange>> {
    const [starts, ends] = await this.kafka('finding the offsets of the range', () => Promise.all([this.o.source.offsetsAt(filter.fromMs), this.o.source.offsetsAt(filter.toMs)]));
    const ranges = new Map<number, OffsetRange>();
    for (const [partition, from] of starts) ranges.set(partition, { from, to: ends.get(partition) ?? from });
    return ranges;
  }

  /**
   * By reason and time range: a dry run counts (and shows a few); otherwise every matching
   * letter not replayed yet is replayed unchanged, at most MAX_BULK_REPLAY per request
   * (`complete: false` then: the same request again goes on).
   */
  async replayBulk(request: BulkReplayRequest, by: string): Promise<Record<string, unknown>> {
    this.requireReady();
    const { filter, dryRun } = request;
    const pending: { record: SourceRecord; view: DeadLetterView }[] = [];
    const examples: { record: SourceRecord; view: DeadLetterView }[] = [];
    let matched = 0;
    let alreadyReplayed = 0;
    let noValue = 0;
    let notReplayable = 0;
    let complete = true;
    const ranges = await this.rangesOf(filter);
    await this.kafka('reading the dead letters', () => this.o.source.scan(ranges, (record) => {
      const view = viewDeadLetter(record);
      if (view === undefined || !matchesFilter(view, filter)) return true;
      matched += 1;
      if (examples.length < BULK_EXAMPLES) examples.push({ record, view });
      if (this.o.replays.get(view.partition, view.offset) !== undefined) alreadyReplayed += 1;
      else if (record.value === null) noValue += 1;
      else if (!this.fromInput(view)) notReplayable += 1;
      else if (!dryRun) {
        if (pending.length >= MAX_BULK_REPLAY) {
          complete = false;
          return false;
        }
        pending.push({ record, view });
      }
      return true;
    }));
    const range = { reason: filter.reason, from: new Date(filter.fromMs).toISOString(), to: new Date(filter.toMs).toISOString() };
    const shown = await Promise.all(examples.map((e) => this.answer(e.record, e.view, this.o.replays.get(e.view.partition, e.view.offset) ?? null)));
    if (dryRun) {
      // A dry run scans the whole range: `toReplay` is what a replay would write (at most MAX_BULK_REPLAY per request).
      return { dryRun: true, ...range, matched, alreadyReplayed, withoutValue: noValue, notReplayable, toReplay: matched - alreadyReplayed - noValue - notReplayable, limit: MAX_BULK_REPLAY, examples: shown };
    }
    this.count('already-replayed', alreadyReplayed);
    let replayed = 0;
    for (let i = 0; i < pending.length; i += REPLAYS_PER_TRANSACTION) {
      const chunk = pending.slice(i, i + REPLAYS_PER_TRANSACTION);
      const writes = await Promise.all(chunk.map((p) => this.toWrite(p.record, p.view, undefined, by)));
      // A failure here answers 503: the transactions before it stay committed (and counted), so the same request again goes on.
      const written = await this.o.writer.run(async () => {
        const fresh = writes.filter((w) => this.o.replays.get(w.record.partition, w.record.offset) === undefined);
        alreadyReplayed += writes.length - fresh.length;
        this.count('already-replayed', writes.length - fresh.length);
        return this.commit(fresh);
      });
      replayed += written.length;
      this.count('replayed', written.length);
    }
    this.o.logger.info('dead letters replayed', { ...range, by, replayed, alreadyReplayed, complete });
    return { dryRun: false, ...range, matched, replayed, alreadyReplayed, withoutValue: noValue, notReplayable, complete, limit: MAX_BULK_REPLAY, examples: shown };
  }

  /** The letters of a range (optionally of one reason), oldest first per partition, at most `limit`. */
  async list(filter: LetterFilter, limit: number): Promise<{ deadLetters: LetterAnswer[]; complete: boolean }> {
    const found: { record: SourceRecord; view: DeadLetterView }[] = [];
    let complete = true;
    const ranges = await this.rangesOf(filter);
    await this.kafka('reading the dead letters', () => this.o.source.scan(ranges, (record) => {
      const view = viewDeadLetter(record);
      if (view === undefined || !matchesFilter(view, filter)) return true;
      if (found.length >= limit) {
        complete = false;
        return false;
      }
      found.push({ record, view });
      return true;
    }));
    return { deadLetters: await Promise.all(found.map((f) => this.answer(f.record, f.view, this.o.replays.get(f.view.partition, f.view.offset) ?? null))), complete };
  }

  private async answer(record: SourceRecord, view: DeadLetterView, replay: ReplayRecord | null): Promise<LetterAnswer> {
    const { timestamp, ...rest } = view;
    return { ...rest, deadLetteredAt: new Date(timestamp).toISOString(), key: record.key === null ? null : record.key.toString('utf8'), event: (await this.o.codec.decode(record.value)) ?? null, replay };
  }
}

/** Why there is no record at an offset, for the 404's message. */
function nothingAt(offset: bigint, partition: number, bounds: OffsetRange | undefined): string {
  if (bounds === undefined) return `the dead-letter topic has no partition ${partition}`;
  if (bounds.from >= bounds.to) return `partition ${partition} is empty`;
  if (offset >= bounds.to) return `partition ${partition} ends at offset ${bounds.to - 1n}`;
  if (offset < bounds.from) return `partition ${partition} starts at offset ${bounds.from} (the earlier ones are deleted by retention)`;
  return `offset ${offset} is a transaction marker or an aborted record`;
}
