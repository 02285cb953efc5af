import { type SizedWindow, type WindowSize, tileRange } from './windows.js';

/**
 * How long each window size is kept once final, in ms; null or absent: for ever.
 * (Foundation for issue 15's retention: filled in by the retention work.)
 */
export type RetentionPolicy = Partial<Record<WindowSize, number | null>>;

/**
 * The pieces [start, end) is read from: the finest maintained windows still kept at each
 * piece's time. With no retention this is tileRange.
 */
export function tileAvailable(start: number, end: number, sizes: readonly WindowSize[], _policy: RetentionPolicy = {}, _now: number = Date.now()): SizedWindow[] {
  return tileRange(start, end, sizes);
}
