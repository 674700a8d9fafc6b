// Authenticated requests are answered from an in-process cache of live sessions and clients
// (auth/live-credentials.ts), kept true by the database's change feed: two instances over
// one database, as in production. A logout, a disable or a revocation on one instance
// refuses the token on the other within moments and on its own at once; a feed that loses
// its connection is not trusted until it listens again.
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { createServices } from "@/services.ts";
import { silentLogger } from "@/core/log.ts";
import { createTestApp, followAuthChanges } from "./helpers/app.ts";
import { signIn, signUp } from "./helpers/users.ts";

const ADMIN = { INITIAL_ADMIN_EMAIL: "root@example.com", INITIAL_ADMIN_PASSWORD: "admin pw 123" };

/**
 * Another instance over the app's database: its own services, cache and change feed; or,
 * `deaf`, a cache trusted with no feed at all, as if every notification were late.
 */
async function secondInstance(h: Awaited<ReturnType<typeof createTestApp>>, deaf = false) {
  const deps = await createServices(h.config, h.sql, silentLogger);
  const feed = deaf
    ? { close: () => Promise.resolve(deps.auth.live.setListening(false)) }
    : await followAuthChanges(h.config.databaseUrl!, deps);
  if (deaf) deps.auth.live.setListening(true);
  const app = createApp(deps);
  const request = async (path: string, headers: HeadersInit, method = "GET") => {
    const res = await app.fetch(new Request(`http://localhost${path}`, { method, headers }), {
      remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40001 },
    });
    await res.body?.cancel();
    return res.status;
  };
  return {
    deps,
    status: (path: string, headers: HeadersInit) => request(path, headers),
    post: (path: string, headers: HeadersInit) => request(path, headers, "POST"),
    async [Symbol.asyncDispose]() {
      await feed.close();
      deps.engine.close();
    },
  };
}

/** How long until `check` holds, polling every 2 ms; throws after 5 s. */
async function msUntil(check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > 5_000) throw new Error("still not so after 5 s");
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - started;
}

Deno.test("live credentials: a logout or a disable on one instance refuses the token on the other", async () => {
  await using h = await createTestApp(ADMIN);
  await using b = await secondInstance(h);
  const admin = await signIn(h, ADMIN.INITIAL_ADMIN_EMAIL, ADMIN.INITIAL_ADMIN_PASSWORD);

  const alice = await signUp(h);
  assert.equal(await b.status("/auth/me", alice.auth), 200);
  const hits = b.deps.auth.live.hits;
  assert.equal(await b.status("/auth/me", alice.auth), 200);
  assert.equal(b.deps.auth.live.hits, hits + 1, "the second request was answered from the cache");

  const logout = await h.request("/auth/logout-all", { method: "POST", headers: alice.auth });
  assert.equal(logout.status, 204);
  // On the instance that did it, at once; on the other, as soon as the database says so.
  assert.equal(await h.request("/auth/me", { headers: alice.auth }).then((r) => r.status), 401);
  const afterLogout = await msUntil(async () => (await b.status("/auth/me", alice.auth)) === 401);

  const bob = await signUp(h);
  assert.equal(await b.status("/auth/me", bob.auth), 200);
  assert.equal(await b.status("/auth/me", bob.auth), 200);
  const disabled = await h.request(`/admin/users/${bob.userId}/disable`, {
    method: "POST",
    headers: admin.headers,
  });
  assert.equal(disabled.status, 200);
  assert.equal(await h.request("/auth/me", { headers: bob.auth }).then((r) => r.status), 401);
  const afterDisable = await msUntil(async () => (await b.status("/auth/me", bob.auth)) === 401);
  console.log(
    `refused on the other instance ${afterLogout.toFixed(1)} ms after a logout, ` +
      `${afterDisable.toFixed(1)} ms after a disable (the cache keeps an entry up to 60 s)`,
  );
});

Deno.test("live credentials: what an instance revokes itself is refused there at once, notification or not", async () => {
  await using h = await createTestApp(ADMIN);
  await using deaf = await secondInstance(h, true);
  const admin = await signIn(h, ADMIN.INITIAL_ADMIN_EMAIL, ADMIN.INITIAL_ADMIN_PASSWORD);
  const erin = await signUp(h);
  assert.equal(await deaf.status("/auth/me", erin.auth), 200);
  assert.equal(await deaf.status("/auth/me", erin.auth), 200);
  assert.ok(deaf.deps.auth.live.hits > 0, "answered from the cache");
  assert.equal(await deaf.post("/auth/logout-all", erin.auth), 204);
  assert.equal(await deaf.status("/auth/me", erin.auth), 401, "after its own logout-all");

  const frank = await signUp(h);
  assert.equal(await deaf.status("/auth/me", frank.auth), 200);
  assert.equal(await deaf.status("/auth/me", frank.auth), 200);
  assert.equal(await deaf.post(`/admin/users/${frank.userId}/disable`, admin.headers), 200);
  assert.equal(await deaf.status("/auth/me", frank.auth), 401, "after its own disable");
});

Deno.test("live credentials: a feed that lost its connection is not trusted; what changed meanwhile holds", async () => {
  await using h = await createTestApp();
  await using b = await secondInstance(h);
  const carol = await signUp(h);
  assert.equal(await b.status("/auth/me", carol.auth), 200);
  assert.equal(await b.status("/auth/me", carol.auth), 200);
  assert.ok(b.deps.auth.live.size > 0);

  // Both feeds' connections go, and the session is revoked behind the API's back while
  // nobody listens: that notification is lost for good.
  await h.sql`
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = 'pomodex-listen-pomodex_auth' AND datname = current_database()`;
  await h.sql`UPDATE sessions SET revoked_at = now(), revoked_reason = 'test'
    WHERE user_id = ${carol.userId}`;
  await msUntil(() => Promise.resolve(!b.deps.auth.live.listening));
  assert.equal(await b.status("/auth/me", carol.auth), 401, "not listening: the database answers");
  await msUntil(() => Promise.resolve(b.deps.auth.live.listening));
  assert.equal(await b.status("/auth/me", carol.auth), 401, "listening again, with nothing stale");
  assert.equal(await h.request("/auth/me", { headers: carol.auth }).then((r) => r.status), 401);

  // And the cache is used again.
  const dave = await signUp(h);
  assert.equal(await b.status("/auth/me", dave.auth), 200);
  const hits = b.deps.auth.live.hits;
  assert.equal(await b.status("/auth/me", dave.auth), 200);
  assert.equal(b.deps.auth.live.hits, hits + 1);
});
