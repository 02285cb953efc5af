/**
 * The fixed lists of reasons and policies that the processors produce, the metrics label
 * (exported at 0 from the start) and the config validates: one home for each.
 */

/** The fixed label values of `ordo_ordering_violations_total`. */
export const VIOLATION_REASONS = ['late', 'duplicate-key', 'sequence-gap', 'sequence-regression'] as const;
export type ViolationReason = (typeof VIOLATION_REASONS)[number];

/** What happens to an event that came too late for its slot: flagged in place, or the late topic. */
export const LATE_POLICIES = ['flag', 'route'] as const;
export type LatePolicy = (typeof LATE_POLICIES)[number];

/** Why an event went to the late topic (`ordo-late-reason`, label of ordo_events_late_total). */
export const LATE_REASONS = ['too-late', 'out-of-order', 'subject-deleted', 'correction-too-late'] as const;

/** The late topic's `ordo-late-reason` for an event that missed its order slot. */
export const OUT_OF_ORDER = 'out-of-order' satisfies (typeof LATE_REASONS)[number];
