// Requests per second at 50 concurrent clients against the real server process, each next
// to its floor (GET /health: the same HTTP stack doing nothing), and the server's peak RSS.
import { signUp } from "@/tests/helpers/users.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, load, loadsInTurn, row } from "./stats.ts";
import { percentile } from "@/tests/helpers/stats.ts";

const CONCURRENCY = 50;
const SECONDS = 5;

export async function benchHttp(): Promise<{ rows: BenchRow[] }> {
  await using server = await startBenchServer("http", { RATE_LIMIT_LOGIN_PER_MINUTE: "100000" });
  const { auth } = await signUp(server.url);
  // 1,000 projects of this user, straight into the database (no containers needed).
  const [{ id: userId }] = await server.db.sql`SELECT id FROM users LIMIT 1`;
  await server.db.sql`
    INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix, created_at)
    SELECT ${userId}, 'project-' || i, 'stopped', 'k', 'projects/x/',
           now() - i * interval '1 second'
    FROM generate_series(1, 1000) AS i`;
  await server.db.sql`UPDATE users SET project_quota = 2000`;

  const get = (path: string, headers: HeadersInit = {}) => async () => {
    const res = await fetch(`${server.url}${path}`, { headers });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
  };
  await load(1, CONCURRENCY, get("/health")); // warm up
  // The floor and the endpoints take turns, a second at a time.
  const { health, me, list } = await loadsInTurn(SECONDS, SECONDS, CONCURRENCY, {
    health: get("/health"),
    me: get("/auth/me", auth),
    list: get("/projects", auth),
  });
  const page = await load(SECONDS, 1, get("/projects?limit=50", auth));

  const rows: BenchRow[] = [
    row(`GET /health req/s at ${CONCURRENCY} clients (floor)`, health.perSecond, "req/s"),
    // For rates the ratio is the share of the bare HTTP stack's rate an endpoint keeps.
    row(`GET /auth/me req/s at ${CONCURRENCY} clients`, me.perSecond, "req/s", health.perSecond),
    row("GET /auth/me p50", percentile(me.latencies, 50), "ms", percentile(health.latencies, 50)),
    row("GET /auth/me p99", percentile(me.latencies, 99), "ms", percentile(health.latencies, 99)),
    row(
      `GET /projects req/s at ${CONCURRENCY} clients (1,000 projects, page of 50)`,
      list.perSecond,
      "req/s",
      health.perSecond,
    ),
    row(
      "GET /projects p50",
      percentile(list.latencies, 50),
      "ms",
      percentile(health.latencies, 50),
    ),
    row(
      "GET /projects p99",
      percentile(list.latencies, 99),
      "ms",
      percentile(health.latencies, 99),
    ),
    row("GET /projects p50, one client", percentile(page.latencies, 50), "ms"),
    row("GET /projects p99, one client", percentile(page.latencies, 99), "ms"),
    row("errors during the load", health.errors + me.errors + list.errors + page.errors, "count"),
  ];
  return { rows };
}
