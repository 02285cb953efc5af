import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 (its last release) re-arms each connection's pending-request check for
 * `throttledUntil - Date.now()` even when nothing is pending and nothing is throttled: a
 * negative delay. Node 24 and later report it on stderr (TimeoutNegativeWarning, a line that
 * is not JSON) and clamp it to 1 ms, so every broker connection polls its empty queue every
 * millisecond for as long as it lives (tulios/kafkajs#1751, #1704; unmerged upstream).
 * With nothing pending and no throttle there is nothing to check: a new request is sent at
 * once, or, when it has to wait, `push` schedules its own check. Everything else is
 * kafkajs' own code.
 */
interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(this: RequestQueue): void;
}

const PATCHED = Symbol.for('ordo.kafkajs.requestQueue.idleCheck');

/** Applies the fix to kafkajs' RequestQueue class (once per process; safe to call again). */
export function patchKafkajsRequestQueue(): void {
  const require = createRequire(import.meta.url);
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue & { [PATCHED]?: true } };
  const proto = RequestQueue.prototype;
  if (proto[PATCHED]) return;
  const schedule = proto.scheduleCheckPendingRequests;
  if (typeof schedule !== 'function') throw new Error('kafkajs RequestQueue has no scheduleCheckPendingRequests: review src/kafka/request-queue.ts for this kafkajs version');
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueue): void {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    schedule.call(this);
  };
  proto[PATCHED] = true;
}
