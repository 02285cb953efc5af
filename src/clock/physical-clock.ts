/** Source of physical time. Injected so tests can step, freeze and rewind it. */
export interface PhysicalClock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The machine's wall clock. */
export const systemClock: PhysicalClock = { now: () => Date.now() };
