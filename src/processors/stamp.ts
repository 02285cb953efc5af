import { ClockSkewError } from '../errors.js';
import type { HybridClock } from '../clock/hybrid-clock.js';
import { millisOf } from '../clock/service-time.js';
import type { DecodedEvent, StampedEvent, StepResult } from '../model/records.js';

export interface StampStats {
  /** ms by which each received context was ahead of local physical time (0 if behind). */
  skewsMs: number[];
  rejectedForSkew: number;
}

/**
 * Stamps each event with the task's hybrid clock: a receive event when the upstream
 * service passed a time context, a local event otherwise. A context too far ahead is not
 * adopted: the event is dead-lettered as `clock-skew` and the clock is left unchanged.
 */
export class StampStep {
  constructor(private readonly clock: HybridClock) {}

  run(events: readonly DecodedEvent[], stats?: StampStats): StepResult<StampedEvent> {
    const items: StampedEvent[] = [];
    const dead: StepResult<StampedEvent>['dead'] = [];
    const node = this.clock.node;
    for (const decoded of events) {
      const context = decoded.context;
      if (context === undefined) {
        items.push(withStamp(decoded, { time: this.clock.now(), node }));
        continue;
      }
      stats?.skewsMs.push(Math.max(0, millisOf(context.time) - this.clock.physical.now()));
      try {
        items.push(withStamp(decoded, { time: this.clock.receive(context.time), node }));
      } catch (error) {
        if (!(error instanceof ClockSkewError)) throw error;
        if (stats) stats.rejectedForSkew += 1;
        dead.push({ source: decoded.source, reason: error.reason, message: error.message });
      }
    }
    return { items, dead };
  }
}

/** An event with Ordo's stamp: its order key is the upstream context if it had one, else the stamp. */
export function withStamp(decoded: DecodedEvent, stamp: { time: bigint; node: string }): StampedEvent {
  const context = decoded.context;
  return { ...decoded, stamp, orderKey: context === undefined ? stamp : { time: context.time, node: context.node ?? '' } };
}
