import { type LatePolicy, OUT_OF_ORDER, type ViolationReason } from '../model/reasons.js';
import { type Stamp, formatServiceTime, millisOf, parseServiceTime } from '../clock/service-time.js';
import type { KeyValueStore, StoreCodec } from '../model/store.js';
import { MinHeap } from './min-heap.js';
import { readProducerSeq } from './decode.js';
import { HEADER, type HeaderValue, type OutputRecord, type ProducerSeq, type SourceRecord, setHeader } from '../model/records.js';

/**
 * Where the held events are, not what they are: one entry (HELD_KEY) listing the input
 * offset and arrival stamp of every event held, rewritten when that set changes. A restored
 * task reads those offsets from the input again (PipelineProcessor.onRestored).
 */
export const REORDER_STORE = 'reorder';
export const HELD_KEY = 'held';
/** Per subject: last emitted order key and `ordo-seq`; per (subject, producer): last producer sequence. */
export const SEQUENCE_STORE = 'sequences';
/** The partition's order watermark (ms), kept in the task's meta store. */
export const META_ORDER_WATERMARK = 'order-watermark';

/** (time, node): the order of events per subject. */
export interface OrderKey {
  time: bigint;
  node: string;
}

/** One event on its way to the ordered topic: already encoded, without `ordo-seq`. */
export interface OrderItem {
  subject: string;
  orderKey: OrderKey;
  /** Ordo's stamp on arrival: kept with the held positions so a restore rebuilds the same item. */
  stamp: Stamp;
  record: OutputRecord;
  source: SourceRecord;
  producer: ProducerSeq | undefined;
}

/** A buffered event as kept in the reorder store (and its changelog). */
export interface BufferedEvent {
  subject: string;
  time: bigint;
  node: string;
  /** The input offset: unique per partition, and the tie-breaker of equal keys (arrival order). */
  offset: bigint;
  record: OutputRecord;
  producer: ProducerSeq | undefined;
}

/** A held event of the reorder buffer: a BufferedEvent with its arrival stamp. */
export interface HeldEvent extends BufferedEvent {
  stamp: Stamp;
}

/** What the reorder store keeps per held event. */
export interface HeldPosition {
  offset: bigint;
  stamp: Stamp;
}

export interface OrderSettings {
  /** How long an event is held, by its order key against the watermark. */
  reorderWindowMs: number;
  /** At most this many events buffered per partition; beyond it the oldest are emitted early. */
  maxBuffered: number;
  latePolicy: LatePolicy;
  /**
   * Ordo's stamp for an event as it leaves (the worker's hybrid clock). Stamping at
   * emission keeps `service-time` increasing per key on output, in the reordered order,
   * and above the origin time the clock already received at arrival.
   */
  stamp?: () => bigint;
}

export interface OrderResult {
  /** Records for the ordered topic, in emission order, with `ordo-seq` (and `ordo-late`) set. */
  emitted: OutputRecord[];
  /** Origin (order-key) milliseconds of the emitted events, for end-to-end latency. */
  emittedOriginMs: number[];
  /** Late events routed away (policy `route`). */
  late: { source: SourceRecord; reason: typeof OUT_OF_ORDER; detail: string; seenAt: number }[];
  violations: ViolationReason[];
  /** Events emitted before their window ran out because the buffer was full. */
  forced: number;
}

/** Total order of buffered events: order key, then node, then arrival. */
export function compareBuffered(a: BufferedEvent, b: BufferedEvent): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

function compareKeys(a: OrderKey, b: OrderKey): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/** Per subject: the sequence number last given and the order key last emitted. */
interface SubjectState {
  seq: bigint;
  last: OrderKey | undefined;
}

/**
 * The order processor: per subject, events leave in order-key order with a gapless
 * `ordo-seq` (1, 2, 3…). Each event is held until the partition's watermark (the highest
 * order key seen, or the wall clock once the partition is idle) has passed its key by
 * `reorderWindowMs`; events that arrive in the meantime take their place in order.
 *
 * An event whose key is below the last one emitted for its subject missed its slot: it is
 * a `late` violation and, by policy, emitted at once with `ordo-late: true` (and the next
 * sequence number) or routed to the late topic. Never dropped. Also counted: a key equal
 * to one already buffered or emitted for the subject (`duplicate-key`), and gaps or
 * regressions of an upstream `producer-seq` in emission order.
 *
 * The buffer is a store: what is still held when a batch commits is in the changelog, so
 * a restarted task emits it exactly once. Events that arrive and leave in the same batch
 * never touch the store. At `maxBuffered` the oldest are emitted early (counted), so a
 * partition is never blocked.
 *
 * The in-memory heap mirrors the committed store plus this batch; a failed batch ends the
 * task (the engine starts a fresh one, which rebuilds the heap from the store).
 */
export class OrderStep {
  private readonly heap = new MinHeap<HeldEvent>(compareBuffered);
  /** `subject\0time\0node` -> buffered events with that key, for duplicate detection. */
  private readonly bufferedKeys = new Map<string, number>();
  private watermark = Number.NEGATIVE_INFINITY;

  constructor(private readonly settings: OrderSettings) {}

  get buffered(): number {
    return this.heap.size;
  }

  /**
   * Order keys below this millisecond have left (or arrived too late): the partition's
   * progress, published to the `merge` role. -Infinity before anything was seen.
   */
  get frontier(): number {
    return this.watermark - this.settings.reorderWindowMs;
  }

  /** Rebuilds the heap from the held events (rebuilt from their restored positions) and the watermark from meta. */
  restore(held: readonly HeldEvent[], meta: KeyValueStore<string>): void {
    this.heap.clear();
    this.bufferedKeys.clear();
    for (const event of held) this.push(event);
    const mark = meta.get(META_ORDER_WATERMARK);
    this.watermark = mark === undefined ? Number.NEGATIVE_INFINITY : Number(mark);
    for (const event of this.heap.values()) this.watermark = Math.max(this.watermark, millisOf(event.time));
  }

  /**
   * Takes a batch's events in arrival order; `idleNow`, when given, is the wall clock of an
   * idle partition (no batch for a while) and advances the watermark to it.
   */
  run(items: readonly OrderItem[], stores: { buffer: KeyValueStore<HeldPosition[]>; sequences: KeyValueStore<string>; meta: KeyValueStore<string> }, idleNow?: number): OrderResult {
    const result: OrderResult = { emitted: [], emittedOriginMs: [], late: [], violations: [], forced: 0 };
    const subjects = new Map<string, SubjectState>();
    const stateOf = (subject: string): SubjectState => {
      let state = subjects.get(subject);
      if (state === undefined) {
        state = decodeSubject(stores.sequences.get(subjectKey(subject)));
        subjects.set(subject, state);
      }
      return state;
    };
    let changed = false;
    const before = this.watermark;

    for (const item of items) {
      const state = stateOf(item.subject);
      const key = item.orderKey;
      this.watermark = Math.max(this.watermark, millisOf(key.time));
      const lastCmp = state.last === undefined ? 1 : compareKeys(key, state.last);
      if (lastCmp < 0) {
        result.violations.push('late');
        const last = state.last!;
        const detail = `order key ${formatServiceTime(key.time)}/${key.node} is below ${formatServiceTime(last.time)}/${last.node}, already emitted for this subject`;
        if (this.settings.latePolicy === 'route') {
          result.late.push({ source: item.source, reason: OUT_OF_ORDER, detail, seenAt: millisOf(item.stamp.time) });
        } else {
          item.record.headers[HEADER.late] = 'true';
          this.emit(item.record, state, millisOf(key.time), result);
        }
        continue;
      }
      if (lastCmp === 0 || this.bufferedKeys.has(keyOf(item.subject, key))) result.violations.push('duplicate-key');
      this.push({ subject: item.subject, time: key.time, node: key.node, offset: BigInt(item.source.offset), record: item.record, producer: item.producer, stamp: item.stamp });
      changed = true;
    }

    if (idleNow !== undefined) this.watermark = Math.max(this.watermark, idleNow);
    const due = this.watermark - this.settings.reorderWindowMs;
    const release = (event: HeldEvent): void => {
      changed = true;
      const state = stateOf(event.subject);
      this.checkProducer(event, stores.sequences, result);
      state.last = { time: event.time, node: event.node };
      this.emit(event.record, state, millisOf(event.time), result);
    };
    while (this.heap.size > 0 && millisOf(this.heap.peek()!.time) <= due) release(this.pop());
    while (this.heap.size > this.settings.maxBuffered) {
      release(this.pop());
      result.forced += 1;
    }

    this.promise(result);
    // Events that arrived and left in this batch never touch the store; otherwise one write.
    if (changed && !(this.heap.size === 0 && stores.buffer.get(HELD_KEY) === undefined)) {
      if (this.heap.size === 0) stores.buffer.delete(HELD_KEY);
      else stores.buffer.put(HELD_KEY, [...this.heap.values()].map((e) => ({ offset: e.offset, stamp: e.stamp })));
    }
    for (const [subject, state] of subjects) {
      if (state.seq > 0n) stores.sequences.put(subjectKey(subject), encodeSubject(state));
    }
    if (this.watermark !== before && Number.isFinite(this.watermark)) stores.meta.put(META_ORDER_WATERMARK, String(this.watermark));
    return result;
  }

  /**
   * Takes up to `limit` held events whose subject `drop` selects out of the buffer (a subject
   * deletion's sweep), and rewrites the held positions: they leave with this batch's
   * transaction, where the caller sends them (never dropped silently).
   */
  evict(drop: (subject: string) => boolean, limit: number, buffer: KeyValueStore<HeldPosition[]>): HeldEvent[] {
    const out: HeldEvent[] = [];
    const kept: HeldEvent[] = [];
    for (const event of this.heap.values()) (out.length < limit && drop(event.subject) ? out : kept).push(event);
    if (out.length === 0) return out;
    this.heap.clear();
    this.bufferedKeys.clear();
    for (const event of kept) this.push(event);
    if (this.heap.size === 0) buffer.delete(HELD_KEY);
    else buffer.put(HELD_KEY, [...this.heap.values()].map((e) => ({ offset: e.offset, stamp: e.stamp })));
    return out.sort(compareBuffered);
  }

  /**
   * `ordo-watermark` on each emitted record: what the partition promises about the records
   * after it. That is the least order key (ms) still to come in this batch, else the
   * frontier (everything held is above it). So the promise holds however a reader's fetches
   * split the batch; only an event that reaches Ordo later than the window can break it.
   */
  private promise(result: OrderResult): void {
    if (!Number.isFinite(this.watermark)) return;
    let least = this.frontier;
    for (let i = result.emitted.length - 1; i >= 0; i--) {
      result.emitted[i]!.headers[HEADER.watermark] = String(least);
      least = Math.min(least, result.emittedOriginMs[i]!);
    }
  }

  private emit(record: OutputRecord, state: SubjectState, originMs: number, result: OrderResult): void {
    state.seq += 1n;
    record.headers[HEADER.seq] = state.seq.toString();
    if (this.settings.stamp) record.headers[HEADER.serviceTime] = formatServiceTime(this.settings.stamp());
    result.emitted.push(record);
    result.emittedOriginMs.push(originMs);
  }

  /** Producer sequences are checked in emission (order-key) order: a gap is a missing event. */
  private checkProducer(event: BufferedEvent, sequences: KeyValueStore<string>, result: OrderResult): void {
    const producer = event.producer;
    if (producer === undefined) return;
    const key = producerKey(event.subject, producer.id);
    const last = sequences.get(key);
    if (last !== undefined) {
      const previous = BigInt(last);
      if (producer.seq <= previous) {
        result.violations.push('sequence-regression');
        return;
      }
      if (producer.seq > previous + 1n) result.violations.push('sequence-gap');
    }
    sequences.put(key, producer.seq.toString());
  }

  private push(event: HeldEvent): void {
    this.heap.push(event);
    const k = keyOf(event.subject, event);
    this.bufferedKeys.set(k, (this.bufferedKeys.get(k) ?? 0) + 1);
  }

  private pop(): HeldEvent {
    const top = this.heap.pop()!;
    const k = keyOf(top.subject, top);
    const n = (this.bufferedKeys.get(k) ?? 1) - 1;
    if (n > 0) this.bufferedKeys.set(k, n);
    else this.bufferedKeys.delete(k);
    return top;
  }
}

/**
 * Restore: applies one record of the ordered topic (read in offset order) to the sequences
 * store, as OrderStep did when it emitted it. Idempotent: a record at or below the
 * subject's sequence is already in the store (a replay overlaps the last snapshot).
 */
export function replayOrdered(record: SourceRecord, sequences: KeyValueStore<string>): void {
  const subject = record.key?.toString('utf8');
  const seqText = headerText(record.headers[HEADER.seq]);
  if (subject === undefined || seqText === undefined) return;
  const seq = BigInt(seqText);
  const state = decodeSubject(sequences.get(subjectKey(subject)));
  if (seq <= state.seq) return;
  state.seq = seq;
  if (headerText(record.headers[HEADER.late]) !== 'true') {
    // Emitted in its slot: it moved the subject's last key and was checked against its producer.
    const time = parseServiceTime(headerText(record.headers[HEADER.originServiceTime]) ?? '');
    const node = headerText(record.headers[HEADER.originServiceNode]);
    state.last = { time, node: node ?? '' };
    const context = headerText(record.headers[HEADER.origin]) === 'context' ? { time, node } : undefined;
    const producer = readProducerSeq(record.headers, context);
    if (producer !== undefined) {
      const key = producerKey(subject, producer.id);
      const last = sequences.get(key);
      if (last === undefined || producer.seq > BigInt(last)) sequences.put(key, producer.seq.toString());
    }
  }
  sequences.put(subjectKey(subject), encodeSubject(state));
}

function headerText(value: HeaderValue): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.toString();
}

function keyOf(subject: string, key: OrderKey): string {
  return `${subject}\0${key.time}\0${key.node}`;
}

function subjectKey(subject: string): string {
  return `s|${subject}`;
}

function producerKey(subject: string, producer: string): string {
  return `p|${subject.length}:${subject}|${producer}`;
}

/** `seq|time-hex|node`, or `seq` alone before anything was emitted in order. */
function encodeSubject(state: SubjectState): string {
  return state.last === undefined ? state.seq.toString() : `${state.seq}|${formatServiceTime(state.last.time)}|${state.last.node}`;
}

function decodeSubject(text: string | undefined): SubjectState {
  if (text === undefined) return { seq: 0n, last: undefined };
  const first = text.indexOf('|');
  if (first < 0) return { seq: BigInt(text), last: undefined };
  const second = text.indexOf('|', first + 1);
  return { seq: BigInt(text.slice(0, first)), last: { time: parseServiceTime(text.slice(first + 1, second)), node: text.slice(second + 1) } };
}

/** JSON with the record's bytes in base64; header values keep whether they were text or bytes. */
export const bufferedCodec: StoreCodec<BufferedEvent> = {
  encode(e) {
    const headers: Record<string, [0 | 1, string]> = {};
    for (const [name, value] of Object.entries(e.record.headers)) {
      setHeader(headers, name, typeof value === 'string' ? [0, value] : [1, value.toString('base64')]);
    }
    const key = e.record.key;
    const value = e.record.value;
    return Buffer.from(
      JSON.stringify({
        s: e.subject,
        t: formatServiceTime(e.time),
        n: e.node,
        o: e.offset.toString(),
        p: e.producer === undefined ? null : [e.producer.id, e.producer.seq.toString()],
        r: {
          topic: e.record.topic,
          key: key === null ? null : typeof key === 'string' ? [0, key] : [1, key.toString('base64')],
          value: value === null ? null : typeof value === 'string' ? [0, value] : [1, value.toString('base64')],
          headers,
        },
      }),
      'utf8',
    );
  },
  decode(bytes) {
    const j = JSON.parse(bytes.toString('utf8')) as {
      s: string;
      t: string;
      n: string;
      o: string;
      p: [string, string] | null;
      r: { topic: string; key: [0 | 1, string] | null; value: [0 | 1, string] | null; headers: Record<string, [0 | 1, string]> };
    };
    const unpack = (v: [0 | 1, string]): Buffer | string => (v[0] === 0 ? v[1] : Buffer.from(v[1], 'base64'));
    const headers: Record<string, Buffer | string> = {};
    for (const [name, value] of Object.entries(j.r.headers)) setHeader(headers, name, unpack(value));
    return {
      subject: j.s,
      time: parseServiceTime(j.t),
      node: j.n,
      offset: BigInt(j.o),
      producer: j.p === null ? undefined : { id: j.p[0], seq: BigInt(j.p[1]) },
      record: { topic: j.r.topic, key: j.r.key === null ? null : unpack(j.r.key), value: j.r.value === null ? null : unpack(j.r.value), headers },
    };
  },
};

