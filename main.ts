import { createApp } from "./app.ts";
import { ensureInitialAdmin } from "./auth/users.ts";
import { type Config, loadConfigOrExit } from "./core/config.ts";
import { openDatabase } from "./infra/db/database.ts";
import { migrate } from "./infra/db/migrate.ts";
import { startJobs } from "./jobs/mod.ts";
import { createLogger } from "./core/log.ts";
import { reconcile } from "./projects/reconciler.ts";
import { createServices } from "./services.ts";
import { proxyChildEnv, startProxyChild } from "./terminal/child.ts";
import type { AppDeps } from "./web/deps.ts";
import type { Logger } from "./core/log.ts";
import { allowProxyPort } from "./infra/network/firewall.ts";
import { startSquid } from "./infra/network/squid.ts";
import { messageOf } from "./core/errors.ts";
import { followCredentialChanges } from "./auth/live-credentials.ts";

/** Wires config, database, app and cron; returns a handle that shuts it all down. */
export async function start(config: Config) {
  const log = createLogger(config.logLevel);
  const db = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    log,
  });
  if (db.kind === "postgres") log.info("database: PostgreSQL (DATABASE_URL)");
  const applied = await migrate(db.sql);
  if (applied.length > 0) log.info("database: migrations applied", { versions: applied });

  const deps = await createServices(config, db.sql, log);
  // Authenticated requests skip the database while the change feed listens. The embedded
  // database serves one connection and one instance: there, every request asks it.
  const authChanges = db.kind === "postgres" && config.databaseUrl
    ? followCredentialChanges(config.databaseUrl, deps.auth.live, log)
    : null;
  // Not awaited: an engine that is down or slow must not hold the start. Until it answers,
  // the client speaks the API version its types were written against; it keeps asking.
  const stopNegotiating = new AbortController();
  const negotiated = deps.engine.negotiateWhenReachable({
    signal: stopNegotiating.signal,
    onRetry: (err) =>
      log.warn("engine: not reachable; asking again in 10 s", {
        error: messageOf(err),
      }),
  }).then((version) => {
    if (version) log.info("engine: API version negotiated", { api_version: version });
  });
  await ensureInitialAdmin(deps.auth, config.initialAdmin);
  // Bundles the dashboard's islands now rather than on the first page view.
  await deps.dashboard.assets.manifest();
  const app = createApp(deps);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      {
        hostname: config.host,
        port: config.port,
        onListen: ({ hostname, port }) =>
          log.info("listening", { url: `http://${hostname}:${port}` }),
      },
      (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
    );
  } catch (err) {
    // PORT taken, say: nothing else has started yet, so give back what was opened rather
    // than leave a database pool and the engine client behind the error.
    stopNegotiating.abort();
    await negotiated.catch(() => {});
    await authChanges?.close();
    deps.engine.close();
    await db.close();
    throw err;
  }
  // The terminal proxy runs beside the API, unless it is its own service (TERMINAL_PROXY=false).
  const terminal = config.terminal.enabled
    ? startProxyChild({
      script: new URL("./terminal.ts", import.meta.url).pathname,
      env: proxyChildEnv(config.terminal.apiInternalUrl, server.addr.port),
      log,
    })
    : null;

  // Not awaited: the server answers (and handles SIGTERM) while Squid comes up.
  const egress = startEgress(config, deps, server.addr.port, log);

  let stopping: Promise<void> | undefined;
  // The reconciler runs once at start (a crash may have left work half-done), then on cron.
  const jobs = startJobs(deps);
  if (config.cron) {
    // After the negotiation: the reconciler's first calls then speak the engine's version.
    negotiated.then(() => stopping ? undefined : reconcile(deps)).catch((err) =>
      log.warn("reconciler at start failed", {
        error: messageOf(err),
      })
    );
  }

  const shutdown = () =>
    stopping ??= (async () => {
      log.info("shutting down: finishing in-flight requests");
      stopNegotiating.abort();
      jobs.stop();
      await terminal?.stop();
      await (await egress)?.stop();
      await server.shutdown();
      await authChanges?.close();
      deps.engine.close();
      await db.sql`DELETE FROM instances WHERE id = ${deps.instanceId}`.catch(() => {});
      await db.close();
      log.info("stopped");
    })();
  return { server, shutdown, port: server.addr.port };
}

/**
 * The egress proxy (EGRESS_PROXY=squid) on every sandbox network's gateway. Without it,
 * allowlist projects reach nothing; that is said once, loudly, and the server still starts.
 */
async function startEgress(config: Config, deps: AppDeps, apiPort: number, log: Logger) {
  if (config.egress.proxy === "off") {
    log.warn("egress: EGRESS_PROXY=off: allowlist projects reach nothing, open ones go direct");
    return null;
  }
  try {
    const proxy = await startSquid({
      port: config.egress.proxyPort,
      sandboxPool: config.isolation.subnetPool,
      allowedRanges: config.isolation.allowedRanges,
      hostsFile: config.egress.hostsFile,
      apiUrl: proxyChildEnv(config.terminal.apiInternalUrl, apiPort).API_INTERNAL_URL,
      log,
    });
    if (deps.isolation.firewallEnabled) await allowProxyPort(proxy.port);
    // Sandboxes get the address now; until Squid answers, their requests fail (closed).
    deps.isolation.proxyPort = proxy.port;
    return proxy;
  } catch (err) {
    log.error("egress: the proxy did not start; allowlist projects reach nothing", {
      error: messageOf(err),
    });
    return null;
  }
}

if (import.meta.main) {
  const running = await start(loadConfigOrExit(Deno.env.toObject()));
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => running.shutdown().then(() => Deno.exit(0)));
  }
}
