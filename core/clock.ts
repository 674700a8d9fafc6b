/**
 * Now, as the auth service sees it. Injected so that expiry, grace windows and rate-limit
 * windows are tested by moving time instead of sleeping.
 */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

/**
 * Waiting, as the auth service does it (the per-account login back-off). Injected so that
 * tests see which delays were asked for instead of sitting through them.
 */
export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Real time plus an offset that only grows: a clock tests (and benchmarks) can move forward. */
export interface AdjustableClock extends Clock {
  advance(ms: number): void;
}

export function adjustableClock(): AdjustableClock {
  let offsetMs = 0;
  const clock = (() => new Date(Date.now() + offsetMs)) as AdjustableClock;
  clock.advance = (ms: number) => {
    if (ms < 0) throw new Error("time only moves forward");
    offsetMs += ms;
  };
  return clock;
}
