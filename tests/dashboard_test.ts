// The dashboard's pages, in-process through the whole app: who sees what, redirects to the
// login page, form validation, CSRF, the key download, error pages, and no secrets in HTML.
import assert from "node:assert/strict";
import { safeNext } from "@/web/dashboard/next.ts";
import { serializeProps } from "@/web/dashboard/render.tsx";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { sshKeyContext } from "@/projects/view.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { insertProject } from "./helpers/projects.ts";

const origin = "http://localhost:8000"; // PUBLIC_URL's default
const password = "correct horse battery";
const ADMIN = { email: "admin@example.com", password: "admin password 123" };

interface Browser {
  email: string;
  cookie: string;
  userId: string;
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

/** A same-origin form post, as the browser sends it from one of our pages. */
function post(h: TestApp, path: string, fields: Record<string, string>, opts: {
  cookie?: string;
  origin?: string | null;
  ip?: string;
} = {}) {
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
    accept: "text/html",
  };
  if (opts.origin !== null) headers.origin = opts.origin ?? origin;
  if (opts.cookie) headers.cookie = opts.cookie;
  return h.request(path, { method: "POST", headers, body: form(fields), ip: opts.ip });
}

function get(h: TestApp, path: string, cookie?: string) {
  const headers: Record<string, string> = { accept: "text/html" };
  if (cookie) headers.cookie = cookie;
  return h.request(path, { headers });
}

function refreshCookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-pomodex_refresh="));
  return set ? set.split(";")[0] : null;
}

async function signUpInBrowser(h: TestApp, email: string): Promise<Browser> {
  const res = await post(h, "/signup", { email, password });
  assert.equal(res.status, 303, await res.text());
  assert.equal(res.headers.get("location"), "/dashboard?flash=signed_up");
  const cookie = refreshCookieOf(res);
  assert.ok(cookie, "signing up logs in");
  const [{ id }] = await h.sql<{ id: string }[]>`SELECT id FROM users WHERE email = ${email}`;
  return { email, cookie, userId: id };
}

async function logInInBrowser(h: TestApp, email: string, pass: string): Promise<Browser> {
  const res = await post(h, "/login", { email, password: pass });
  assert.equal(res.status, 303, await res.text());
  const cookie = refreshCookieOf(res)!;
  const [{ id }] = await h.sql<{ id: string }[]>`SELECT id FROM users WHERE email = ${email}`;
  return { email, cookie, userId: id };
}

async function csrfOf(h: TestApp, b: Browser, path = "/dashboard"): Promise<string> {
  const html = await (await get(h, path, b.cookie)).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(token, `a CSRF token on ${path}`);
  return token;
}

/** A project row as creation leaves it, without a container (no engine needed here). */
async function projectWithKeys(
  h: TestApp,
  userId: string,
  name: string,
  status = "stopped",
): Promise<{ id: string; privateKey: string; sealed: string }> {
  const id = crypto.randomUUID();
  const keys = await generateSshKeyPair(`pomodex-${id}`);
  const sealed = await h.deps.secrets.seal(keys.privateKey, sshKeyContext(id));
  await insertProject(h.sql, userId, {
    id,
    name,
    status,
    sshPublicKey: keys.publicKey,
    sshPrivateKeyEncrypted: sealed,
    gcsPrefix: `projects/${id}/`,
    containerName: `pomodex-${id}`,
    volumeName: `pomodex-vol-${id}`,
  });
  return { id, privateKey: keys.privateKey, sealed };
}

function assertRedirectsToLogin(res: Response, next: string) {
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), `/login?next=${encodeURIComponent(next)}`);
}

Deno.test({
  name: "dashboard pages",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using h = await createTestApp({
      INITIAL_ADMIN_EMAIL: ADMIN.email,
      INITIAL_ADMIN_PASSWORD: ADMIN.password,
    });
    const ada = await signUpInBrowser(h, "ada@example.com");
    const bob = await signUpInBrowser(h, "bob@example.com");
    const adaProject = await projectWithKeys(h, ada.userId, "ada's lab");
    const bobProject = await projectWithKeys(h, bob.userId, "bob-secret-project");
    const pagesHtml: string[] = [];

    await t.step("without a session, pages redirect to the login page with next=", async () => {
      for (
        const path of [
          "/dashboard",
          `/dashboard/projects/${adaProject.id}`,
          "/dashboard/admin",
          `/dashboard/projects/${adaProject.id}/key`,
        ]
      ) {
        const res = await get(h, path);
        assertRedirectsToLogin(res, path);
      }
      const root = await get(h, "/");
      assert.equal(root.headers.get("location"), "/login");
      // A form post goes back to the page the form was on, not to the action.
      const stop = await post(h, `/dashboard/projects/${adaProject.id}/stop`, {});
      assertRedirectsToLogin(stop, `/dashboard/projects/${adaProject.id}`);
      const rootIn = await get(h, "/", ada.cookie);
      assert.equal(rootIn.headers.get("location"), "/dashboard");
    });

    await t.step("next= accepts only paths on this site", () => {
      assert.equal(safeNext("/dashboard/projects/x?a=1"), "/dashboard/projects/x?a=1");
      for (
        const bad of [
          "//evil.example/x",
          "/\\evil.example",
          "https://evil.example/",
          "javascript:alert(1)",
          "dashboard",
          "/%0d%0aSet-Cookie:x",
          "/\u0000x",
          "",
          null,
        ]
      ) {
        const next = safeNext(bad);
        assert.equal(next, "/dashboard", `${bad} → ${next}`);
      }
      assert.equal(safeNext("/login?next=/x"), "/dashboard");
    });

    await t.step("login: the page, a generic error, and back to where the user was", async () => {
      const page = await get(h, "/login?next=%2Fdashboard%2Fprojects%2Fabc");
      assert.equal(page.status, 200);
      const html = await page.text();
      pagesHtml.push(html);
      assert.match(html, /<label for="email">Email<\/label>/);
      assert.match(html, /<label for="password">Password<\/label>/);
      assert.match(html, /name="next" value="\/dashboard\/projects\/abc"/);

      const wrong = await post(h, "/login", { email: ada.email, password: "not the password" });
      assert.equal(wrong.status, 401);
      assert.equal(refreshCookieOf(wrong), null);
      assert.match(await wrong.text(), /role="alert">Email or password is incorrect\./);
      const unknown = await post(h, "/login", { email: "nobody@example.com", password });
      assert.equal(unknown.status, 401);
      assert.match(await unknown.text(), /Email or password is incorrect\./);

      const empty = await post(h, "/login", { email: "", password: "" });
      assert.equal(empty.status, 422);
      const emptyHtml = await empty.text();
      assert.match(emptyHtml, /Enter your email address\./);
      assert.match(emptyHtml, /aria-invalid="true"/);

      const ok = await post(h, "/login", {
        email: ada.email,
        password,
        next: "/dashboard/admin",
      });
      assert.equal(ok.status, 303);
      assert.equal(ok.headers.get("location"), "/dashboard/admin");
      const evil = await post(h, "/login", {
        email: ada.email,
        password,
        next: "//evil.example",
      });
      assert.equal(evil.headers.get("location"), "/dashboard");
      const cookie = evil.headers.getSetCookie().find((c) => c.startsWith("__Host-"))!;
      for (const attr of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"]) {
        assert.ok(cookie.includes(attr), `${attr} in ${cookie}`);
      }
      // Logged in already: the login page sends the user on.
      const again = await get(h, "/login?next=%2Fdashboard%2Fadmin", ada.cookie);
      assert.equal(again.status, 303);
      assert.equal(again.headers.get("location"), "/dashboard/admin");
    });

    await t.step("login: a clear message when rate limited", async () => {
      const email = "locked@example.com";
      await signUpInBrowser(h, email);
      let last: Response | undefined;
      for (let i = 0; i < 11; i++) {
        last = await post(h, "/login", { email, password: "wrong password" }, { ip: "10.9.9.9" });
        if (last.status === 429) break;
        await last.body?.cancel();
      }
      assert.equal(last!.status, 429);
      assert.match(
        await last!.text(),
        /Too many attempts — try again in \d+ seconds\./,
      );
    });

    await t.step("signup validates inline", async () => {
      const bad = await post(h, "/signup", { email: "not-an-email", password: "short" });
      assert.equal(bad.status, 422);
      const html = await bad.text();
      assert.match(html, /Enter a valid email address/);
      assert.match(html, /Your password must be at least 8 characters\./);
      assert.match(html, /id="email" name="email" type="email" value="not-an-email"/);
      assert.match(html, /aria-describedby="password-hint password-error"/);
      assert.ok(!html.includes('value="short"'), "the password is never sent back");
      const taken = await post(h, "/signup", { email: "ADA@example.com", password });
      assert.equal(taken.status, 409);
      assert.match(await taken.text(), /already exists/);
    });

    await t.step("the projects page shows the user's projects and no one else's", async () => {
      const res = await get(h, "/dashboard", ada.cookie);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const csp = res.headers.get("content-security-policy")!;
      assert.match(csp, /script-src 'self';/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /connect-src 'self' ws:\/\/localhost:9000/);
      const html = await res.text();
      pagesHtml.push(html);
      assert.match(html, /<h1>Projects<\/h1>/);
      assert.ok(html.includes("ada&#39;s lab") || html.includes("ada's lab"));
      assert.ok(!html.includes("bob-secret-project"));
      assert.match(html, /<label for="project-name">Project name<\/label>/);
      assert.match(html, /data-island="ProjectList"/);
      assert.match(html, /<script type="module" src="\/static\/ProjectList\.[0-9a-f]{12}\.js">/);
      assert.ok(!/<script>/.test(html) && !/<script(?![^>]*(src=|application\/json))/.test(html));
    });

    await t.step("the create form validates the name inline", async () => {
      const token = await csrfOf(h, ada);
      for (
        const [name, message] of [
          ["", /Give the project a name\./],
          ["   ", /Give the project a name\./],
          ["x".repeat(65), /The name must be 1-64 characters after trimming\./],
          ["bad\u0007bell", /The name must not contain control characters\./],
        ] as const
      ) {
        const res = await post(h, "/dashboard/projects", { name, _csrf: token }, {
          cookie: ada.cookie,
        });
        assert.equal(res.status, 422);
        const html = await res.text();
        assert.match(html, message);
        assert.match(html, /id="project-name"[^>]*aria-invalid="true"/);
      }
    });

    await t.step("CSRF: no token, a wrong token or a foreign origin is refused", async () => {
      const token = await csrfOf(h, ada);
      const cases: [string, Record<string, string>, { origin?: string | null }][] = [
        ["no token", { name: "x" }, {}],
        ["bob's token", { name: "x", _csrf: await csrfOf(h, bob) }, {}],
        ["garbage", { name: "x", _csrf: "a".repeat(43) }, {}],
        ["foreign origin", { name: "x", _csrf: token }, { origin: "https://evil.example" }],
        ["no origin", { name: "x", _csrf: token }, { origin: null }],
      ];
      for (const [what, fields, opts] of cases) {
        const res = await post(h, "/dashboard/projects", fields, { cookie: ada.cookie, ...opts });
        assert.equal(res.status, 403, what);
        const html = await res.text();
        assert.match(html, /This form could not be sent/, what);
        assert.match(res.headers.get("content-type")!, /text\/html/);
      }
      const logout = await post(h, "/logout", {}, { cookie: ada.cookie });
      assert.equal(logout.status, 403, "logging out needs the token too");
      const foreignLogin = await post(h, "/login", { email: ada.email, password }, {
        origin: "https://evil.example",
      });
      assert.equal(foreignLogin.status, 403);
      // Sec-Fetch-Site: same-origin is accepted in place of Origin.
      const viaFetchMetadata = await h.request("/dashboard/projects", {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "sec-fetch-site": "same-origin",
          cookie: ada.cookie,
        },
        body: form({ name: "", _csrf: token }),
      });
      assert.equal(viaFetchMetadata.status, 422);
      await viaFetchMetadata.body?.cancel();
    });

    await t.step("a project page for its owner; another user's is the 404 page", async () => {
      const res = await get(h, `/dashboard/projects/${adaProject.id}`, ada.cookie);
      assert.equal(res.status, 200);
      const html = await res.text();
      pagesHtml.push(html);
      assert.match(html, /<h1>ada&#39;s lab<\/h1>|<h1>ada's lab<\/h1>/);
      assert.match(html, /data-status="stopped"/);
      for (const verb of ["start", "restore"]) {
        assert.ok(html.includes(`action="/dashboard/projects/${adaProject.id}/${verb}"`), verb);
      }
      assert.ok(html.includes(`href="/dashboard/projects/${adaProject.id}/key"`));
      assert.match(html, /Keep this key secret/);
      assert.match(
        html,
        /Type the project name, ada&#39;s lab, to confirm|Type the project name, ada's lab, to confirm/,
      );
      assert.match(html, /Only applies while the project is running/);
      assert.ok(!html.includes('data-island="Terminal"'), "no terminal while stopped");

      const foreign = await get(h, `/dashboard/projects/${bobProject.id}`, ada.cookie);
      assert.equal(foreign.status, 404);
      const foreignHtml = await foreign.text();
      assert.match(foreignHtml, /Page not found/);
      assert.ok(!foreignHtml.includes("bob-secret-project"));
      const malformed = await get(h, "/dashboard/projects/not-a-uuid", ada.cookie);
      assert.equal(malformed.status, 404);
      await malformed.body?.cancel();
      const token = await csrfOf(h, ada);
      const foreignStop = await post(h, `/dashboard/projects/${bobProject.id}/stop`, {
        _csrf: token,
      }, { cookie: ada.cookie });
      assert.equal(foreignStop.status, 404);
      await foreignStop.body?.cancel();
    });

    await t.step(
      "a running project shows the SSH command, auto-stop and the terminal",
      async () => {
        await h.sql`
        UPDATE projects SET status = 'running', ssh_host_port = 40222, container_id = 'x',
          last_activity_source = 'terminal'
        WHERE id = ${adaProject.id}`;
        const html = await (await get(h, `/dashboard/projects/${adaProject.id}`, ada.cookie))
          .text();
        pagesHtml.push(html);
        assert.ok(
          html.includes(
            `ssh -i ~/.ssh/pomodex-${adaProject.id.slice(0, 8)}_ed25519 -p 40222 agent@127.0.0.1`,
          ),
        );
        assert.match(html, /data-island="CopyButton"/);
        assert.match(html, /data-island="Terminal"/);
        assert.match(html, /after 30 minutes without any|After 30/i);
        assert.match(html, /from the web terminal/);
        for (const verb of ["stop", "snapshot"]) {
          assert.ok(html.includes(`action="/dashboard/projects/${adaProject.id}/${verb}"`), verb);
        }
        await h.sql`
        UPDATE projects SET status = 'stopped', ssh_host_port = NULL, container_id = NULL
        WHERE id = ${adaProject.id}`;
      },
    );

    await t.step("a lifecycle verb in the wrong state comes back with a message", async () => {
      const busy = await projectWithKeys(h, ada.userId, "busy one", "creating");
      const token = await csrfOf(h, ada);
      const res = await post(h, `/dashboard/projects/${busy.id}/stop`, { _csrf: token }, {
        cookie: ada.cookie,
      });
      assert.equal(res.status, 303);
      assert.equal(
        res.headers.get("location"),
        `/dashboard/projects/${busy.id}?flash=invalid_state`,
      );
      const page = await get(h, res.headers.get("location")!, ada.cookie);
      const html = await page.text();
      assert.match(html, /role="alert"><p class="alert alert-error">That is not possible/);
      assert.match(html, /http-equiv="refresh"/, "without JS, a busy project's page reloads");
      await h.sql`DELETE FROM projects WHERE id = ${busy.id}`;
    });

    await t.step("delete asks for the project's name", async () => {
      const token = await csrfOf(h, ada);
      const res = await post(h, `/dashboard/projects/${adaProject.id}/delete`, {
        _csrf: token,
        confirm: "wrong name",
      }, { cookie: ada.cookie });
      assert.equal(res.status, 422);
      const html = await res.text();
      assert.match(html, /That is not the project&#39;s name\.|That is not the project's name\./);
      assert.match(html, /id="confirm-name"[^>]*aria-invalid="true"/);
      const [row] = await h.sql`SELECT status FROM projects WHERE id = ${adaProject.id}`;
      assert.equal(row.status, "stopped");
    });

    await t.step("the private key downloads for its owner only", async () => {
      const res = await get(h, `/dashboard/projects/${adaProject.id}/key`, ada.cookie);
      assert.equal(res.status, 200);
      assert.equal(
        res.headers.get("content-disposition"),
        `attachment; filename="pomodex-${adaProject.id.slice(0, 8)}_ed25519"`,
      );
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.equal(await res.text(), adaProject.privateKey);
      const foreign = await get(h, `/dashboard/projects/${bobProject.id}/key`, ada.cookie);
      assert.equal(foreign.status, 404);
      assert.ok(!(await foreign.text()).includes("PRIVATE KEY"));
      const [audit] = await h.sql`
        SELECT count(*)::int AS n FROM audit_log
        WHERE event = 'project.private_key_downloaded' AND project_id = ${adaProject.id}`;
      assert.equal(audit.n, 1);
    });

    await t.step("island props are escaped", async () => {
      const name = "</script><script>alert(1)</script><!--";
      const evil = await projectWithKeys(h, ada.userId, name);
      const html = await (await get(h, "/dashboard", ada.cookie)).text();
      assert.ok(!html.includes("<script>alert(1)"));
      assert.ok(html.includes("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
      assert.equal(
        serializeProps({ a: "</script>&\u2028" }),
        '{"a":"\\u003c/script\\u003e\\u0026\\u2028"}',
      );
      await h.sql`DELETE FROM projects WHERE id = ${evil.id}`;
    });

    await t.step("admin page: admins only; disable and enable users", async () => {
      const notAdmin = await get(h, "/dashboard/admin", ada.cookie);
      assert.equal(notAdmin.status, 404);
      await notAdmin.body?.cancel();
      const admin = await logInInBrowser(h, ADMIN.email, ADMIN.password);
      const page = await get(h, "/dashboard/admin", admin.cookie);
      assert.equal(page.status, 200);
      const html = await page.text();
      pagesHtml.push(html);
      assert.match(html, /<h1>Administration<\/h1>/);
      assert.ok(html.includes("bob@example.com") && html.includes("bob-secret-project"));
      assert.ok(html.includes(`action="/dashboard/admin/users/${bob.userId}/disable"`));
      assert.ok(!html.includes(`action="/dashboard/admin/users/${admin.userId}/disable"`));

      const token = await csrfOf(h, admin, "/dashboard/admin");
      const disable = await post(h, `/dashboard/admin/users/${bob.userId}/disable`, {
        _csrf: token,
      }, { cookie: admin.cookie });
      assert.equal(disable.headers.get("location"), "/dashboard/admin?flash=user_disabled");
      assertRedirectsToLogin(await get(h, "/dashboard", bob.cookie), "/dashboard");
      const enable = await post(h, `/dashboard/admin/users/${bob.userId}/enable`, {
        _csrf: token,
      }, { cookie: admin.cookie });
      assert.equal(enable.headers.get("location"), "/dashboard/admin?flash=user_enabled");
      const self = await post(h, `/dashboard/admin/users/${admin.userId}/disable`, {
        _csrf: token,
      }, { cookie: admin.cookie });
      assert.equal(self.headers.get("location"), "/dashboard/admin?flash=cannot_disable_self");
      const byUser = await post(h, `/dashboard/admin/users/${bob.userId}/disable`, {
        _csrf: await csrfOf(h, ada),
      }, { cookie: ada.cookie });
      assert.equal(byUser.status, 404);
      await byUser.body?.cancel();

      // Project quotas: a number, or empty for the default; anything else says what fits.
      assert.ok(html.includes(`action="/dashboard/admin/users/${bob.userId}/quota"`));
      assert.match(html, /placeholder="5 \(default\)"/);
      const quota = (value: string, who = admin) =>
        post(h, `/dashboard/admin/users/${bob.userId}/quota`, {
          _csrf: token,
          project_quota: value,
        }, { cookie: who.cookie });
      for (const bad of ["-1", "1001", "2.5", "lots"]) {
        const res = await quota(bad);
        assert.equal(res.headers.get("location"), "/dashboard/admin?flash=quota_invalid", bad);
      }
      const set = await quota("12");
      assert.equal(set.headers.get("location"), "/dashboard/admin?flash=quota_set");
      const [row] = await h.sql`SELECT project_quota FROM users WHERE id = ${bob.userId}`;
      assert.equal(row.projectQuota, 12);
      const shown = await (await get(h, "/dashboard/admin", admin.cookie)).text();
      assert.match(shown, new RegExp(`id="quota-${bob.userId}"[^>]*value="12"`));
      await quota("");
      const [reset] = await h.sql`SELECT project_quota FROM users WHERE id = ${bob.userId}`;
      assert.equal(reset.projectQuota, null, "empty: back to the default");
      const noCsrf = await post(h, `/dashboard/admin/users/${bob.userId}/quota`, {
        project_quota: "3",
      }, { cookie: admin.cookie });
      assert.equal(noCsrf.status, 403);
      await noCsrf.body?.cancel();
    });

    await t.step("no secret reaches a page", async () => {
      const [hashes] = await h.sql<{ hashes: string[] }[]>`
        SELECT array_agg(password_hash) AS hashes FROM users`;
      const sessionTokens = [ada, bob].map((b) => b.cookie.split("=")[1]);
      for (const html of pagesHtml) {
        assert.ok(!html.includes("PRIVATE KEY"), "no private key");
        assert.ok(!html.includes(adaProject.sealed) && !html.includes(bobProject.sealed));
        assert.ok(!html.includes("$argon2"), "no password hash");
        for (const hash of hashes.hashes) assert.ok(!html.includes(hash));
        for (const token of sessionTokens) assert.ok(!html.includes(token), "no refresh token");
        assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/.test(html), "no JWT");
      }
    });

    await t.step("error pages: HTML for browsers, JSON for the API", async () => {
      const missing = await get(h, "/dashboard/no-such-page", ada.cookie);
      assert.equal(missing.status, 404);
      assert.match(missing.headers.get("content-type")!, /text\/html/);
      assert.match(await missing.text(), /Page not found/);
      const stray = await get(h, "/no-such-page");
      assert.equal(stray.status, 404);
      assert.match(await stray.text(), /Page not found/);
      const api = await h.request("/no-such-route");
      assert.equal(api.status, 404);
      assert.equal((await api.json()).code, "not_found");
      const apiProjects = await h.request("/projects/nope", { headers: { accept: "text/html" } });
      assert.equal(apiProjects.status, 401);
      assert.equal((await apiProjects.json()).code, "unauthorized");

      // An unexpected failure: the 500 page says nothing of it.
      await h.sql`ALTER TABLE projects RENAME TO projects_away`;
      // Back for the steps below, however this one ends.
      await using restore = new AsyncDisposableStack();
      restore.defer(async () => {
        await h.sql`ALTER TABLE projects_away RENAME TO projects`;
      });
      const broken = await get(h, "/dashboard", ada.cookie);
      assert.equal(broken.status, 500);
      const html = await broken.text();
      assert.match(html, /Something went wrong/);
      assert.ok(!/projects_away|relation|SELECT/i.test(html));
    });

    await t.step("static files: hashed names, cached for a year, gzipped", async () => {
      const html = await (await get(h, "/login")).text();
      const css = /href="(\/static\/styles\.[0-9a-f]{12}\.css)"/.exec(html)![1];
      const res = await h.request(css, { headers: { "accept-encoding": "gzip" } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.equal(res.headers.get("content-encoding"), "gzip");
      await res.body?.cancel();
      const plain = await h.request(css);
      assert.match(await plain.text(), /--accent/);
      const gone = await h.request("/static/styles.000000000000.css");
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
    });

    await t.step("logout ends the session and the pages with it", async () => {
      const token = await csrfOf(h, ada);
      const res = await post(h, "/logout", { _csrf: token }, { cookie: ada.cookie });
      assert.equal(res.status, 303);
      assert.equal(res.headers.get("location"), "/login?flash=logged_out");
      assert.ok(res.headers.getSetCookie().some((c) => /^__Host-pomodex_refresh=;/.test(c)));
      assertRedirectsToLogin(await get(h, "/dashboard", ada.cookie), "/dashboard");
      const flash = await (await get(h, "/login?flash=logged_out")).text();
      assert.match(flash, /You are logged out\./);
      const forged = await (await get(h, "/login?flash=%3Cscript%3E")).text();
      assert.ok(!forged.includes("<script>"));
    });
  },
});

Deno.test({
  name: "dashboard: the owner sets a project's network access and sees its disk use",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using h = await createTestApp();
    const ada = await signUpInBrowser(h, "ada-egress@example.com");
    const bob = await signUpInBrowser(h, "bob-egress@example.com");
    const { id } = await projectWithKeys(h, ada.userId, "networked");
    await h.sql`UPDATE projects SET workspace_used_bytes = ${3 * 1024 ** 2},
      disk_measured_at = now() WHERE id = ${id}`;
    const page = `/dashboard/projects/${id}`;
    const html = await (await get(h, page, ada.cookie)).text();
    assert.match(html, /<h2 id="network">Network access<\/h2>/);
    assert.match(html, /id="egress-open"[^>]*checked/, "the default, open, is chosen");
    assert.match(html, /3\.0 MB of 10(\.0)? GB/, "the workspace's use beside its bound");

    const token = await csrfOf(h, ada, page);
    const saved = await post(h, `${page}/egress`, {
      _csrf: token,
      policy: "allowlist",
      allowlist: "GitHub.com\r\n  pypi.org,files.pythonhosted.org ",
    }, { cookie: ada.cookie });
    assert.equal(saved.status, 303, await saved.text());
    assert.equal(saved.headers.get("location"), `${page}?flash=egress_saved`);
    const [row] = await h
      .sql`SELECT egress_policy, egress_allowlist FROM projects WHERE id = ${id}`;
    assert.equal(row.egressPolicy, "allowlist");
    assert.deepEqual(row.egressAllowlist, ["github.com", "pypi.org", "files.pythonhosted.org"]);
    const after = await (await get(h, `${page}?flash=egress_saved`, ada.cookie)).text();
    assert.match(after, /id="egress-allowlist"[^>]*>github\.com\npypi\.org/);

    const refused = await post(h, `${page}/egress`, {
      _csrf: token,
      policy: "allowlist",
      allowlist: "github.com 10.0.0.1",
    }, { cookie: ada.cookie });
    assert.equal(refused.status, 422);
    const body = await refused.text();
    assert.match(body, /class="field-error" id="egress-allowlist-error"/);
    assert.match(body, /10\.0\.0\.1/, "what was typed is shown again");

    const bobToken = await csrfOf(h, bob);
    const foreign = await post(h, `${page}/egress`, {
      _csrf: bobToken,
      policy: "open",
      allowlist: "",
    }, { cookie: bob.cookie });
    assert.equal(foreign.status, 404, "another user's project is a 404");
    const [still] = await h.sql`SELECT egress_policy FROM projects WHERE id = ${id}`;
    assert.equal(still.egressPolicy, "allowlist");
  },
});
