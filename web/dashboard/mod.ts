import type { Config } from "@/core/config.ts";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { Logger } from "@/core/log.ts";
import { type AssetStore, createAssetStore } from "./assets.ts";
import { loadCsrfKey } from "./csrf.ts";

/** The dashboard's own state, built once at start (services.ts). */
export interface Dashboard {
  /** HMAC key of the per-session CSRF tokens. */
  csrfKey: CryptoKey;
  /** The stylesheet and the island bundles, under content-hashed names. */
  assets: AssetStore;
  /** The terminal proxy's origin (ws://host:port), which the CSP lets pages connect to. */
  terminalOrigin: string;
}

export async function createDashboard(opts: {
  config: Config;
  sql: Sql;
  secrets: SecretBox;
  log: Logger;
}): Promise<Dashboard> {
  return {
    csrfKey: await loadCsrfKey(opts.sql, opts.secrets),
    assets: createAssetStore(opts.log),
    terminalOrigin: new URL(opts.config.terminal.publicUrl).origin,
  };
}
