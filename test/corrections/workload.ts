import { CORRECTION_HEADER, type CorrectionKind } from '../../src/corrections/correction.js';
import type { UsageEvent } from '../../src/schema/usage-event.js';
import { type ReadRecord, type TestMessage, decodeEvent, header } from '../support/cluster.js';
import { type ExpectedAggregate, type OracleEvent, expectedAggregates } from '../support/usage-oracle.js';
import { TEST_METERS, oracleEvents } from '../support/usage-workload.js';

const DAY = 86_400_000;

export interface CorrectionWorkload {
  messages: TestMessage[];
  /** `source/id` of every original and every correction: each once on the ordered topic. */
  accepted: Set<string>;
  /** Original `source/id` -> its correction. */
  corrections: Map<string, { kind: CorrectionKind; event: UsageEvent }>;
  voids: number;
  amends: number;
  /** Corrections produced before their original. */
  early: number;
  resent: number;
}

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * `count` originals over TEST_METERS (recent, within the lateness) with ~2 % voids and ~2 %
 * amends (an amend may move the event to another window, group or type), a quarter of the
 * corrections produced before their original (within the next 200 records, so well within
 * the hold), a tenth of them re-sent. Same subject as the original: same partition, so the
 * produce order is the arrival order.
 */
export function makeCorrectionWorkload(encode: (e: UsageEvent) => Buffer, options: { count: number; subjects: number; now: number; seed?: number; idPrefix?: string }): CorrectionWorkload {
  const rnd = random(options.seed ?? 7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const prefix = options.idPrefix ?? 'ev';
  const content = (): Pick<UsageEvent, 'type' | 'time' | 'value' | 'dimensions'> => ({
    type: rnd() < 0.6 ? 'api.request' : 'llm.completion',
    time: options.now - Math.floor(rnd() < 0.8 ? rnd() * 90 * 60_000 : rnd() * 3 * DAY),
    value: ((Math.floor(rnd() * 2_000_000) - 100_000) / 10_000).toFixed(rnd() < 0.5 ? 4 : 2),
    dimensions: { region: pick(['eu-west-1', 'us-east-1']), model: pick(['small', 'large']), user: `user-${Math.floor(rnd() * 30)}`, tokens: String(Math.floor(rnd() * 5000)) },
  });
  const sequence: TestMessage[] = [];
  const later: { at: number; message: TestMessage }[] = [];
  const accepted = new Set<string>();
  const corrections = new Map<string, { kind: CorrectionKind; event: UsageEvent }>();
  let voids = 0;
  let amends = 0;
  let early = 0;
  let resent = 0;
  for (let i = 0; i < options.count; i++) {
    const subject = `cust-${Math.floor(rnd() * options.subjects)}`;
    const original: UsageEvent = { id: `${prefix}-${i}`, source: pick(['gateway', 'llm-proxy']), subject, ...content() };
    const message: TestMessage = { key: subject, value: encode(original), headers: { 'test-id': `${original.source}/${original.id}` } };
    accepted.add(`${original.source}/${original.id}`);
    const roll = rnd();
    const kind: CorrectionKind | undefined = roll < 0.02 ? 'void' : roll < 0.04 ? 'amend' : undefined;
    if (kind === undefined) {
      sequence.push(message);
      continue;
    }
    const fix: UsageEvent =
      kind === 'void'
        ? { id: `fix-${prefix}-${i}`, source: 'support', subject, type: 'ordo.void', time: options.now, value: '0', dimensions: {} }
        : { id: `fix-${prefix}-${i}`, source: 'support', subject, ...content() };
    const correction: TestMessage = {
      key: subject,
      value: encode(fix),
      headers: { 'test-id': `support/${fix.id}`, [CORRECTION_HEADER.kind]: kind, [CORRECTION_HEADER.source]: original.source, [CORRECTION_HEADER.id]: original.id },
    };
    corrections.set(`${original.source}/${original.id}`, { kind, event: fix });
    accepted.add(`support/${fix.id}`);
    if (kind === 'void') voids += 1;
    else amends += 1;
    if (rnd() < 0.25) {
      early += 1;
      sequence.push(correction, message);
    } else {
      sequence.push(message);
      later.push({ at: sequence.length + Math.floor(rnd() * 200), message: correction });
    }
    if (rnd() < 0.1) {
      resent += 1;
      later.push({ at: sequence.length + 200 + Math.floor(rnd() * 200), message: correction });
    }
  }
  later.sort((a, b) => a.at - b.at);
  const messages: TestMessage[] = [];
  let next = 0;
  sequence.forEach((m, k) => {
    messages.push(m);
    while (next < later.length && later[next]!.at <= k) messages.push(later[next++]!.message);
  });
  while (next < later.length) messages.push(later[next++]!.message);
  return { messages, accepted, corrections, voids, amends, early, resent };
}

/**
 * The oracle: the originals on the ordered topic with their order keys, the voided removed
 * and the amended replaced by their amended content (in the original's place), folded by
 * the independent recomputation of test/support/usage-oracle.ts.
 */
export function correctedOracle(ordered: readonly ReadRecord[], corrections: ReadonlyMap<string, { kind: CorrectionKind; event: UsageEvent }>): Map<string, ExpectedAggregate> {
  const originals = ordered.filter((r) => header(r, CORRECTION_HEADER.kind) === undefined);
  const events: OracleEvent[] = [];
  for (const e of oracleEvents(originals)) {
    const c = corrections.get(`${e.event.source}/${e.event.id}`);
    if (c?.kind === 'void') continue;
    events.push(c === undefined ? e : { ...e, event: { ...e.event, type: c.event.type, time: c.event.time, value: c.event.value, dimensions: c.event.dimensions } });
  }
  return expectedAggregates(TEST_METERS, events);
}

/** Corrections on the ordered topic each after their original (offset order per partition). */
export function expectCorrectionsAfterOriginals(ordered: readonly ReadRecord[]): string[] {
  const position = new Map<string, string>();
  const wrong: string[] = [];
  for (const r of ordered) {
    const e = decodeEvent(r.value);
    position.set(`${e.source}/${e.id}`, `${r.partition}:${r.offset}`);
    const kind = header(r, CORRECTION_HEADER.kind);
    if (kind === undefined) continue;
    const original = `${header(r, CORRECTION_HEADER.source)}/${header(r, CORRECTION_HEADER.id)}`;
    const at = position.get(original);
    if (at === undefined || at.split(':')[0] !== String(r.partition) || BigInt(at.split(':')[1]!) >= BigInt(r.offset)) wrong.push(`${kind} ${e.id} of ${original} (at ${r.partition}:${r.offset}, original at ${at ?? 'nowhere yet'})`);
  }
  return wrong;
}
