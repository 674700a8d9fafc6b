import { useEffect, useRef } from "preact/hooks";
import { SessionEnded } from "./api.ts";

export const POLL_INTERVAL_MS = 2000;

/**
 * Calls `tick` every POLL_INTERVAL_MS while `active`, one call at a time; stops when the
 * page is hidden (and catches up when it is shown again) and for good once the session
 * has ended. Errors are shown by the caller through `onError`, then polling goes on.
 */
export function usePolling(
  active: boolean,
  tick: () => Promise<void>,
  onError?: (err: unknown) => void,
) {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    if (!active) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (stopped) return;
      if (document.visibilityState === "hidden") {
        timer = setTimeout(run, POLL_INTERVAL_MS);
        return;
      }
      try {
        await latest.current();
      } catch (err) {
        if (err instanceof SessionEnded) return;
        onError?.(err);
      }
      if (!stopped) timer = setTimeout(run, POLL_INTERVAL_MS);
    };
    timer = setTimeout(run, POLL_INTERVAL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [active]);
}
