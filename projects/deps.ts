import type { Config } from "@/core/config.ts";
import type { Logger } from "@/core/log.ts";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { ProjectBackends } from "./backends.ts";

/** What the project functions need, built once at start (services.ts). */
export interface ProjectDeps extends ProjectBackends {
  sql: Sql;
  config: Config;
  secrets: SecretBox;
  log: Logger;
}
