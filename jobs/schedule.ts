import type { Logger } from "@/core/log.ts";
import { messageOf } from "@/core/errors.ts";

export interface Job {
  name: string;
  everySeconds: number;
  run(): Promise<unknown>;
}

/**
 * Runs each job on its interval with Deno.cron (whole minutes) or a timer (shorter ones),
 * never two runs of one job at once in this process. Instances coordinate through the
 * database: every job claims its rows atomically.
 */
export function scheduleJobs(jobs: Job[], log: Logger): { stop(): void } {
  const abort = new AbortController();
  const timers: ReturnType<typeof setInterval>[] = [];
  for (const job of jobs) {
    let running = false;
    const tick = async () => {
      if (running || abort.signal.aborted) return;
      running = true;
      try {
        await job.run();
      } catch (err) {
        log.error("job failed", {
          job: job.name,
          error: messageOf(err),
        });
      } finally {
        running = false;
      }
    };
    const minutes = job.everySeconds / 60;
    if (Number.isInteger(minutes) && minutes >= 1 && minutes <= 59) {
      Deno.cron(`pomodex-${job.name}`, `*/${minutes} * * * *`, { signal: abort.signal }, tick);
    } else {
      timers.push(setInterval(tick, job.everySeconds * 1000));
    }
  }
  return {
    stop() {
      abort.abort();
      for (const t of timers) clearInterval(t);
    },
  };
}
