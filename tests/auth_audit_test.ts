// Every auth event lands in audit_log with time, user, IP and request id, and no secret.
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { adjustableClock } from "@/core/clock.ts";
import { createLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createTestApp } from "./helpers/app.ts";

Deno.test("the audit log", async () => {
  const clock = adjustableClock();
  await using h = await createTestApp(
    { INITIAL_ADMIN_EMAIL: "root@example.com", INITIAL_ADMIN_PASSWORD: "admin password 1" },
    { clock },
  );
  // The same app, but keeping its JSON log lines, to check them for secrets too.
  const logLines: string[] = [];
  const deps = await createServices(
    h.config,
    h.sql,
    createLogger("debug", (l) => logLines.push(l)),
    { clock },
  );
  const app = createApp(deps);
  const secrets: string[] = [];
  const call = async (
    requestId: string,
    method: string,
    path: string,
    opts: { json?: unknown; token?: string; ip?: string; headers?: Record<string, string> } = {},
  ) => {
    const headers = new Headers(opts.headers);
    headers.set("x-request-id", requestId);
    if (opts.json !== undefined) headers.set("content-type", "application/json");
    if (opts.token) headers.set("authorization", `Bearer ${opts.token}`);
    const res = await app.fetch(
      new Request(`http://localhost${path}`, {
        method,
        headers,
        body: opts.json === undefined ? undefined : JSON.stringify(opts.json),
      }),
      { remoteAddr: { transport: "tcp", hostname: opts.ip ?? "192.0.2.10", port: 1 } },
    );
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  const password = "user password 1";
  secrets.push(password, "admin password 1", "a wrong password");
  await call("r-register", "POST", "/auth/register", {
    json: { email: "u@example.com", password },
  });
  await call("r-login-failed", "POST", "/auth/login", {
    json: { email: "u@example.com", password: "a wrong password" },
  });
  const login = await call("r-login", "POST", "/auth/login", {
    json: { email: "u@example.com", password },
  });
  secrets.push(login.body.access_token, login.body.refresh_token);
  const refreshed = await call("r-refresh", "POST", "/auth/refresh", {
    json: { refresh_token: login.body.refresh_token },
  });
  secrets.push(refreshed.body.access_token, refreshed.body.refresh_token);
  clock.advance(11_000);
  await call("r-reuse", "POST", "/auth/refresh", {
    json: { refresh_token: login.body.refresh_token },
  });

  const again = await call("r-login2", "POST", "/auth/login", {
    json: { email: "u@example.com", password },
  });
  secrets.push(again.body.access_token, again.body.refresh_token);
  const key = await call("r-key", "POST", "/auth/api-keys", {
    token: again.body.access_token,
    json: { name: "k", lifetime: "1h" },
  });
  secrets.push(key.body.key);
  await call("r-key-revoke", "DELETE", `/auth/api-keys/${key.body.id}`, {
    token: again.body.access_token,
  });
  await call("r-logout", "POST", "/auth/logout", {
    json: { refresh_token: again.body.refresh_token },
  });
  const third = await call("r-login3", "POST", "/auth/login", {
    json: { email: "u@example.com", password },
  });
  secrets.push(third.body.access_token, third.body.refresh_token);
  await call("r-logout-all", "POST", "/auth/logout-all", { token: third.body.access_token });

  const admin = await call("r-admin-login", "POST", "/auth/login", {
    json: { email: "root@example.com", password: "admin password 1" },
  });
  secrets.push(admin.body.access_token, admin.body.refresh_token);
  const client = await call("r-client", "POST", "/admin/clients", {
    token: admin.body.access_token,
    json: { name: "c", scopes: ["projects:read"] },
  });
  secrets.push(client.body.client_secret);
  const issued = await call("r-client-token", "POST", "/auth/token", {
    json: {
      grant_type: "client_credentials",
      client_id: client.body.client_id,
      client_secret: client.body.client_secret,
    },
  });
  secrets.push(issued.body.access_token);
  await call("r-client-disable", "POST", `/admin/clients/${client.body.client_id}/disable`, {
    token: admin.body.access_token,
  });
  const [user] = await h.sql`SELECT id FROM users WHERE email = 'u@example.com'`;
  await call("r-disable", "POST", `/admin/users/${user.id}/disable`, {
    token: admin.body.access_token,
  });
  await call("r-enable", "POST", `/admin/users/${user.id}/enable`, {
    token: admin.body.access_token,
  });

  const rows = await h.sql<
    {
      event: string;
      at: Date;
      userId: string | null;
      actorId: string | null;
      ip: string;
      requestId: string;
    }[]
  >`SELECT event, at, user_id, actor_id, ip, request_id FROM audit_log ORDER BY id`;
  const byRequest = new Map(rows.map((r) => [r.requestId, r]));
  const expected: [string, string, boolean][] = [
    ["r-register", "auth.register", true],
    ["r-login-failed", "auth.login_failed", true],
    ["r-login", "auth.login", true],
    ["r-refresh", "auth.refresh", true],
    ["r-reuse", "auth.refresh_reuse_detected", true],
    ["r-key", "auth.api_key_created", true],
    ["r-key-revoke", "auth.api_key_revoked", true],
    ["r-logout", "auth.logout", true],
    ["r-logout-all", "auth.logout_all", true],
    ["r-client", "admin.client_created", true],
    ["r-client-token", "auth.client_token", true],
    ["r-client-disable", "admin.client_disabled", true],
    ["r-disable", "admin.user_disabled", true],
    ["r-enable", "admin.user_enabled", true],
  ];
  for (const [requestId, event, hasUser] of expected) {
    const row = byRequest.get(requestId);
    assert.ok(row, `no audit row for ${event}`);
    assert.equal(row.event, event);
    assert.equal(row.ip, "192.0.2.10");
    assert.ok(row.at instanceof Date);
    if (hasUser) assert.match(String(row.userId), /^[0-9a-f-]{36}$/, event);
  }
  assert.ok(rows.some((r) => r.event === "admin.initial_admin_created"));
  const adminActs = rows.filter((r) => r.event.startsWith("admin.") && r.requestId);
  for (const r of adminActs) assert.ok(r.actorId, `${r.event} names its actor`);

  const everything = (await h.sql`SELECT * FROM audit_log`).map((r) => JSON.stringify(r)).join(
    "\n",
  );
  const logs = logLines.join("\n");
  for (const secret of secrets) {
    assert.ok(secret && secret.length >= 8);
    assert.ok(!everything.includes(secret), "a secret in the audit log");
    assert.ok(!logs.includes(secret), "a secret in the logs");
  }
  assert.doesNotMatch(everything, /\$argon2/);
});
