// Transactions run on a connection reserved first (infra/db/transaction.ts): they commit,
// roll back on an error, and leave no connection behind inside a transaction, also when
// hundreds of them meet plain queries on a small, busy pool.
import assert from "node:assert/strict";
import postgres from "postgres";
import type { Sql } from "@/infra/db/database.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { createTestDatabase } from "./helpers/db.ts";

Deno.test("transaction: commit, rollback, and nothing left open on a busy pool", async () => {
  await using db = await createTestDatabase({ migrate: false });
  await using cleanup = new AsyncDisposableStack();
  const sql = postgres(db.url, { max: 3, onnotice: () => {} }) as unknown as Sql;
  cleanup.defer(() => sql.end({ timeout: 1 }));
  await sql`CREATE TABLE t (n int PRIMARY KEY)`;
  assert.equal(await transaction(sql, async (tx) => (await tx`INSERT INTO t VALUES (1)`, 1)), 1);
  await assert.rejects(
    transaction(sql, async (tx) => {
      await tx`INSERT INTO t VALUES (2)`;
      throw new Error("changed my mind");
    }),
    /changed my mind/,
  );
  await assert.rejects(transaction(sql, (tx) => tx`INSERT INTO t VALUES (1)`), /duplicate key/);
  assert.deepEqual((await sql`SELECT n FROM t ORDER BY n`).map((r) => r.n), [1]);

  // Plain queries pipelined on every connection, transactions among them.
  const work: Promise<unknown>[] = [];
  for (let i = 0; i < 600; i++) {
    work.push(sql`SELECT pg_sleep(0.0005)`);
    if (i % 3 === 0) {
      work.push(transaction(sql, async (tx) => {
        await tx`INSERT INTO t VALUES (${1000 + i})`;
        if (i % 9 === 0) throw new Error("rolled back");
      }));
    }
  }
  const results = await Promise.allSettled(work);
  const unexpected = results.filter((r) =>
    r.status === "rejected" && !/rolled back/.test(String(r.reason))
  );
  assert.deepEqual(unexpected, []);
  const [{ kept }] = await sql`SELECT count(*)::int AS kept FROM t WHERE n >= 1000`;
  assert.equal(kept, 200 - 67, "every transaction but the rolled-back ones committed");
  const [{ open }] = await sql`SELECT count(*)::int AS open FROM pg_stat_activity
      WHERE datname = current_database() AND state LIKE 'idle in transaction%'`;
  assert.equal(open, 0, "no connection left inside a transaction");
});
