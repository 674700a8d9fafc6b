// Administrators: the initial admin, users (disable/enable), everyone's projects.
import assert from "node:assert/strict";
import { ensureInitialAdmin } from "@/auth/users.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";
import { insertProject } from "./helpers/projects.ts";

const adminEnv = {
  INITIAL_ADMIN_EMAIL: "root@example.com",
  INITIAL_ADMIN_PASSWORD: "admin password 1",
};

async function statusOf(res: Promise<Response>): Promise<number> {
  const r = await res;
  await r.body?.cancel();
  return r.status;
}

const addProject = (h: TestApp, userId: string, name: string, status = "running") =>
  insertProject(h.sql, userId, { name, status, gcsPrefix: "p/" + name });

Deno.test("the initial admin", async (t) => {
  {
    await using h = await createTestApp(adminEnv);
    await t.step("is created at start from INITIAL_ADMIN_EMAIL / _PASSWORD", async () => {
      const admin = await signIn(h, "root@example.com", "admin password 1");
      const me = await (await h.request("/auth/me", { headers: admin.headers })).json();
      assert.equal(me.role, "admin");
      const [audit] = await h.sql`
        SELECT user_id FROM audit_log WHERE event = 'admin.initial_admin_created'`;
      assert.equal(audit.userId, admin.userId);
    });

    await t.step("again and again, even in parallel, makes no second one", async () => {
      const outcomes = await Promise.all(
        Array.from({ length: 5 }, () => ensureInitialAdmin(h.deps.auth, h.config.initialAdmin)),
      );
      assert.deepEqual(new Set(outcomes), new Set(["admin_exists"]));
      const other = await ensureInitialAdmin(h.deps.auth, {
        email: "second@example.com",
        password: "another password",
      });
      assert.equal(other, "admin_exists");
      const admins = await h.sql`SELECT 1 FROM users WHERE role = 'admin'`;
      assert.equal(admins.length, 1);
    });
  }

  await t.step("racing first starts over an empty database make exactly one", async () => {
    await using fresh = await createTestApp();
    const outcomes = await Promise.all(
      Array.from({ length: 4 }, () =>
        ensureInitialAdmin(fresh.deps.auth, {
          email: adminEnv.INITIAL_ADMIN_EMAIL,
          password: adminEnv.INITIAL_ADMIN_PASSWORD,
        })),
    );
    assert.deepEqual(outcomes.sort(), [
      "admin_exists",
      "admin_exists",
      "admin_exists",
      "created",
    ]);
  });

  await t.step("an existing non-admin account with that email is never promoted", async () => {
    await using fresh = await createTestApp();
    await signIn(fresh, "root@example.com", "squatter password");
    const outcome = await ensureInitialAdmin(fresh.deps.auth, {
      email: "ROOT@example.com",
      password: "admin password 1",
    });
    assert.equal(outcome, "email_taken");
    const admins = await fresh.sql`SELECT 1 FROM users WHERE role = 'admin'`;
    assert.equal(admins.length, 0);
  });
});

Deno.test("admin routes", async (t) => {
  await using h = await createTestApp({ ...adminEnv, RATE_LIMIT_LOGIN_PER_MINUTE: "1000" });
  const admin = await signIn(h, "root@example.com", "admin password 1");
  const carol = await signIn(h, "carol@example.com");
  const dave = await signIn(h, "dave@example.com");

  await t.step("non-admins get 403, anonymous callers 401", async () => {
    const routes: [string, string][] = [
      ["GET", "/admin/users"],
      ["GET", "/admin/projects"],
      ["GET", "/admin/clients"],
      ["POST", "/admin/clients"],
      ["POST", `/admin/users/${dave.userId}/disable`],
      ["POST", `/admin/users/${dave.userId}/enable`],
      ["PATCH", `/admin/users/${dave.userId}`],
      ["POST", `/admin/clients/${crypto.randomUUID()}/disable`],
    ];
    for (const [method, path] of routes) {
      const forbidden = await h.request(path, { method, headers: carol.headers });
      assert.equal(forbidden.status, 403, `${method} ${path}`);
      assert.equal((await forbidden.json()).code, "forbidden");
      const anonymous = await h.request(path, { method });
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get("www-authenticate"), "Bearer");
      await anonymous.body?.cancel();
    }
  });

  await t.step("an admin's API key is not an admin session", async () => {
    const created = await (await h.request("/auth/api-keys", {
      method: "POST",
      headers: admin.headers,
      json: { name: "admin key", lifetime: "1h" },
    })).json();
    const res = h.request("/admin/users", {
      headers: { authorization: `Bearer ${created.key}` },
    });
    assert.equal(await statusOf(res), 403);
  });

  await t.step("list users, newest first, paged with X-Next-Cursor, filtered by ?q", async () => {
    const all = await (await h.request("/admin/users", { headers: admin.headers })).json();
    assert.deepEqual(
      all.map((u: { email: string }) => u.email),
      ["dave@example.com", "carol@example.com", "root@example.com"],
    );
    assert.deepEqual(
      Object.keys(all[0]).sort(),
      ["created_at", "disabled_at", "email", "id", "project_quota", "role"],
    );
    const first = await h.request("/admin/users?limit=2", { headers: admin.headers });
    const cursor = first.headers.get("x-next-cursor");
    assert.ok(cursor);
    assert.equal((await first.json()).length, 2);
    const second = await h.request(`/admin/users?limit=2&cursor=${cursor}`, {
      headers: admin.headers,
    });
    assert.equal(second.headers.get("x-next-cursor"), null);
    assert.deepEqual((await second.json()).map((u: { email: string }) => u.email), [
      "root@example.com",
    ]);
    const found = await (await h.request("/admin/users?q=CAROL", { headers: admin.headers }))
      .json();
    assert.deepEqual(found.map((u: { id: string }) => u.id), [carol.userId]);
    const bad = h.request("/admin/users?cursor=nonsense", { headers: admin.headers });
    assert.equal(await statusOf(bad), 422);
  });

  await t.step("disabling a user kills every session and key of theirs at once", async () => {
    const second = await signIn(h, "dave@example.com");
    const key = (await (await h.request("/auth/api-keys", {
      method: "POST",
      headers: dave.headers,
      json: { name: "dave's key", lifetime: "1d" },
    })).json()).key;
    const me = (authorization: string) => h.request("/auth/me", { headers: { authorization } });
    assert.equal(await statusOf(me(dave.headers.authorization)), 200);

    const res = await h.request(`/admin/users/${dave.userId}/disable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.id, dave.userId);
    assert.ok(body.disabled_at);

    assert.equal(await statusOf(me(dave.headers.authorization)), 401);
    assert.equal(await statusOf(me(second.headers.authorization)), 401);
    assert.equal(await statusOf(me(`Bearer ${key}`)), 401);
    const refresh = h.request("/auth/refresh", {
      method: "POST",
      json: { refresh_token: dave.refreshToken },
    });
    assert.equal(await statusOf(refresh), 401);
    const login = await h.request("/auth/login", {
      method: "POST",
      json: { email: "dave@example.com", password: "correct horse battery" },
    });
    assert.equal(login.status, 401);
    assert.equal((await login.json()).code, "invalid_credentials");
    assert.equal(await statusOf(me(carol.headers.authorization)), 200, "others unaffected");

    const [audit] = await h.sql`
      SELECT user_id, actor_id, ip, request_id, details FROM audit_log
      WHERE event = 'admin.user_disabled'`;
    assert.equal(audit.userId, dave.userId);
    assert.equal(audit.actorId, admin.userId);
    assert.ok(audit.ip && audit.requestId);
    assert.equal(audit.details.sessionsRevoked, 2);
    assert.equal(audit.details.apiKeysRevoked, 1);

    // Re-enabled: a new login works; the old sessions and key stay dead.
    const enabled = await h.request(`/admin/users/${dave.userId}/enable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(enabled.status, 200);
    assert.equal((await enabled.json()).disabled_at, null);
    const again = await signIn(h, "dave@example.com");
    assert.equal(await statusOf(me(again.headers.authorization)), 200);
    assert.equal(await statusOf(me(dave.headers.authorization)), 401);
    assert.equal(await statusOf(me(`Bearer ${key}`)), 401);
    const events = await h.sql`
      SELECT 1 FROM audit_log WHERE event = 'admin.user_enabled' AND user_id = ${dave.userId}`;
    assert.equal(events.length, 1);
  });

  await t.step(
    "an admin sets a user's project quota; creates beyond it are refused",
    async () => {
      const patch = (id: string, body: unknown) =>
        h.request(`/admin/users/${id}`, { method: "PATCH", headers: admin.headers, json: body });
      for (
        const bad of [{ project_quota: -1 }, { project_quota: 1001 }, { project_quota: 1.5 }]
      ) {
        assert.equal(await statusOf(patch(carol.userId, bad)), 422, JSON.stringify(bad));
      }
      assert.equal(await statusOf(patch(carol.userId, {})), 422, "the field is required");
      assert.equal(await statusOf(patch(crypto.randomUUID(), { project_quota: 1 })), 404);
      assert.equal(await statusOf(patch("nope", { project_quota: 1 })), 404);

      const res = await patch(carol.userId, { project_quota: 0 });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).project_quota, 0);
      const refused = await h.request("/projects", {
        method: "POST",
        headers: carol.headers,
        json: { name: "over quota" },
      });
      assert.equal(refused.status, 403);
      assert.equal((await refused.json()).code, "quota_exceeded");
      const [audit] = await h.sql`SELECT actor_id, details->>'project_quota' AS quota
      FROM audit_log WHERE event = 'admin.user_quota_changed' AND user_id = ${carol.userId}`;
      assert.equal(audit.actorId, admin.userId);
      assert.equal(audit.quota, "0");

      const reset = await (await patch(carol.userId, { project_quota: null })).json();
      assert.equal(reset.project_quota, null, "back to the default");
    },
  );

  await t.step("unknown or malformed user ids are 404; disabling oneself is 409", async () => {
    for (const id of [crypto.randomUUID(), "nope"]) {
      const res = h.request(`/admin/users/${id}/disable`, {
        method: "POST",
        headers: admin.headers,
      });
      assert.equal(await statusOf(res), 404);
    }
    const self = await h.request(`/admin/users/${admin.userId}/disable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(self.status, 409);
    assert.equal((await self.json()).code, "invalid_state");
  });

  await t.step(
    "everyone's projects, with their owner, newest first, filtered and paged",
    async () => {
      const p1 = await addProject(h, carol.userId, "carol-one", "stopped");
      const p2 = await addProject(h, dave.userId, "dave-one");
      const p3 = await addProject(h, carol.userId, "carol-two");
      const res = await h.request("/admin/projects", { headers: admin.headers });
      assert.equal(res.status, 200);
      const list = await res.json();
      assert.deepEqual(list.map((p: { id: string }) => p.id), [p3, p2, p1]);
      assert.deepEqual(Object.keys(list[0]).sort(), [
        "created_at",
        "id",
        "last_active_at",
        "name",
        "owner_email",
        "status",
        "user_id",
      ]);
      assert.equal(list[0].owner_email, "carol@example.com");
      assert.equal(list[1].user_id, dave.userId);

      const carols = await (await h.request(`/admin/projects?user_id=${carol.userId}`, {
        headers: admin.headers,
      })).json();
      assert.deepEqual(carols.map((p: { id: string }) => p.id), [p3, p1]);
      const stopped = await (await h.request("/admin/projects?status=stopped", {
        headers: admin.headers,
      })).json();
      assert.deepEqual(stopped.map((p: { id: string }) => p.id), [p1]);
      const page = await h.request("/admin/projects?limit=2", { headers: admin.headers });
      const next = await h.request(
        `/admin/projects?limit=2&cursor=${page.headers.get("x-next-cursor")}`,
        {
          headers: admin.headers,
        },
      );
      await page.body?.cancel();
      assert.deepEqual((await next.json()).map((p: { id: string }) => p.id), [p1]);
    },
  );
});
