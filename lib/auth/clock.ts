/**
 * Now, as the auth service sees it. Injected so that expiry, grace windows and rate-limit
 * windows are tested by moving time instead of sleeping.
 */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

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
