import type { Logger } from "../log.ts";

export interface ProxyChild {
  /** SIGTERM (the proxy ends its shells), SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

const RESTART_DELAY_MS = 1_000;
const STOP_GRACE_MS = 10_000;

/**
 * Runs the terminal proxy (terminal.ts) as a child of the API process, with its output
 * inherited, and starts it again if it dies: one start command runs both, and a crash in
 * the proxy takes neither the API nor, for longer than a second, the terminals down.
 */
export function startProxyChild(opts: {
  script: string;
  env: Record<string, string>;
  log: Logger;
}): ProxyChild {
  let child: Deno.ChildProcess | null = null;
  let stopping = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;

  const spawn = () => {
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", opts.script],
      env: opts.env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const me = child;
    me.status.then((status) => {
      if (stopping || child !== me) return;
      opts.log.error("terminal proxy exited; restarting", { code: status.code });
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

/**
 * What the child needs beyond the inherited environment: the API's actual address when
 * it was derived from PORT=0 (an ephemeral port the child cannot guess).
 */
export function proxyChildEnv(
  apiInternalUrl: string,
  apiPort: number,
): Record<string, string> {
  const url = new URL(apiInternalUrl);
  if (url.port === "0") url.port = String(apiPort);
  return { API_INTERNAL_URL: url.toString().replace(/\/$/, "") };
}
