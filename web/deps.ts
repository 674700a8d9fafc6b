import type { AuthService } from "@/auth/service.ts";
import type { Config } from "@/core/config.ts";
import type { Logger } from "@/core/log.ts";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { ProjectBackends } from "@/projects/backends.ts";
import type { ReadinessCheck } from "./api/health.ts";
import type { Dashboard } from "./dashboard/mod.ts";
import type { Metrics } from "./http/metrics.ts";

/** Everything the routes need, built once at start by services.ts. */
export interface AppDeps extends ProjectBackends {
  config: Config;
  sql: Sql;
  log: Logger;
  secrets: SecretBox;
  /** Accounts, sessions, tokens, keys and rate limits (auth). */
  auth: AuthService;
  /** The dashboard's CSRF key and assets (web/dashboard). */
  dashboard: Dashboard;
  metrics?: Metrics;
  /** Readiness checks besides the database, e.g. the container engine. */
  checks?: Record<string, ReadinessCheck>;
}
