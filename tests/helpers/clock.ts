import type { AdjustableClock } from "@/core/clock.ts";

/**
 * A clock that stands still until the test moves it: a rate-limit window (a minute, 15
 * minutes, an hour) then never ends in the middle of a burst of requests, however slowly a
 * busy machine sends them. It starts at the real time, so that what the database stamps
 * with now() stays close.
 */
export function steadyClock(start = Date.now()): AdjustableClock {
  let at = start;
  const clock = (() => new Date(at)) as AdjustableClock;
  clock.advance = (ms: number) => {
    if (ms < 0) throw new Error("time only moves forward");
    at += ms;
  };
  return clock;
}
