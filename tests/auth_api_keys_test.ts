// Personal API keys (seed 003's time-limited tokens): shown once, stored hashed, die on time.
import assert from "node:assert/strict";
import { adjustableClock } from "@/core/clock.ts";
import { requireScope, requireUser } from "@/web/http/auth.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { createErrorHandler } from "@/web/http/errors.ts";
import { createRouter } from "@/web/http/router.ts";
import { silentLogger } from "@/core/log.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";

function createKey(h: TestApp, headers: Record<string, string>, json: unknown) {
  return h.request("/auth/api-keys", { method: "POST", headers, json });
}

async function me(h: TestApp, key: string): Promise<number> {
  const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${key}` } });
  await res.body?.cancel();
  return res.status;
}

Deno.test("personal API keys", async (t) => {
  const clock = adjustableClock();
  await using h = await createTestApp({}, { clock });
  let alice = await signIn(h, "alice@example.com");
  const bob = await signIn(h, "bob@example.com");

  await t.step("created with a lifetime, shown once, prefixed, stored as SHA-256", async () => {
    const res = await createKey(h, alice.headers, { name: "laptop", lifetime: "1d" });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.match(body.key, /^pdx_[A-Za-z0-9_-]{43}$/);
    assert.ok(!body.key.slice(4).includes("."));
    assert.equal(body.name, "laptop");
    assert.deepEqual(body.scopes, ["projects:read", "projects:write"]);
    const lifetime = Date.parse(body.expires_at) - Date.parse(body.created_at);
    assert.equal(lifetime, 86400_000);
    const [row] = await h.sql`SELECT key_hash FROM api_keys WHERE id = ${body.id}`;
    assert.equal(row.keyHash, await sha256Hex(body.key));
    const leaked = await h.sql`
      SELECT 1 FROM api_keys WHERE key_hash = ${body.key} OR name = ${body.key}`;
    assert.equal(leaked.length, 0);
  });

  await t.step("every lifetime is what it says; others are 422", async () => {
    const hours = { "1h": 1, "12h": 12, "1d": 24, "7d": 168, "30d": 720 };
    for (const [lifetime, n] of Object.entries(hours)) {
      const body = await (await createKey(h, alice.headers, { name: lifetime, lifetime })).json();
      const ms = Date.parse(body.expires_at) - Date.parse(body.created_at);
      assert.equal(ms, n * 3600_000, lifetime);
      await h.request(`/auth/api-keys/${body.id}`, { method: "DELETE", headers: alice.headers })
        .then((r) => r.body?.cancel());
    }
    for (const lifetime of ["2h", "90d", "", 3600]) {
      const res = await createKey(h, alice.headers, { name: "bad", lifetime });
      assert.equal(res.status, 422, String(lifetime));
      await res.body?.cancel();
    }
  });

  await t.step("usable as a bearer credential", async () => {
    const { key } = await (await createKey(h, alice.headers, { name: "ci", lifetime: "1h" }))
      .json();
    const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).id, alice.userId);
    const [row] = await h
      .sql`SELECT last_used_at FROM api_keys WHERE key_hash = ${await sha256Hex(key)}`;
    assert.ok(row.lastUsedAt, "last_used_at is recorded");
  });

  await t.step("the list shows metadata, never a key", async () => {
    const res = await h.request("/auth/api-keys", { headers: alice.headers });
    assert.equal(res.status, 200);
    const list = await res.json();
    assert.equal(list.length, 2);
    for (const item of list) {
      assert.deepEqual(
        Object.keys(item).sort(),
        ["created_at", "expires_at", "id", "last_used_at", "name", "scopes"],
      );
    }
    const bobs = await (await h.request("/auth/api-keys", { headers: bob.headers })).json();
    assert.deepEqual(bobs, []);
  });

  await t.step("bad input is 422", async () => {
    const bad = [
      { name: "x", lifetime: "2d" },
      { name: "", lifetime: "1h" },
      { name: "x", lifetime: "1h", scopes: ["admin"] },
      { name: "x", lifetime: "1h", scopes: [] },
      { lifetime: "1h" },
    ];
    for (const json of bad) {
      const res = await createKey(h, alice.headers, json);
      assert.equal(res.status, 422, JSON.stringify(json));
      await res.body?.cancel();
    }
  });

  await t.step("revoked: fails at once; another user's key is a 404", async () => {
    const created = await (await createKey(h, alice.headers, { name: "tmp", lifetime: "7d" }))
      .json();
    assert.equal(await me(h, created.key), 200);
    const asBob = await h.request(`/auth/api-keys/${created.id}`, {
      method: "DELETE",
      headers: bob.headers,
    });
    assert.equal(asBob.status, 404);
    assert.equal((await asBob.json()).code, "not_found");
    assert.equal(await me(h, created.key), 200, "bob could not revoke it");
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      const missing = await h.request(`/auth/api-keys/${id}`, {
        method: "DELETE",
        headers: alice.headers,
      });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    }
    const res = await h.request(`/auth/api-keys/${created.id}`, {
      method: "DELETE",
      headers: alice.headers,
    });
    assert.equal(res.status, 204);
    assert.equal(await me(h, created.key), 401);
    const list = await (await h.request("/auth/api-keys", { headers: alice.headers })).json();
    assert.ok(!list.some((k: { id: string }) => k.id === created.id));
  });

  await t.step("expired: fails at once", async () => {
    const { key } = await (await createKey(h, alice.headers, { name: "short", lifetime: "1h" }))
      .json();
    assert.equal(await me(h, key), 200);
    clock.advance(3600_000 + 1000);
    assert.equal(await me(h, key), 401);
    alice = await signIn(h, "alice@example.com"); // her access token expired meanwhile
  });

  await t.step("keys cannot manage keys or log out everywhere (a session must)", async () => {
    const { key } = await (await createKey(h, alice.headers, { name: "k", lifetime: "1d" }))
      .json();
    const asKey = { authorization: `Bearer ${key}` };
    const mint = await createKey(h, asKey, { name: "more", lifetime: "30d" });
    assert.equal(mint.status, 403);
    await mint.body?.cancel();
    const all = await h.request("/auth/logout-all", { method: "POST", headers: asKey });
    assert.equal(all.status, 403);
    await all.body?.cancel();
    const unknown = await h.request("/auth/me", {
      headers: { authorization: "Bearer pdx_doesnotexist" },
    });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.headers.get("www-authenticate"), "Bearer");
    await unknown.body?.cancel();
  });

  await t.step("scopes limit what a key may do (requireScope)", async () => {
    const app = createRouter();
    app.use("*", requireUser(h.deps));
    app.get("/read", requireScope("projects:read"), (c) => c.json(c.var.actor));
    app.post("/write", requireScope("projects:write"), (c) => c.json(c.var.actor));
    app.onError(createErrorHandler(silentLogger));
    const call = (method: string, path: string, authorization: string) =>
      app.fetch(new Request(`http://x${path}`, { method, headers: { authorization } }));

    const { key } = await (await createKey(h, alice.headers, {
      name: "reader",
      lifetime: "1d",
      scopes: ["projects:read"],
    })).json();
    const read = await call("GET", "/read", `Bearer ${key}`);
    assert.equal(read.status, 200);
    assert.deepEqual(await read.json(), {
      userId: alice.userId,
      role: "user",
      via: "api_key",
      scopes: ["projects:read"],
    });
    const write = await call("POST", "/write", `Bearer ${key}`);
    assert.equal(write.status, 403);
    assert.equal((await write.json()).code, "insufficient_scope");
    const session = await call("POST", "/write", `Bearer ${alice.accessToken}`);
    assert.equal(session.status, 200, "a login session has every scope");
    assert.equal((await session.json()).via, "session");
  });
});
