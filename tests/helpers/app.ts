import { createApp } from "@/app.ts";
import type { AppDeps } from "@/web/deps.ts";
import type { Clock, Sleep } from "@/core/clock.ts";
import { ensureInitialAdmin } from "@/auth/users.ts";
import { type Config, loadConfig } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import { silentLogger } from "@/core/log.ts";
import { removeProjectResources } from "@/projects/lifecycle/delete.ts";
import { installationLabel } from "@/projects/rows.ts";
import { listWorkspaces, unmountWorkspace } from "@/infra/host/workspace.ts";
import { createServices } from "@/services.ts";
import { followCredentialChanges } from "@/auth/live-credentials.ts";
import { createTestDatabase } from "./db.ts";
import { engineEnv } from "./engine.ts";

export interface TestApp extends AsyncDisposable {
  app: ReturnType<typeof createApp>;
  sql: Sql;
  config: Config;
  dataDir: string;
  /** The services the app was built from (e.g. deps.auth for lib-level calls). */
  deps: AppDeps;
  /** In-process request through the whole app, from a given socket peer (default loopback). */
  request(path: string, init?: RequestInit & { json?: unknown; ip?: string }): Promise<Response>;
  /** Removes what the app made (engine, workspaces, database, data dir); `await using` calls it. */
  close(): Promise<void>;
}

/**
 * The change feed of live credentials (auth/live-credentials.ts) for `deps`, once it
 * listens: from then on, authenticated requests are answered from its cache.
 */
export async function followAuthChanges(url: string, deps: AppDeps) {
  const feed = followCredentialChanges(url, deps.auth.live, silentLogger);
  for (let waited = 0; !deps.auth.live.listening; waited += 10) {
    if (waited > 10_000) throw new Error("the auth change feed did not listen within 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  return feed;
}

/**
 * The config every in-process test app is built from: the run's engine and image, its own
 * data directory and database, no terminal proxy and no cron (tests drive those); `env` wins.
 */
export function testConfig(
  dataDir: string,
  databaseUrl: string,
  env: Record<string, string> = {},
): Config {
  return loadConfig({
    ...engineEnv(),
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    TERMINAL_PROXY: "false",
    CRON: "false",
    ...env,
  });
}

/** The real app over a fresh real PostgreSQL database; env overrides config. */
export async function createTestApp(
  env: Record<string, string> = {},
  opts: { clock?: Clock; sleep?: Sleep } = {},
): Promise<TestApp> {
  const db = await createTestDatabase();
  const dataDir = await Deno.makeTempDir({ prefix: "pomodex-test-" });
  const config = testConfig(dataDir, db.url, env);
  const deps = await createServices(config, db.sql, silentLogger, {
    clock: opts.clock,
    sleep: opts.sleep,
  });
  await ensureInitialAdmin(deps.auth, config.initialAdmin);
  // As main.ts does: the cache of live credentials, kept true by the database's changes.
  const authChanges = await followAuthChanges(config.databaseUrl!, deps);
  const app = createApp(deps);
  const close = async () => {
    await authChanges.close();
    await removeEngineLeftovers(deps);
    // A workspace still mounted (a test failed half-way) must not be deleted through.
    for (const id of await listWorkspaces(deps.isolation.workspaces).catch(() => [])) {
      await unmountWorkspace(deps.isolation.workspaces, id).catch(() => {});
    }
    deps.engine.close();
    await db.drop();
    await Deno.remove(dataDir, { recursive: true });
  };
  return {
    app,
    sql: db.sql,
    config,
    dataDir,
    deps,
    request(path, init = {}) {
      const { json, ip, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (json !== undefined) headers.set("content-type", "application/json");
      const req = new Request(new URL(path, "http://localhost"), {
        ...rest,
        headers,
        body: json !== undefined ? JSON.stringify(json) : rest.body,
      });
      return Promise.resolve(
        app.fetch(req, {
          remoteAddr: { transport: "tcp", hostname: ip ?? "127.0.0.1", port: 40000 },
        }),
      );
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Whatever a test left of its projects on the engine, even when it failed half-way:
 * containers, volumes, snapshot images and backups of every project still in its database,
 * and anything else labelled with its installation.
 */
async function removeEngineLeftovers(deps: AppDeps) {
  const rows = await deps.sql<{ id: string; gcsPrefix: string }[]>`
    SELECT id, gcs_prefix FROM projects`.catch(() => []);
  for (const row of rows) await removeProjectResources(deps, row).catch(() => {});
  const mine = { [installationLabel]: deps.installationId };
  const containers = await deps.engine.listContainers({ all: true, labels: mine }).catch(() => []);
  for (const c of containers) {
    await deps.engine.removeContainer(c.Id, { force: true }).catch(() => {});
  }
  const networks = await deps.engine.listNetworks({ labels: mine }).catch(() => []);
  for (const n of networks) {
    if (n.Labels?.[installationLabel] === deps.installationId) {
      await deps.engine.removeNetwork(n.Name).catch(() => {});
    }
  }
}
