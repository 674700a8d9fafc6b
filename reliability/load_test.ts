/**
 * Load: 200 concurrent API clients for 60 s against one real server process, doing a mix of
 * login, list, get and activity. No 5xx, no error but the rate limits a few abusive
 * clients are meant to hit, and the server's memory back near its baseline afterwards.
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "@/tests/helpers/db.ts";
import { call, clientIp, errorShapeProblem, rng } from "./helpers/api.ts";
import { max, percentile } from "@/tests/helpers/stats.ts";
import { signUp, type TestUser } from "@/tests/helpers/users.ts";
import { sleep, startServer } from "@/tests/helpers/server.ts";
import { scratchDir } from "./helpers/workspace.ts";
import { messageOf } from "@/core/errors.ts";

const CLIENTS = Number(Deno.env.get("RELIABILITY_LOAD_CLIENTS") ?? 200);
const SECONDS = Number(Deno.env.get("RELIABILITY_LOAD_SECONDS") ?? 60);
const USERS = 50;
const PROJECTS_PER_USER = 3;
/** Clients that share one IP and only log in: they must get 429s, and only they. */
const ABUSIVE = 5;
const SEED = Number(Deno.env.get("RELIABILITY_SEED") ?? 20240917);
/** "Back to baseline": within this many MB of it, or this factor, whichever is larger. */
const RSS_TOLERANCE_MB = 50;
const RSS_TOLERANCE_FACTOR = 1.3;
// V8 gives its grown heap back when its memory reducer runs, some 10-20 s after the load ends.
const RSS_SETTLE_MS = 30_000;

type Endpoint = "login" | "list" | "get" | "activity" | "login (abusive)";

interface Stats {
  statuses: Map<string, Map<number | string, number>>;
  latencies: Map<string, number[]>;
  failures: string[];
}

function record(stats: Stats, ep: Endpoint, status: number | string, ms: number) {
  const s = stats.statuses.get(ep) ?? new Map();
  s.set(status, (s.get(status) ?? 0) + 1);
  stats.statuses.set(ep, s);
  const l = stats.latencies.get(ep) ?? [];
  l.push(ms);
  stats.latencies.set(ep, l);
}

Deno.test({
  name: `load: ${CLIENTS} concurrent clients for ${SECONDS} s, no 5xx, memory back to baseline`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Torn down in reverse: the server, then the database, then the directory.
    await using dir = await scratchDir("pomodex-rel-load-");
    await using db = await createTestDatabase();
    const dataDir = dir.path;
    await using server = await startServer({
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      // The load generator stands in for a proxy in front of many clients: each client
      // has its own address, as in production.
      TRUSTED_PROXIES: "127.0.0.1",
      DATABASE_POOL_SIZE: "10",
      // The load needs no sandbox: no egress proxy to start (nor a port to find for it).
      EGRESS_PROXY: "off",
    }, { name: "load-server" });
    const base = server.url;
    console.log(`seed ${SEED}; server pid ${server.pid} on ${base}`);

    // Users registered through the API (one address each: the register limit is per IP),
    // projects as rows (stopped: no container needed to read or touch them).
    const users: TestUser[] = [];
    for (let i = 0; i < USERS; i += 10) {
      users.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(10, USERS - i) },
            (_, j) => signUp(base, { ip: clientIp(60_000 + i + j) }),
          ),
        ),
      );
    }
    const projects = new Map<string, string[]>();
    for (const u of users) {
      const ids: string[] = [];
      for (let k = 0; k < PROJECTS_PER_USER; k++) {
        const id = crypto.randomUUID();
        await db.sql`INSERT INTO projects ${
          db.sql({
            id,
            userId: u.userId,
            name: `load-${k}-${id.slice(0, 6)}`,
            status: "stopped",
            sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForLoadTestsOnly load",
            containerName: `pomodex-${id}`,
            gcsPrefix: `projects/${id}/`,
          })
        }`;
        ids.push(id);
      }
      projects.set(u.userId, ids);
    }

    // Warm up (JIT, pools), then the baseline.
    for (let i = 0; i < 200; i++) {
      const u = users[i % USERS];
      const a = await call(base, "GET", "/projects", { token: u.token, ip: clientIp(1) });
      assert.equal(a.status, 200);
    }
    await sleep(1000);
    const baseline = server.rssMb()!;

    const stats: Stats = { statuses: new Map(), latencies: new Map(), failures: [] };
    let peak = baseline;
    const sampler = setInterval(() => {
      const rss = server?.rssMb();
      if (rss && rss > peak) peak = rss;
    }, 250);

    const started = performance.now();
    const endAt = Date.now() + SECONDS * 1000;
    const random = rng(SEED);
    const abusiveIp = clientIp(99_999);

    const client = async (n: number) => {
      const abusive = n < ABUSIVE;
      const ip = abusive ? abusiveIp : clientIp(n + 1);
      const user = users[n % USERS];
      const own = projects.get(user.userId)!;
      let token = user.token;
      // Each client signs in first, as a fresh client would.
      let first = true;
      while (Date.now() < endAt) {
        const r = random.next();
        let ep: Endpoint, method: string, path: string, json: unknown;
        if (abusive || first || r < 0.01) {
          ep = abusive ? "login (abusive)" : "login";
          method = "POST";
          path = "/auth/login";
          json = { email: user.email, password: user.password };
        } else if (r < 0.40) {
          ep = "list";
          method = "GET";
          const q = random.pick(["", "?limit=2", "?status=stopped", "?q=load-1", "?limit=100"]);
          path = `/projects${q}`;
        } else if (r < 0.75) {
          ep = "get";
          method = "GET";
          path = `/projects/${random.pick(own)}`;
        } else {
          ep = "activity";
          method = "POST";
          path = `/projects/${random.pick(own)}/activity`;
        }
        first = false;
        const t0 = performance.now();
        try {
          const a = await call(base, method, path, { json, token, ip, timeoutMs: 30_000 });
          record(stats, ep, a.status, a.ms);
          const expected = ep === "activity" ? 204 : 200;
          if (a.status === expected) {
            if (ep === "login") token = a.body.access_token;
          } else if (a.status === 429 && ep === "login (abusive)") {
            // the limit doing its job; the answer must still say so properly
            const bad = errorShapeProblem(a);
            if (bad || a.body.code !== "rate_limited" || !a.headers.get("retry-after")) {
              stats.failures.push(`${ep} 429 without rate_limited/Retry-After: ${a.text}`);
            }
            await sleep(50);
          } else {
            stats.failures.push(
              `${method} ${path} (${ep}) -> ${a.status} ${a.text.slice(0, 200)}`,
            );
          }
        } catch (err) {
          record(stats, ep, "network error", performance.now() - t0);
          stats.failures.push(`${method} ${path} (${ep}) -> ${messageOf(err)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    const elapsed = (performance.now() - started) / 1000;
    clearInterval(sampler);

    // Memory after: give it up to RSS_SETTLE_MS to come back within the tolerance.
    const limit = Math.max(baseline + RSS_TOLERANCE_MB, baseline * RSS_TOLERANCE_FACTOR);
    const loadEnded = performance.now();
    let after = server.rssMb()!;
    while (after > limit && performance.now() - loadEnded < RSS_SETTLE_MS) {
      await sleep(250);
      after = server.rssMb()!;
    }
    const settledMs = Math.round(performance.now() - loadEnded);

    // Report.
    let total = 0;
    const all: number[] = [];
    console.log(
      `\nload: ${CLIENTS} clients (${ABUSIVE} abusive logins from one IP), ${elapsed.toFixed(1)} s`,
    );
    for (const [ep, counts] of stats.statuses) {
      const lat = stats.latencies.get(ep)!.sort((a, b) => a - b);
      all.push(...lat);
      const n = lat.length;
      total += n;
      const codes = [...counts].map(([s, c]) => `${s}: ${c}`).join(", ");
      console.log(
        `  ${ep.padEnd(16)} n=${String(n).padStart(6)}  p50 ${percentile(lat, 50).toFixed(1)} ms` +
          `  ${highest(lat)} ms  statuses {${codes}}`,
      );
    }
    all.sort((a, b) => a - b);
    console.log(
      `  total ${total} requests, ${(total / elapsed).toFixed(0)} req/s, p50 ${
        percentile(all, 50).toFixed(1)
      } ms, ${highest(all)} ms`,
    );
    console.log(
      `  server RSS: baseline ${baseline.toFixed(1)} MB, peak ${peak.toFixed(1)} MB, after ${
        after.toFixed(1)
      } MB (${settledMs} ms after the load; limit ${limit.toFixed(1)} MB)`,
    );
    console.log(`  server log lines by level: ${JSON.stringify(server.levels)}`);
    const errors = server.problems.filter((l) => l.level === "error");
    for (const line of errors.slice(0, 5)) console.log(`  server error: ${JSON.stringify(line)}`);

    const fiveXx = [...stats.statuses.values()].flatMap((m) => [...m])
      .filter(([s]) => typeof s === "number" && s >= 500).reduce((n, [, c]) => n + c, 0);
    assert.equal(fiveXx, 0, "no 5xx");
    assert.deepEqual(
      stats.failures.slice(0, 20),
      [],
      `${stats.failures.length} unexpected answers`,
    );
    const abusive429 = stats.statuses.get("login (abusive)")?.get(429) ?? 0;
    assert.ok(abusive429 > 0, "the abusive clients were rate limited");
    assert.ok((stats.statuses.get("login")?.get(200) ?? 0) >= CLIENTS - ABUSIVE, "logins worked");
    assert.deepEqual(errors.slice(0, 5), [], "no error in the server log");
    assert.ok(after <= limit, `RSS ${after.toFixed(1)} MB is back within ${limit.toFixed(1)} MB`);
    const ready = await call(base, "GET", "/ready");
    assert.equal(ready.status, 200, "still ready after the load");
  },
});

/** The p99, or the max when there are too few samples for a p99 to be more than the max. */
function highest(latencies: number[]): string {
  return latencies.length > 100
    ? `p99 ${percentile(latencies, 99).toFixed(1)}`
    : `max ${max(latencies).toFixed(1)}`;
}
