import postgres from "postgres";
import type { Sql } from "@/infra/db/database.ts";
import { migrate } from "@/infra/db/migrate.ts";

/** The PostgreSQL server the tests use; `scripts/ensure-postgres.sh` makes sure one runs. */
export const serverUrl = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string;
  sql: Sql;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file (real PostgreSQL, never a fake). */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
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
  return {
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end({ timeout: 5 });
    },
  };
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
