// One inactivity-checker pass over 10,000 running projects of which 100 are idle, in
// PostgreSQL, without the snapshots themselves: its time and the queries it issues.
import postgres from "postgres";
import type { Sql } from "@/infra/db/database.ts";
import { runInactivityCheck } from "@/jobs/inactivity.ts";
import { silentLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { loadConfig } from "@/core/config.ts";
import { createTestDatabase } from "@/tests/helpers/db.ts";
import { type BenchRow, row, timeEach } from "./stats.ts";
import { percentile } from "@/tests/helpers/stats.ts";

const PASSES = 6;
const FLOOR_PER_PASS = 20;

export async function benchChecker(): Promise<{ rows: BenchRow[] }> {
  // Torn down in reverse: the checker's engine client, its pool, the database, the directory.
  await using cleanup = new AsyncDisposableStack();
  const dataDir = await Deno.makeTempDir();
  cleanup.defer(() => Deno.remove(dataDir, { recursive: true }));
  const db = cleanup.use(await createTestDatabase());
  let queries = 0;
  const counted = postgres(db.url, {
    max: 4,
    transform: postgres.camel,
    onnotice: () => {},
    debug: () => void queries++,
  }) as unknown as Sql;
  cleanup.defer(() => counted.end({ timeout: 5 }));
  const [user] = await db.sql`INSERT INTO users (email, password_hash)
    VALUES ('checker@example.com', 'x') RETURNING id`;
  await db.sql`
    INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix, container_id,
      last_active_at)
    SELECT ${user.id}, 'p' || i, 'running', 'k', 'projects/x/', 'c' || i,
      CASE WHEN i <= 100 THEN now() - interval '2 hours' ELSE now() - interval '1 minute' END
    FROM generate_series(1, 10000) AS i`;
  await db.sql`ANALYZE projects`;
  const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: db.url, CRON: "false" });
  const deps = await createServices(config, counted, silentLogger);
  cleanup.defer(() => deps.engine.close());
  const noop = () => Promise.resolve();
  const noSessions = () => Promise.resolve(0);

  // Each pass claims (and so takes out) the 100 idle ones; put them back between passes.
  const reset = () => db.sql`UPDATE projects SET status = 'running' WHERE status = 'snapshotting'`;
  const samples: number[] = [];
  const roundTrips: number[] = [];
  let perPass = 0;
  // The floor, one round trip, on the checker's own pool; its samples and the passes take
  // turns (which goes first, in turn), so a slow moment of the machine falls on both.
  const floorSamples = () =>
    timeEach(FLOOR_PER_PASS, () => counted`SELECT 1`.then(() => {})).then((ms) =>
      roundTrips.push(...ms)
    );
  const pass = async () => {
    await reset();
    queries = 0;
    const [ms] = await timeEach(1, async () => {
      const report = await runInactivityCheck(deps, { stop: noop, sshSessions: noSessions });
      if (report.stopped.length !== 100) throw new Error(`stopped ${report.stopped.length}`);
    });
    samples.push(ms);
    perPass = queries;
  };
  await floorSamples(); // warm the pool's connections
  roundTrips.length = 0;
  for (let i = 0; i < PASSES; i++) {
    for (const step of i % 2 ? [pass, floorSamples] : [floorSamples, pass]) await step();
  }
  const floor = percentile(roundTrips, 50);
  return {
    rows: [
      row(
        `checker pass, 10,000 projects (100 idle), p50 of ${PASSES}`,
        percentile(samples, 50),
        "ms",
      ),
      row("queries issued per pass", perPass, "count"),
      row(
        `checker time per query issued (vs one SELECT 1 round trip on its pool, p50 of ${
          PASSES * FLOOR_PER_PASS
        } taken between the passes)`,
        (percentile(samples, 50) / perPass) * 1000,
        "µs",
        floor * 1000,
      ),
    ],
  };
}
