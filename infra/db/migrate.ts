import type { Sql } from "./database.ts";
import { transaction } from "./transaction.ts";

const MIGRATION_LOCK = 0x706f6d6f; // "pomo": one migrator at a time across instances

export interface Migration {
  version: string;
  sql: string;
}

export async function readMigrations(
  dir: URL = new URL("../../migrations/", import.meta.url),
): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^\d{3}_[a-z0-9_]+\.sql$/.test(entry.name)) {
      out.push({
        version: entry.name.replace(/\.sql$/, ""),
        sql: await Deno.readTextFile(new URL(entry.name, dir)),
      });
    }
  }
  return out.sort((a, b) => a.version.localeCompare(b.version));
}

/**
 * Applies the pending migrations in one transaction under an advisory lock, so two
 * instances starting together end with one schema. Returns the versions applied.
 */
export async function migrate(sql: Sql, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? await readMigrations();
  return await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set(
      (await tx<{ version: string }[]>`SELECT version FROM schema_migrations`).map((r) =>
        r.version
      ),
    );
    const applied: string[] = [];
    for (const m of all) {
      if (done.has(m.version)) continue;
      await tx.unsafe(m.sql).simple();
      await tx`INSERT INTO schema_migrations (version) VALUES (${m.version})`;
      applied.push(m.version);
    }
    return applied;
  });
}
