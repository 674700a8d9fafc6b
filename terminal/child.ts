import { superviseChild, type SupervisedChild } from "@/infra/host/supervisor.ts";
import type { Logger } from "@/core/log.ts";

/**
 * Runs the terminal proxy (terminal.ts) as a supervised child of the API process; on
 * SIGTERM the proxy ends its shells.
 */
export function startProxyChild(opts: {
  script: string;
  env: Record<string, string>;
  log: Logger;
}): SupervisedChild {
  return superviseChild({
    name: "terminal proxy",
    command: Deno.execPath(),
    args: ["run", "-A", opts.script],
    env: opts.env,
    log: opts.log,
  });
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
