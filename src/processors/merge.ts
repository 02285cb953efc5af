import { formatServiceTime, millisOf, parseServiceTimeHeader } from '../clock/service-time.js';
import type { KeyValueStore, StoreCodec } from '../model/store.js';
import type { MergeOutput, MergeProcessor, StoreSpec, UnitContext } from '../engine/task-processor.js';
import { toDeadLetterRecord } from './dead-letter.js';
import { MinHeap } from './min-heap.js';
import { type BufferedEvent, bufferedCodec } from './order.js';
import { HEADER, type HeaderValue, type OutputRecord, type SourceRecord, setHeader } from '../model/records.js';

/** Events read from the ordered topic and not yet written to the global topic: key `<partition>:<offset>`. */
export const HELD_STORE = 'held';
/** The merge's progress: `mark:<p>` per partition, `frontier`, `seq`, and the engine's `pos:<topic>:<p>`. */
export const MERGE_META_STORE = 'merge-meta';

/** A held event; `subject` carries the partition it came from (the codec is the reorder buffer's). */
export type HeldEvent = BufferedEvent;
export const heldCodec: StoreCodec<HeldEvent> = bufferedCodec;

export interface MergeResult {
  /** Records for the global topic, in order, with `ordo-global-seq` set. */
  emitted: OutputRecord[];
  /** Events that arrived below what the global stream had already passed (flagged `ordo-late`). */
  late: number;
  /** Ordered records without a readable order key (never expected from Ordo's pipeline). */
  unreadable: SourceRecord[];
}

interface Key {
  time: bigint;
  node: string;
  partition: number;
  offset: bigint;
}

/**
 * The `merge` role's processor: one global stream in total order by (order key, node),
 * then source partition and offset, from all partitions of the ordered topic.
 *
 * Each partition p has a mark L_p (ms): what it has promised, from the `ordo-watermark`
 * header of its records and, for a quiet partition, from the watermarks topic (applied by
 * the engine only once it has read p up to the point that watermark was written). Held
 * events leave once their key is below the low watermark min_p L_p. An event below what
 * the global stream has already passed (it reached Ordo later than the reorder window
 * allows) is written at once with `ordo-late: true`, never dropped.
 *
 * Held events and marks are in stores (changelogs), so a restart continues exactly.
 */
export class MergeStep {
  private readonly heap = new MinHeap<HeldEvent>(compareHeld);
  private readonly marks = new Map<number, number>();
  private frontier: Key | undefined;
  private seq = 0n;

  constructor(
    private readonly partitions: number,
    private readonly globalTopic: string,
  ) {}

  get held(): number {
    return this.heap.size;
  }

  /** min over the partitions of their marks (ms); -Infinity while any partition has none. */
  get lowWatermark(): number {
    let low = Number.POSITIVE_INFINITY;
    for (let p = 0; p < this.partitions; p++) low = Math.min(low, this.marks.get(p) ?? Number.NEGATIVE_INFINITY);
    return low;
  }

  restore(held: KeyValueStore<HeldEvent>, meta: KeyValueStore<string>): void {
    this.heap.clear();
    for (const [, event] of held.entries()) this.heap.push(event);
    this.marks.clear();
    for (let p = 0; p < this.partitions; p++) {
      const mark = meta.get(`mark:${p}`);
      if (mark !== undefined) this.marks.set(p, Number(mark));
    }
    const frontier = meta.get('frontier');
    if (frontier !== undefined) {
      const [time, partition, offset, ...node] = frontier.split('|');
      this.frontier = { time: BigInt(`0x${time}`), partition: Number(partition), offset: BigInt(offset!), node: node.join('|') };
    }
    this.seq = BigInt(meta.get('seq') ?? '0');
  }

  /** Takes consecutive records of one ordered-topic partition. */
  onOrdered(records: readonly SourceRecord[], stores: { held: KeyValueStore<HeldEvent>; meta: KeyValueStore<string> }): MergeResult {
    const result: MergeResult = { emitted: [], late: 0, unreadable: [] };
    for (const r of records) {
      const key = keyOf(r);
      if (key === undefined) {
        result.unreadable.push(r);
        continue;
      }
      const mark = Number(text(r.headers[HEADER.watermark]) ?? Number.NaN);
      if (Number.isFinite(mark)) this.raise(r.partition, mark, stores.meta);
      const event: HeldEvent = { subject: String(r.partition), time: key.time, node: key.node, offset: key.offset, producer: undefined, record: toGlobal(r, this.globalTopic) };
      if (this.frontier !== undefined && compare(key, this.frontier) < 0) {
        event.record.headers[HEADER.late] = 'true';
        this.emit(event, result, stores.meta, false);
        result.late += 1;
        continue;
      }
      this.heap.push(event);
      stores.held.put(heldKey(event), event);
    }
    this.release(result, stores);
    return result;
  }

  /** A partition's published watermark, once the engine knows everything before it was read. */
  onWatermark(partition: number, markMs: number, stores: { held: KeyValueStore<HeldEvent>; meta: KeyValueStore<string> }): MergeResult {
    const result: MergeResult = { emitted: [], late: 0, unreadable: [] };
    this.raise(partition, markMs, stores.meta);
    this.release(result, stores);
    return result;
  }

  private raise(partition: number, markMs: number, meta: KeyValueStore<string>): void {
    if (partition < 0 || partition >= this.partitions) return;
    if (markMs > (this.marks.get(partition) ?? Number.NEGATIVE_INFINITY)) {
      this.marks.set(partition, markMs);
      meta.put(`mark:${partition}`, String(markMs));
    }
  }

  private release(result: MergeResult, stores: { held: KeyValueStore<HeldEvent>; meta: KeyValueStore<string> }): void {
    const low = this.lowWatermark;
    while (this.heap.size > 0 && millisOf(this.heap.peek()!.time) < low) {
      const event = this.heap.pop()!;
      stores.held.delete(heldKey(event));
      this.emit(event, result, stores.meta, true);
    }
  }

  private emit(event: HeldEvent, result: MergeResult, meta: KeyValueStore<string>, advance: boolean): void {
    this.seq += 1n;
    event.record.headers[HEADER.globalSeq] = this.seq.toString();
    meta.put('seq', this.seq.toString());
    if (advance) {
      this.frontier = { time: event.time, node: event.node, partition: Number(event.subject), offset: event.offset };
      meta.put('frontier', `${formatServiceTime(event.time)}|${event.subject}|${event.offset}|${event.node}`);
    }
    result.emitted.push(event.record);
  }
}

/** The merge's processor for the engine: MergeStep over the unit's stores, and its dead letters. */
export class GlobalMerge implements MergeProcessor {
  readonly stores: readonly StoreSpec[] = [{ name: HELD_STORE, codec: heldCodec }];
  readonly metaStore = MERGE_META_STORE;
  private readonly step: MergeStep;

  constructor(
    partitions: number,
    private readonly settings: { globalTopic: string; dlqTopic: string; nodeId: string },
  ) {
    this.step = new MergeStep(partitions, settings.globalTopic);
  }

  get held(): number {
    return this.step.held;
  }

  get lowWatermark(): number {
    return this.step.lowWatermark;
  }

  restore(context: UnitContext): void {
    this.step.restore(context.store<HeldEvent>(HELD_STORE), context.meta);
  }

  onOrdered(records: readonly SourceRecord[], context: UnitContext): MergeOutput {
    return this.output(this.step.onOrdered(records, { held: context.store<HeldEvent>(HELD_STORE), meta: context.meta }));
  }

  onWatermark(partition: number, markMs: number, context: UnitContext): MergeOutput {
    return this.output(this.step.onWatermark(partition, markMs, { held: context.store<HeldEvent>(HELD_STORE), meta: context.meta }));
  }

  private output(result: MergeResult): MergeOutput {
    const { dlqTopic, nodeId } = this.settings;
    const outputs = [...result.emitted];
    const dead = result.unreadable.map((source) => ({ source, reason: 'bad-service-time' as const, message: 'ordered record without a readable service-time header' }));
    for (const d of dead) outputs.push({ ...toDeadLetterRecord(d, dlqTopic, nodeId), partition: d.source.partition });
    return { outputs, emitted: result.emitted.length, late: result.late, deadLetters: dead };
  }
}

/** The order key of an ordered-topic record: origin-service-time/node, else service-time/node. */
export function keyOf(r: SourceRecord): Key | undefined {
  const origin = parseOrUndefined(r.headers[HEADER.originServiceTime]);
  const time = origin ?? parseOrUndefined(r.headers[HEADER.serviceTime]);
  if (time === undefined) return undefined;
  const node = text(origin !== undefined ? r.headers[HEADER.originServiceNode] : r.headers[HEADER.serviceNode]) ?? '';
  return { time, node, partition: r.partition, offset: BigInt(r.offset) };
}

function parseOrUndefined(value: HeaderValue): bigint | undefined {
  try {
    return parseServiceTimeHeader(value);
  } catch {
    return undefined;
  }
}

function text(value: HeaderValue): string | undefined {
  const last = Array.isArray(value) ? value[value.length - 1] : value;
  return last === undefined ? undefined : last.toString();
}

function compare(a: Key, b: Key): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  if (a.partition !== b.partition) return a.partition - b.partition;
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

function compareHeld(a: HeldEvent, b: HeldEvent): number {
  return compare(
    { time: a.time, node: a.node, partition: Number(a.subject), offset: a.offset },
    { time: b.time, node: b.node, partition: Number(b.subject), offset: b.offset },
  );
}

function heldKey(e: HeldEvent): string {
  return `${e.subject}:${e.offset}`;
}

/** The ordered record as it goes to the single global partition: key, value and headers unchanged. */
function toGlobal(r: SourceRecord, topic: string): OutputRecord {
  const headers: Record<string, Buffer | string> = {};
  for (const [name, value] of Object.entries(r.headers)) {
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    if (last !== undefined) setHeader(headers, name, last);
  }
  return { topic, key: r.key, value: r.value, headers, partition: 0 };
}
