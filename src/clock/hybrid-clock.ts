/**
 * Hybrid logical clock (Kulkarni et al. 2014, "Logical Physical Clocks") on the
 * packed 64-bit service time t = (l << 16) | c.
 *
 * On the packed value the paper's rules collapse to a max:
 *   local/send:  t' = max(t + 1, pt << 16)
 *   receive m:   t' = max(t + 1, m + 1, pt << 16)
 * The lexicographic order of (l, c) is the numeric order of t, so "+1" is the
 * counter increment and `pt << 16` is "l = pt, c = 0". A counter at 0xffff
 * carries into the millisecond field by plain addition, which keeps results
 * strictly increasing at a cost of running l at most 1 ms ahead of pt per
 * 65536 events in one millisecond.
 *
 * Exhaustion (a next value above 2^64 - 1, i.e. l past 2^48 - 1 ms, the year
 * 10889) throws RangeError. It cannot happen with real clocks: pt is far below
 * it, received times are bounded by pt + maxSkewMs, and carries add at most
 * 1 ms per 65536 events. Only a corrupt initial or witnessed value can get
 * there, and failing loudly beats wrapping to 0 and going backwards.
 */
import { ClockSkewError } from '../errors.js';
import { systemClock, type PhysicalClock } from './physical-clock.js';
import {
  COUNTER_BITS,
  MAX_COUNTER,
  MAX_MILLIS,
  MAX_SERVICE_TIME,
  counterOf,
  formatServiceTime,
  millisOf,
  type ServiceTime,
} from './service-time.js';

/** As in CockroachDB: wide enough for NTP-synced hosts, narrow enough to bound drift. */
export const DEFAULT_MAX_SKEW_MS = 500;

/** How a {@link HybridClock} is made. */
export interface HybridClockOptions {
  /** Id written to `service-node`; breaks ties between equal times. */
  node: string;
  /** Where physical time comes from. Default: `Date.now()` (systemClock). */
  physical?: PhysicalClock;
  /** How far ahead of local physical time a received time may be. Default 500. */
  maxSkewMs?: number;
  /** Start state, as if witnessed: every issued time is greater. Default 0n. */
  initial?: ServiceTime;
}

function checkRange(what: string, t: ServiceTime): void {
  if (t < 0n || t > MAX_SERVICE_TIME) {
    throw new RangeError(`${what} is not an unsigned 64-bit service time: ${t}`);
  }
}

function exhausted(): RangeError {
  return new RangeError(`hybrid clock exhausted: next service time would exceed ${formatServiceTime(MAX_SERVICE_TIME)}`);
}

/**
 * A hybrid logical clock: `now()` for a local or send event, `receive(t)` for a message
 * that carried time `t` (skew bounded), `witness(t)` to adopt a trusted time. Every time it
 * issues is greater than every time it issued or received before (docs/hybrid-time.md).
 */
export class HybridClock {
  readonly #node: string;
  readonly #physical: PhysicalClock;
  readonly #maxSkewMs: number;
  // Invariant: #t === (#ms << 16) | #c. The number copies let now() decide with
  // number compares and a single bigint op; pure bigint max allocates three
  // bigints per call and measured about 2x slower.
  #t: ServiceTime;
  #ms: number;
  #c: number;

  constructor(options: HybridClockOptions) {
    const { node, physical = systemClock, maxSkewMs = DEFAULT_MAX_SKEW_MS, initial = 0n } = options;
    if (typeof node !== 'string' || node.length === 0) {
      throw new RangeError('hybrid clock node id must be a non-empty string');
    }
    // `>= 0` also rejects NaN; Infinity is allowed and disables the bound.
    if (!(maxSkewMs >= 0)) {
      throw new RangeError(`maxSkewMs must be >= 0, got ${maxSkewMs}`);
    }
    checkRange('initial', initial);
    this.#node = node;
    this.#physical = physical;
    this.#maxSkewMs = maxSkewMs;
    this.#t = initial;
    this.#ms = millisOf(initial);
    this.#c = counterOf(initial);
  }

  /** The id sent as `service-node` with this clock's times. */
  get node(): string {
    return this.#node;
  }

  /** The physical clock this clock reads (what skew is measured against). */
  get physical(): PhysicalClock {
    return this.#physical;
  }

  /** How far ahead of physical time a received time may be before `receive` refuses it. */
  get maxSkewMs(): number {
    return this.#maxSkewMs;
  }

  /** The highest time issued or witnessed so far (the initial value before that). */
  get last(): ServiceTime {
    return this.#t;
  }

  /** Local or send event: greater than every earlier result, and l >= pt. */
  now(): ServiceTime {
    const pt = this.#readPhysical();
    if (pt > this.#ms) {
      this.#t = BigInt(pt) << COUNTER_BITS;
      this.#ms = pt;
      this.#c = 0;
    } else if (this.#c < MAX_COUNTER) {
      // Wall clock has not passed l (same ms, or it stepped backwards): count.
      this.#t += 1n;
      this.#c += 1;
    } else {
      if (this.#ms >= MAX_MILLIS) throw exhausted();
      this.#t += 1n;
      this.#ms += 1;
      this.#c = 0;
    }
    return this.#t;
  }

  /**
   * Receive event for a time carried by an incoming message. The result is
   * greater than `remote` and than every earlier result. A remote time more
   * than maxSkewMs ahead of physical time is not adopted (ClockSkewError, state
   * unchanged): one bad upstream clock must not drag every node's clock forward.
   */
  receive(remote: ServiceTime): ServiceTime {
    checkRange('received service time', remote);
    const pt = this.#readPhysical();
    const remoteMs = millisOf(remote);
    const skewMs = remoteMs - pt;
    if (skewMs > this.#maxSkewMs) throw new ClockSkewError(skewMs, this.#maxSkewMs);

    if (pt > this.#ms && pt > remoteMs) {
      // pt << 16 >= (max(l, l_m) + 1) << 16 > max(t, m) + 1.
      this.#t = BigInt(pt) << COUNTER_BITS;
      this.#ms = pt;
      this.#c = 0;
      return this.#t;
    }
    // Here pt <= max(l, l_m), so pt << 16 cannot exceed max(t, m) + 1.
    const base = remote > this.#t ? remote : this.#t;
    if (base === MAX_SERVICE_TIME) throw exhausted();
    const next = base + 1n;
    this.#t = next;
    this.#ms = millisOf(next);
    this.#c = counterOf(next);
    return next;
  }

  /**
   * Raise the state to at least `t` without a skew check and without issuing
   * a time. Used on failover to adopt the highest service time already emitted
   * for a partition (trusted: it was emitted by this system, possibly by a node
   * whose clock ran ahead), so output times never go backwards.
   */
  witness(t: ServiceTime): void {
    checkRange('witnessed service time', t);
    if (t > this.#t) {
      this.#t = t;
      this.#ms = millisOf(t);
      this.#c = counterOf(t);
    }
  }

  #readPhysical(): number {
    const raw = this.#physical.now();
    // Sub-millisecond sources (performance.now based) must not reset the
    // counter within the same millisecond, so truncate to whole ms.
    const pt = Math.floor(raw);
    if (!Number.isSafeInteger(pt) || pt > MAX_MILLIS) {
      throw new RangeError(`physical clock returned ${raw}, not a millisecond timestamp <= ${MAX_MILLIS}`);
    }
    return pt;
  }
}
