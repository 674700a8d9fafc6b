// Findings of the security review (issue 13), each through the real app: the login page's
// next= redirect, format characters in project names, /metrics behind METRICS_TOKEN, and
// /openapi.json without the loopback-only /internal routes.
import assert from "node:assert/strict";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { sshKeyContext } from "@/projects/view.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { insertProject } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";

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
    await using h = await createTestApp();
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
  },
});

/** Unicode general category Cf: invisible, and some reorder the text around them. */
const FORMAT_CHARACTERS = [
  "\u202E", // RIGHT-TO-LEFT OVERRIDE
  "\u202A", // LEFT-TO-RIGHT EMBEDDING
  "\u200B", // ZERO WIDTH SPACE
  "\u200D", // ZERO WIDTH JOINER
  "\u200E", // LEFT-TO-RIGHT MARK
  "\u2066", // LEFT-TO-RIGHT ISOLATE
  "\u2067", // RIGHT-TO-LEFT ISOLATE
  "\u2068", // FIRST STRONG ISOLATE
  "\u2069", // POP DIRECTIONAL ISOLATE
  "\uFEFF", // ZERO WIDTH NO-BREAK SPACE (BOM)
  "\u00AD", // SOFT HYPHEN
  "\u061C", // ARABIC LETTER MARK
];

Deno.test({
  name: "project names with format characters (Unicode Cf) are a 422 on create and rename",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using h = await createTestApp();
    const user = await signUp(h);
    // A project row as creation leaves it, without a container: renaming needs no engine.
    const id = crypto.randomUUID();
    const keys = await generateSshKeyPair(`pomodex-${id}`);
    const sealed = await h.deps.secrets.seal(keys.privateKey, sshKeyContext(id));
    await insertProject(h.sql, user.userId, {
      id,
      name: "plain",
      status: "stopped",
      sshPublicKey: keys.publicKey,
      sshPrivateKeyEncrypted: sealed,
      gcsPrefix: `projects/${id}/`,
      containerName: `pomodex-${id}`,
      volumeName: `pomodex-vol-${id}`,
    });

    for (const ch of FORMAT_CHARACTERS) {
      const name = `invoice${ch}fdp.exe`;
      const code = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
      // Validation comes first: a refused name never reaches the engine.
      const created = await h.request("/projects", {
        method: "POST",
        headers: user.auth,
        json: { name },
      });
      const createdBody = await created.json();
      assert.equal(created.status, 422, `create with ${code}: ${createdBody.code ?? ""}`);
      assert.equal(createdBody.code, "validation_error");
      assert.equal(createdBody.errors[0].path, "name");

      const renamed = await h.request(`/projects/${id}`, {
        method: "PATCH",
        headers: user.auth,
        json: { name },
      });
      const renamedBody = await renamed.json();
      assert.equal(renamed.status, 422, `rename with ${code}: ${renamedBody.code ?? ""}`);
      assert.equal(renamedBody.code, "validation_error");
    }
    const [row] = await h.sql<{ name: string }[]>`SELECT name FROM projects WHERE id = ${id}`;
    assert.equal(row.name, "plain");
    const [{ n }] = await h.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM projects`;
    assert.equal(n, 1, "no project was created");
    // Visible non-ASCII names are still fine.
    const ok = await h.request(`/projects/${id}`, {
      method: "PATCH",
      headers: user.auth,
      json: { name: "café – naïve 日本語 🚀" },
    });
    assert.equal(ok.status, 200, await ok.text());
  },
});

Deno.test({
  name: "/metrics needs the bearer METRICS_TOKEN when it is set, and is public otherwise",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const token = "metrics-" + crypto.randomUUID();
    {
      await using h = await createTestApp({ METRICS_TOKEN: token });
      for (
        const authorization of [
          undefined,
          "Bearer",
          "Bearer ",
          "Bearer wrong",
          `Bearer ${token}x`,
          `Bearer ${token.slice(0, -1)}`,
          `Basic ${btoa(`x:${token}`)}`,
          token,
        ]
      ) {
        const res = await h.request("/metrics", {
          headers: authorization ? { authorization } : {},
        });
        const body = await res.text();
        assert.equal(res.status, 401, `${authorization}: ${body.slice(0, 200)}`);
        assert.equal(res.headers.get("www-authenticate"), "Bearer");
        assert.equal(JSON.parse(body).code, "unauthorized");
        assert.ok(!body.includes("pomodex_http_requests_total"));
      }
      const ok = await h.request("/metrics", { headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /pomodex_http_requests_total/);
      const lower = await h.request("/metrics", {
        headers: { authorization: `bearer ${token}` },
      });
      assert.equal(lower.status, 200, "the scheme is case-insensitive");
      await lower.body?.cancel();
    }

    await using open = await createTestApp();
    const res = await open.request("/metrics");
    assert.equal(res.status, 200);
    assert.match(await res.text(), /pomodex_http_requests_total/);
  },
});

Deno.test({
  name: "/openapi.json leaves out the loopback-only /internal routes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using h = await createTestApp();
    const res = await h.request("/openapi.json");
    assert.equal(res.status, 200);
    const doc = await res.json();
    const paths = Object.keys(doc.paths);
    assert.ok(paths.includes("/projects"), `/projects in ${paths.join(" ")}`);
    assert.ok(paths.includes("/projects/{id}"));
    const internal = paths.filter((p) => p.startsWith("/internal"));
    assert.deepEqual(internal, [], "no /internal path in the served document");
    assert.ok(!JSON.stringify(doc).includes("/internal/"), "nor any mention of one");
    // The routes themselves still answer their loopback caller (an unknown route is a 404).
    const validate = await h.request("/internal/validate", {
      method: "POST",
      json: { token: "junk", project_id: crypto.randomUUID() },
    });
    assert.equal(validate.status, 401);
    await validate.body?.cancel();
  },
});

Deno.test({
  name: "ssh_private_key goes only to login sessions and projects:write credentials",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using h = await createTestApp();
    const alice = await signUp(h);
    const id = crypto.randomUUID();
    const keys = await generateSshKeyPair(`pomodex-${id}`);
    await insertProject(h.sql, alice.userId, {
      id,
      name: "keyed",
      status: "stopped",
      sshPublicKey: keys.publicKey,
      sshPrivateKeyEncrypted: await h.deps.secrets.seal(keys.privateKey, sshKeyContext(id)),
      gcsPrefix: `projects/${id}/`,
    });
    const keyFor = async (scopes: string[]) => {
      const res = await h.request("/auth/api-keys", {
        method: "POST",
        headers: alice.auth,
        json: { name: scopes.join("+"), lifetime: "1h", scopes },
      });
      assert.equal(res.status, 201, await res.clone().text());
      return { authorization: `Bearer ${(await res.json()).key}` };
    };
    const privateKeySeenBy = async (headers: Record<string, string>) => {
      const res = await h.request(`/projects/${id}`, { headers });
      assert.equal(res.status, 200);
      return (await res.json()).ssh_private_key;
    };
    assert.equal(await privateKeySeenBy(alice.auth), keys.privateKey, "a login session");
    assert.equal(
      await privateKeySeenBy(await keyFor(["projects:read", "projects:write"])),
      keys.privateKey,
      "a key that may change the project",
    );
    assert.equal(
      await privateKeySeenBy(await keyFor(["projects:read"])),
      null,
      "a read-only key sees no root shell",
    );
  },
});
