import type { Logger } from "@/core/log.ts";

export interface SupervisedChild {
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

const RESTART_DELAY_MS = 1_000;
const STOP_GRACE_MS = 10_000;

/**
 * Runs a helper process beside the API (the terminal proxy, the egress proxy) with its
 * output inherited, and starts it again if it dies: one start command runs them all, and a
 * crash in one takes neither the API nor, for longer than a second, its own service down.
 */
export function superviseChild(opts: {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  log: Logger;
}): SupervisedChild {
  let child: Deno.ChildProcess | null = null;
  let stopping = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;

  const spawn = () => {
    child = new Deno.Command(opts.command, {
      args: opts.args,
      env: opts.env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const me = child;
    me.status.then((status) => {
      if (stopping || child !== me) return;
      opts.log.error(`${opts.name} exited; restarting`, { code: status.code });
      restartTimer = setTimeout(() => !stopping && spawn(), RESTART_DELAY_MS);
    });
  };
  spawn();

  return {
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const c = child;
      if (!c) return;
      try {
        c.kill("SIGTERM");
      } catch {
        return; // already exited
      }
      const killer = setTimeout(() => {
        try {
          c.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, STOP_GRACE_MS);
      await c.status;
      clearTimeout(killer);
    },
  };
}
