import type { AppDeps } from "./web/deps.ts";
import { type Clock, type Sleep, systemClock } from "./core/clock.ts";
import { createAuthService } from "./auth/service.ts";
import type { Config } from "./core/config.ts";
import { createSecretBox, loadMasterKey } from "./infra/crypto/secrets.ts";
import type { Sql } from "./infra/db/database.ts";
import { createDashboard } from "./web/dashboard/mod.ts";
import { createMetrics } from "./web/http/metrics.ts";
import type { Logger } from "./core/log.ts";
import { createProjectBackends } from "./projects/backends.ts";

/**
 * Builds every domain service from config and the database. main.ts and the tests share
 * it, so what runs in tests is what runs in production.
 */
export async function createServices(
  config: Config,
  sql: Sql,
  log: Logger,
  overrides: { clock?: Clock; sleep?: Sleep } = {},
): Promise<AppDeps> {
  const secrets = await createSecretBox(await loadMasterKey(config.masterKey, config.dataDir));
  const clock = overrides.clock ?? systemClock;
  const auth = await createAuthService({
    config,
    sql,
    log,
    secrets,
    clock,
    sleep: overrides.sleep,
  });
  const backends = await createProjectBackends(config, sql, log);
  const registry = backends.snapshots.registry;
  const dashboard = await createDashboard({ config, sql, secrets, log });
  return {
    config,
    sql,
    log,
    secrets,
    auth,
    dashboard,
    metrics: createMetrics({ token: config.metricsToken }),
    ...backends,
    checks: {
      engine: () => backends.engine.ping({ timeoutMs: 2000 }),
      // Reported, not required: only stops and starts need the registry.
      ...(registry
        ? { registry: Object.assign(() => registry.client.ping(), { optional: true }) }
        : {}),
    },
  };
}
