// Findings of the security review (issue 13), each through the real app: the login page's
// next= redirect, format characters in project names, /metrics behind METRICS_TOKEN, and
// /openapi.json without the loopback-only /internal routes.
import assert from "node:assert/strict";
import { createTestApp, type TestApp } from "./helpers/app.ts";

const origin = "http://localhost:8000"; // PUBLIC_URL's default
const password = "correct horse battery";

/** A same-origin form post, as the browser sends it from one of our pages. */
function post(h: TestApp, path: string, fields: Record<string, string>, ip: string) {
  return h.request(path, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "text/html",
      origin,
    },
    body: new URLSearchParams(fields).toString(),
    ip,
  });
}

function refreshCookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-pomodex_refresh="));
  return set ? set.split(";")[0] : null;
}

/** Every way we know of to write "another site" that a browser would follow from Location. */
const OFF_SITE = [
  "/.//evil.example",
  "/%2e//evil.example",
  "/%2E//evil.example",
  "/a/..//evil.example",
  "/a/%2e%2e//evil.example",
  "/././/evil.example/x?y=1#z",
  "/\\evil.example",
  "/\\\\evil.example",
  "\\\\evil.example",
  "/%2F%2Fevil.example",
  "/%2f/evil.example",
  "/%5Cevil.example",
  "/%5c%5cevil.example",
  "/.%2F/evil.example",
  "/%252F%252Fevil.example",
  "/\t/evil.example",
  "/\n/evil.example",
  "/\r\n/evil.example",
  "/.\t//evil.example",
  "https://evil.example",
  "https:/evil.example",
  "//evil.example",
  "///evil.example",
  " //evil.example",
];

Deno.test({
  name: "login next=: every off-site variant goes to /dashboard (GET logged in, POST form)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const h = await createTestApp();
    try {
      const signup = await post(h, "/signup", { email: "ada@example.com", password }, "10.7.0.1");
      assert.equal(signup.status, 303, await signup.text());
      const cookie = refreshCookieOf(signup);
      assert.ok(cookie, "signing up logs in");
      let ip = 0; // one client address per login: the per-IP limit is not what is tested

      const getLogin = (query: string) =>
        h.request(`/login?next=${query}`, { headers: { accept: "text/html", cookie } });

      await t.step("GET /login, already logged in", async () => {
        // As written in the finding (unencoded), then every variant encoded.
        const queries = [
          "/.//evil.example",
          "/%2e//evil.example",
          "/a/..//evil.example",
          ...OFF_SITE.map(encodeURIComponent),
        ];
        for (const query of queries) {
          const res = await getLogin(query);
          await res.body?.cancel();
          assert.equal(res.status, 303, query);
          assert.equal(res.headers.get("location"), "/dashboard", `next=${query}`);
        }
      });

      await t.step("POST /login, the form", async () => {
        for (const next of OFF_SITE) {
          const res = await post(
            h,
            "/login",
            { email: "ada@example.com", password, next },
            `10.7.1.${ip++}`,
          );
          await res.body?.cancel();
          assert.equal(res.status, 303, JSON.stringify(next));
          assert.equal(res.headers.get("location"), "/dashboard", `next=${JSON.stringify(next)}`);
        }
      });

      await t.step("paths on this site still work, normalised", async () => {
        const cases: [string, string][] = [
          ["/dashboard/admin", "/dashboard/admin"],
          ["/dashboard/projects/abc?tab=1#top", "/dashboard/projects/abc?tab=1#top"],
          ["/a/../dashboard/admin", "/dashboard/admin"],
          ["/dashboard/projects/a%20b", "/dashboard/projects/a%20b"],
        ];
        for (const [next, expected] of cases) {
          const res = await getLogin(encodeURIComponent(next));
          await res.body?.cancel();
          assert.equal(res.headers.get("location"), expected, next);
          const form = await post(
            h,
            "/login",
            { email: "ada@example.com", password, next },
            `10.7.2.${ip++}`,
          );
          await form.body?.cancel();
          assert.equal(form.headers.get("location"), expected, next);
        }
      });
    } finally {
      await h.close();
    }
  },
});
