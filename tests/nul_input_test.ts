// PostgreSQL cannot store U+0000 in text: a NUL that got past a field's validation was a
// 500. The fuzzer (reliability/fuzz_test.ts) found four; they are 422s now, and key and
// client names refuse control characters as project names do.
import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";

Deno.test("NUL and control characters in names and searches are 422, never 500", async () => {
  await using h = await createTestApp({
    INITIAL_ADMIN_EMAIL: "root@example.com",
    INITIAL_ADMIN_PASSWORD: "admin password 1",
  });
  const user = await signIn(h, "user@example.com");
  const admin = await signIn(h, "root@example.com", "admin password 1");
  const cases: [string, string, Record<string, string>, unknown?][] = [
    ["GET", "/projects?q=%00", user.headers],
    ["GET", "/projects?q=a%00b", user.headers],
    ["GET", "/admin/users?q=%00", admin.headers],
    ["POST", "/auth/api-keys", user.headers, { name: "a\u0000b", lifetime: "1h" }],
    ["POST", "/auth/api-keys", user.headers, { name: "\u001b[31mred", lifetime: "1h" }],
    ["POST", "/auth/api-keys", user.headers, { name: "line\nbreak", lifetime: "1h" }],
    ["POST", "/admin/clients", admin.headers, { name: "a\u0000b", scopes: ["projects:read"] }],
    ["POST", "/admin/clients", admin.headers, { name: "x\u2028y", scopes: ["projects:read"] }],
  ];
  for (const [method, path, headers, json] of cases) {
    const res = await h.request(path, { method, headers, json });
    const body = await res.json();
    assert.equal(
      res.status,
      422,
      `${method} ${path} ${JSON.stringify(json)}: ${JSON.stringify(body)}`,
    );
    assert.equal(body.code, "validation_error");
  }
  // Ordinary names still work, unicode included.
  const ok = await h.request("/auth/api-keys", {
    method: "POST",
    headers: user.headers,
    json: { name: "ci – déploiement 🚀", lifetime: "1h" },
  });
  assert.equal(ok.status, 201);
  const [{ n }] = await h.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM api_keys`;
  assert.equal(n, 1, "nothing stored by the refused requests");
});
