// The terminal proxy's entry point: `deno run -A terminal.ts`. main.ts starts it as a child
// process unless TERMINAL_PROXY=false; docker-compose.yml runs it as its own service.
import { loadConfigOrExit } from "./core/config.ts";
import { DockerClient, findDockerSocket } from "./infra/docker/mod.ts";
import { isLoopback } from "./web/http/client-ip.ts";
import { createLogger } from "./core/log.ts";
import { InternalApi, startTerminalProxy } from "./terminal/mod.ts";

const config = loadConfigOrExit(Deno.env.toObject());

const log = createLogger(config.logLevel);
const apiHost = new URL(config.terminal.apiInternalUrl).hostname.replace(/^\[|\]$/g, "");
if (!isLoopback(apiHost) && apiHost !== "localhost") {
  // The API answers /internal/* to loopback peers only; say so now rather than on every connect.
  log.warn("terminal: API_INTERNAL_URL is not a loopback address; validation will fail", {
    api_internal_url: config.terminal.apiInternalUrl,
  });
}

const engine = new DockerClient({
  socketPath: findDockerSocket(config.engine.dockerHost),
});
// Not awaited: the proxy serves (and answers 4404) while the engine is away, and keeps asking.
const stopNegotiating = new AbortController();
engine.negotiateWhenReachable({
  signal: stopNegotiating.signal,
  onRetry: (err) =>
    log.warn("terminal: engine not reachable; asking again in 10 s", {
      error: (err as Error).message,
    }),
});

const proxy = startTerminalProxy({
  engine,
  api: new InternalApi({ baseUrl: config.terminal.apiInternalUrl }),
  log,
  settings: config.terminal,
  hostname: config.host,
  port: config.terminal.port,
});

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, async () => {
    if (stopping) return;
    stopping = true;
    stopNegotiating.abort();
    log.info("terminal proxy: shutting down, ending every shell");
    await proxy.shutdown().catch((err) =>
      log.error("terminal proxy: shutdown failed", { error: (err as Error).message })
    );
    engine.close();
    Deno.exit(0);
  });
}
