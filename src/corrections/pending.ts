import { type Stamp, formatServiceTime, parseServiceTime } from '../clock/service-time.js';
import { type SourceRecord, setHeader } from '../model/records.js';
import type { KeyValueStore, StoreCodec } from '../model/store.js';
import type { UsageEvent } from '../schema/usage-event.js';
import type { CorrectionTarget } from './correction.js';

/**
 * Corrections that arrived before their original, waiting for it, kept in the task's `meta`
 * store under this prefix (so in its changelog: one record when a correction starts waiting,
 * a tombstone when it leaves). Such corrections are rare, and nothing else the task writes
 * carries them until they are applied. Key after the prefix:
 * `<dedupeKey(original)>\0<dedupeKey(correction)>`.
 */
export const PENDING_PREFIX = 'correction-pending:';

/** A held correction: the input record (for the DLQ if its original never comes), its decoded event and arrival stamp. */
export interface PendingCorrection {
  source: SourceRecord;
  event: UsageEvent;
  target: CorrectionTarget;
  stamp: Stamp;
}

export function pendingKey(originalKey: string, correctionKey: string): string {
  return `${originalKey}\u0000${correctionKey}`;
}

type Packed = [0 | 1, string];

const pack = (v: Buffer | string): Packed => (typeof v === 'string' ? [0, v] : [1, v.toString('base64')]);
const unpack = (v: Packed): Buffer | string => (v[0] === 0 ? v[1] : Buffer.from(v[1], 'base64'));

/** JSON; the record's key and value in base64, header values keep whether they were text or bytes. */
export const pendingCodec: StoreCodec<PendingCorrection> = {
  encode(p) {
    const headers: [string, Packed][] = [];
    for (const [name, value] of Object.entries(p.source.headers)) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) headers.push([name, pack(one)]);
    }
    const r = p.source;
    return Buffer.from(
      JSON.stringify({
        r: { t: r.topic, p: r.partition, o: r.offset, k: r.key === null ? null : r.key.toString('base64'), v: r.value === null ? null : r.value.toString('base64'), h: headers, ts: r.timestamp },
        e: p.event,
        g: p.target,
        s: [formatServiceTime(p.stamp.time), p.stamp.node],
      }),
      'utf8',
    );
  },
  decode(bytes) {
    const j = JSON.parse(bytes.toString('utf8')) as {
      r: { t: string; p: number; o: string; k: string | null; v: string | null; h: [string, Packed][]; ts: number };
      e: UsageEvent;
      g: CorrectionTarget;
      s: [string, string];
    };
    const headers: Record<string, Buffer | string | (Buffer | string)[]> = {};
    for (const [name, value] of j.r.h) {
      const previous = Object.hasOwn(headers, name) ? headers[name] : undefined;
      const v = unpack(value);
      setHeader(headers, name, previous === undefined ? v : Array.isArray(previous) ? [...previous, v] : [previous, v]);
    }
    return {
      source: { topic: j.r.t, partition: j.r.p, offset: j.r.o, key: j.r.k === null ? null : Buffer.from(j.r.k, 'base64'), value: j.r.v === null ? null : Buffer.from(j.r.v, 'base64'), headers, timestamp: j.r.ts },
      event: j.e,
      target: j.g,
      stamp: { time: parseServiceTime(j.s[0]), node: j.s[1] },
    };
  },
};

/** The waiting corrections as a store of their own, over the `meta` store's keys with PENDING_PREFIX. */
export function pendingStore(meta: KeyValueStore<string>): KeyValueStore<PendingCorrection> {
  const decode = (text: string): PendingCorrection => pendingCodec.decode(Buffer.from(text, 'utf8'));
  return {
    name: 'corrections-pending',
    get: (key) => {
      const text = meta.get(PENDING_PREFIX + key);
      return text === undefined ? undefined : decode(text);
    },
    put: (key, value) => meta.put(PENDING_PREFIX + key, pendingCodec.encode(value).toString('utf8')),
    delete: (key) => meta.delete(PENDING_PREFIX + key),
    *entries() {
      for (const [key, text] of meta.entries()) if (key.startsWith(PENDING_PREFIX)) yield [key.slice(PENDING_PREFIX.length), decode(text)];
    },
    get size() {
      let n = 0;
      for (const [key] of meta.entries()) if (key.startsWith(PENDING_PREFIX)) n += 1;
      return n;
    },
  };
}
