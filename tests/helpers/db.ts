import postgres from "postgres";
import type { Sql } from "@/infra/db/database.ts";
import { migrate } from "@/infra/db/migrate.ts";
import { testDatabaseUrl } from "./env.ts";

export interface TestDatabase extends AsyncDisposable {
  url: string;
  sql: Sql;
  /** Closes the pool and drops the database; `await using` calls it at the end of the scope. */
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file (real PostgreSQL, never a fake). */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  // The server the run names (TEST_DATABASE_URL; scripts/ensure-postgres.sh starts one).
  const serverUrl = testDatabaseUrl();
  const name = `pomodex_test_${crypto.randomUUID().replace(/-/g, "").slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = withDatabase(serverUrl, name);
  const sql = postgres(url, {
    max: 10,
    transform: postgres.camel,
    onnotice: () => {},
  }) as unknown as Sql;
  if (opts.migrate !== false) await migrate(sql);
  const drop = async () => {
    await sql.end({ timeout: 5 });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end({ timeout: 5 });
  };
  return { url, sql, drop, [Symbol.asyncDispose]: drop };
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
