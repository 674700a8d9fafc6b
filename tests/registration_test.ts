// REGISTRATION=open|invite|closed and the invite codes administrators make: through the API and
// the dashboard's forms, on a real database. The race on one code, expiry (by the injected
// clock), revoking, used codes, admins only, no code in any list or log, and the audit events.
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { adjustableClock } from "@/core/clock.ts";
import { registerUser } from "@/auth/users.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import type { AppError } from "@/core/errors.ts";
import { createLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { steadyClock } from "./helpers/clock.ts";
import { launchBrowser, screenshot, SKIP_BROWSER_TESTS, withDeadline } from "./helpers/browser.ts";

const ADMIN = { email: "root@example.com", password: "admin password 1" };
const PASSWORD = "correct horse battery";
const ORIGIN = "http://localhost:8000"; // PUBLIC_URL's default
const CODE_PATTERN = /^pdxinv_[A-Za-z0-9_-]{43}$/;
const DAY_MS = 24 * 3600 * 1000;

type Mode = "open" | "invite" | "closed";
type Headers = Record<string, string>;

/** An app with an initial admin; REGISTRATION as given (unset: the default). */
function setup(mode: Mode | null, opts: { env?: Headers; clock?: () => Date } = {}) {
  return createTestApp({
    INITIAL_ADMIN_EMAIL: ADMIN.email,
    INITIAL_ADMIN_PASSWORD: ADMIN.password,
    RATE_LIMIT_LOGIN_PER_MINUTE: "1000",
    RATE_LIMIT_REGISTER_PER_MINUTE: "1000",
    ...(mode ? { REGISTRATION: mode } : {}),
    ...opts.env,
  }, { clock: opts.clock });
}

async function login(h: TestApp, email: string, password: string): Promise<Headers> {
  const res = await h.request("/auth/login", { method: "POST", json: { email, password } });
  assert.equal(res.status, 200, `login ${email}`);
  return { authorization: `Bearer ${(await res.json()).access_token}` };
}

const loginAdmin = (h: TestApp) => login(h, ADMIN.email, ADMIN.password);

function register(h: TestApp, body: Record<string, unknown>, ip?: string) {
  return h.request("/auth/register", { method: "POST", json: { password: PASSWORD, ...body }, ip });
}

/** The status and error code of an answer. */
async function outcome(res: Response | Promise<Response>): Promise<[number, string | null]> {
  const r = await res;
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  return [r.status, body?.code ?? null];
}

interface CreatedInvite {
  id: string;
  code: string;
  status: string;
  expires_at: string;
  note: string | null;
  signup_url: string;
}

async function createInvite(h: TestApp, admin: Headers, body: unknown = {}) {
  const res = await h.request("/admin/invites", { method: "POST", headers: admin, json: body });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()) as CreatedInvite;
}

async function listInvites(h: TestApp, admin: Headers, query = "") {
  const res = await h.request(`/admin/invites${query}`, { headers: admin });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>[];
}

async function inviteOf(h: TestApp, admin: Headers, id: string) {
  const found = (await listInvites(h, admin)).find((i) => i.id === id);
  assert.ok(found, `invite ${id} is listed`);
  return found;
}

const userCount = async (h: TestApp) =>
  (await h.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM users`)[0].n;

// --- the dashboard, as a browser without JavaScript uses it ---

const formBody = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

function postForm(h: TestApp, path: string, fields: Record<string, string>, cookie?: string) {
  const headers: Headers = {
    "content-type": "application/x-www-form-urlencoded",
    accept: "text/html",
    origin: ORIGIN,
  };
  if (cookie) headers.cookie = cookie;
  return h.request(path, { method: "POST", headers, body: formBody(fields) });
}

function getPage(h: TestApp, path: string, cookie?: string) {
  const headers: Headers = { accept: "text/html" };
  if (cookie) headers.cookie = cookie;
  return h.request(path, { headers });
}

function refreshCookieOf(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("__Host-pomodex_refresh="));
  return set ? set.split(";")[0] : null;
}

async function browserLogin(h: TestApp, email: string, password: string) {
  const res = await postForm(h, "/login", { email, password });
  assert.equal(res.status, 303);
  const cookie = refreshCookieOf(res);
  assert.ok(cookie);
  return cookie;
}

async function csrfOf(h: TestApp, cookie: string, path = "/dashboard/admin") {
  const html = await (await getPage(h, path, cookie)).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(token, `a CSRF token on ${path}`);
  return token;
}

/** The <input> element with this id, as rendered. */
function inputOf(html: string, id: string): string | null {
  return new RegExp(`<input[^>]*\\bid="${id}"[^>]*>`).exec(html)?.[0] ?? null;
}

const escapedHtml = (s: string) => s.replace(/&/g, "&amp;");

Deno.test("REGISTRATION=open, the default: anyone signs up; invite_code is ignored", async () => {
  await using h = await setup(null);
  assert.equal(h.config.registration, "open");
  const admin = await loginAdmin(h);
  assert.deepEqual(await outcome(register(h, { email: "a@example.com" })), [201, null]);
  assert.deepEqual(
    await outcome(register(h, { email: "b@example.com", invite_code: "pdxinv_nonsense" })),
    [201, null],
  );
  // A real code given in open mode is not used up either.
  const invite = await createInvite(h, admin);
  assert.deepEqual(
    await outcome(register(h, { email: "c@example.com", invite_code: invite.code })),
    [201, null],
  );
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
  const [audit] = await h.sql`
    SELECT details FROM audit_log a JOIN users u ON u.id = a.user_id
    WHERE a.event = 'auth.register' AND u.email = 'c@example.com'`;
  assert.deepEqual(audit.details, {});

  // The dashboard: no invite field; a code in the form or the link changes nothing.
  const page = await (await getPage(h, `/signup?invite=${invite.code}`)).text();
  assert.match(page, /action="\/signup"/);
  assert.equal(inputOf(page, "invite"), null);
  assert.ok(!page.includes(invite.code));
  const res = await postForm(h, "/signup", {
    email: "d@example.com",
    password: PASSWORD,
    invite_code: "pdxinv_whatever",
  });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/dashboard?flash=signed_up");
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
  assert.match(await (await getPage(h, "/login")).text(), /href="\/signup">Create an account/);
});

Deno.test("REGISTRATION=closed: 403 registration_closed for everyone; the initial admin is still made", async () => {
  await using h = await setup("closed");
  const admin = await loginAdmin(h); // INITIAL_ADMIN_EMAIL was created at start
  const invite = await createInvite(h, admin); // admins may prepare codes for later
  const before = await userCount(h);
  assert.equal(before, 1);
  for (
    const body of [
      { email: "a@example.com" },
      { email: "a@example.com", invite_code: invite.code },
      { email: "not an email", password: "short" }, // closed, whatever the body says
    ]
  ) {
    const res = await register(h, body);
    assert.equal(res.status, 403, JSON.stringify(body));
    const error = await res.json();
    assert.equal(error.code, "registration_closed");
    assert.ok(error.detail);
  }
  assert.equal(await userCount(h), before);
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
  // The rule lives in auth, not only in the routes.
  await assert.rejects(
    registerUser(h.deps.auth, {
      email: "lib@example.com",
      password: PASSWORD,
      inviteCode: invite.code,
    }, { ip: "192.0.2.1" }),
    (err: AppError) => err.code === "registration_closed" && err.status === 403,
  );
  assert.equal(await userCount(h), before);

  // The dashboard says so plainly, with no form; a post anyway is refused the same.
  const page = await getPage(h, "/signup");
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<h1>Registration is closed<\/h1>/);
  assert.doesNotMatch(html, /<form[^>]*action="\/signup"/);
  assert.doesNotMatch(html, /name="password"/);
  const post = await postForm(h, "/signup", {
    email: "b@example.com",
    password: PASSWORD,
    invite_code: invite.code,
  });
  assert.equal(post.status, 403);
  assert.equal(refreshCookieOf(post), null);
  assert.match(await post.text(), /Registration is closed/);
  assert.equal(await userCount(h), before);
  // The login page does not offer an account it cannot give.
  const loginPage = await (await getPage(h, "/login")).text();
  assert.doesNotMatch(loginPage, /Create an account/);
  assert.match(loginPage, /action="\/login"/);
});

Deno.test("REGISTRATION=invite through the API", async (t) => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);

  await t.step("POST /admin/invites: the code once, no-store, 7 days by default", async () => {
    const res = await h.request("/admin/invites", {
      method: "POST",
      headers: admin,
      json: { note: "  for Ada  " },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.match(body.code, CODE_PATTERN, "256 random bits, base64url, prefixed");
    assert.equal(body.note, "for Ada", "trimmed");
    assert.equal(body.status, "active");
    assert.equal(body.signup_url, `${ORIGIN}/signup?invite=${body.code}`);
    const lifetime = Date.parse(body.expires_at) - Date.parse(body.created_at);
    assert.equal(lifetime, 7 * DAY_MS);
    // Only the SHA-256 of the code is stored.
    const [row] = await h.sql`SELECT * FROM invites WHERE id = ${body.id}`;
    assert.equal(row.codeHash, await sha256Hex(body.code));
    assert.ok(!JSON.stringify(row).includes(body.code));
    // Codes differ every time.
    const other = await createInvite(h, admin);
    assert.notEqual(other.code, body.code);
    // No body at all is the defaults too.
    const bare = await h.request("/admin/invites", { method: "POST", headers: admin });
    assert.equal(bare.status, 201);
    assert.equal((await bare.json()).note, null);
  });

  await t.step("expires_in_days 1-90 and the note are validated (422)", async () => {
    for (
      const bad of [
        { expires_in_days: 0 },
        { expires_in_days: 91 },
        { expires_in_days: 1.5 },
        { expires_in_days: "7" },
        { note: "x".repeat(201) },
        { note: "line\nbreak" },
        { note: "tab\there" },
        { note: "bell\u0007" },
        { note: "invoice\u202Efdp.exe" }, // RIGHT-TO-LEFT OVERRIDE (Cf)
        { note: "zero\u200Bwidth" }, // ZERO WIDTH SPACE (Cf)
        { note: "\uFEFFbom" }, // Cf
        { note: 42 },
      ]
    ) {
      const res = await h.request("/admin/invites", {
        method: "POST",
        headers: admin,
        json: bad,
      });
      assert.equal(res.status, 422, JSON.stringify(bad));
      assert.equal((await res.json()).code, "validation_error");
    }
    const longest = await createInvite(h, admin, {
      expires_in_days: 90,
      note: "é".repeat(200),
    });
    assert.equal(Date.parse(longest.expires_at) - Date.now() > 89 * DAY_MS, true);
    const shortest = await createInvite(h, admin, { expires_in_days: 1, note: "日本語 🚀" });
    assert.equal(shortest.note, "日本語 🚀");
  });

  await t.step("without a code: 403 invite_required (an empty one too)", async () => {
    const before = await userCount(h);
    for (const invite_code of [undefined, "", "   "]) {
      assert.deepEqual(
        await outcome(register(h, { email: "nocode@example.com", invite_code })),
        [403, "invite_required"],
      );
    }
    // Nor is it told whether an email has an account.
    assert.deepEqual(
      await outcome(register(h, { email: ADMIN.email })),
      [403, "invite_required"],
    );
    assert.equal(await userCount(h), before);
  });

  await t.step("a valid code signs one person up and is then used", async () => {
    const invite = await createInvite(h, admin, { note: "for Bea" });
    const res = await register(h, { email: "bea@example.com", invite_code: ` ${invite.code} ` });
    assert.equal(res.status, 201);
    const { user_id } = await res.json();
    await login(h, "bea@example.com", PASSWORD);
    const listed = await inviteOf(h, admin, invite.id);
    assert.equal(listed.status, "used");
    assert.equal(listed.used_by, user_id);
    assert.equal(listed.used_by_email, "bea@example.com");
    assert.ok(listed.used_at);
    // Used: refused for anyone else.
    assert.deepEqual(
      await outcome(register(h, { email: "bea2@example.com", invite_code: invite.code })),
      [403, "invite_invalid"],
    );
    assert.equal(
      (await h.sql`SELECT 1 FROM users WHERE email = 'bea2@example.com'`).length,
      0,
    );
  });

  await t.step("a taken email is 409 and leaves the code unused", async () => {
    const invite = await createInvite(h, admin);
    assert.deepEqual(
      await outcome(register(h, { email: "BEA@example.com", invite_code: invite.code })),
      [409, "email_taken"],
    );
    assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
    assert.deepEqual(
      await outcome(register(h, { email: "cy@example.com", invite_code: invite.code })),
      [201, null],
    );
  });

  await t.step("unknown, used and revoked codes get one and the same answer", async () => {
    const used = await createInvite(h, admin);
    await register(h, { email: "dee@example.com", invite_code: used.code });
    const revoked = await createInvite(h, admin);
    const del = await h.request(`/admin/invites/${revoked.id}`, {
      method: "DELETE",
      headers: admin,
    });
    assert.equal(del.status, 200);
    await del.body?.cancel();
    const bodies = new Set<string>();
    let n = 0;
    for (
      const code of [
        used.code,
        revoked.code,
        "pdxinv_" + "A".repeat(43),
        "nonsense",
        used.code.slice(0, -1),
        "x".repeat(256),
      ]
    ) {
      // An email of its own each time: 5 attempts an hour per email is the register limit.
      const res = await register(h, { email: `eve${n++}@example.com`, invite_code: code });
      assert.equal(res.status, 403, code.slice(0, 20));
      const body = await res.json();
      assert.equal(body.code, "invite_invalid");
      bodies.add(JSON.stringify(body));
    }
    assert.equal(bodies.size, 1, "one body for every bad code");
    assert.equal((await h.sql`SELECT 1 FROM users WHERE email LIKE 'eve%'`).length, 0);
    // A bad code with a taken email is still about the code: no account is confirmed.
    assert.deepEqual(
      await outcome(register(h, { email: ADMIN.email, invite_code: used.code })),
      [403, "invite_invalid"],
    );
  });
});

Deno.test("two registrations racing on one code: exactly one account", async (t) => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);

  await t.step("all of them past the checks and waiting on the code's row", async () => {
    const invite = await createInvite(h, admin);
    const before = await userCount(h);
    // Hold the invite's row so that every registration gets as far as consuming the code,
    // then let go: they meet at the conditional UPDATE, inside their transactions. The
    // holding connection is for the race only: its scope ends before the checks.
    {
      await using held = new AsyncDisposableStack();
      const holder = await h.sql.reserve();
      let released = false;
      held.defer(async () => {
        if (!released) await holder`ROLLBACK`.catch(() => {});
        holder.release();
      });
      await holder`BEGIN`;
      await holder`SELECT 1 FROM invites WHERE id = ${invite.id} FOR UPDATE`;
      const racers = Array.from(
        { length: 4 },
        (_, i) =>
          outcome(register(h, { email: `racer${i}@example.com`, invite_code: invite.code })),
      );
      const deadline = Date.now() + 20_000;
      for (;;) {
        const [{ n }] = await h.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND wait_event_type = 'Lock' AND query LIKE '%UPDATE invites SET used_by%'`;
        if (n === 4) break;
        assert.ok(Date.now() < deadline, `only ${n} of 4 registrations reached the code`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await holder`COMMIT`;
      released = true;
      const results = await Promise.all(racers);
      const won = results.filter(([status]) => status === 201);
      const lost = results.filter(([status, code]) => status === 403 && code === "invite_invalid");
      assert.equal(won.length, 1, JSON.stringify(results));
      assert.equal(lost.length, 3, JSON.stringify(results));
    }
    // The losers' accounts were rolled back with their transactions.
    assert.equal(await userCount(h), before + 1);
    const [row] = await h.sql<{ usedBy: string; email: string }[]>`
      SELECT i.used_by, u.email FROM invites i JOIN users u ON u.id = i.used_by
      WHERE i.id = ${invite.id}`;
    assert.match(row.email, /^racer\d@example\.com$/);
    const refused = await h.sql`
      SELECT 1 FROM audit_log WHERE event = 'auth.register_refused'
        AND details->>'invite_id' = ${invite.id}`;
    assert.equal(refused.length, 3);
  });

  await t.step("a plain burst of registrations on one code: one account", async () => {
    const invite = await createInvite(h, admin);
    const before = await userCount(h);
    const results = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) =>
          outcome(register(h, { email: `burst${i}@example.com`, invite_code: invite.code })),
      ),
    );
    assert.equal(results.filter(([s]) => s === 201).length, 1, JSON.stringify(results));
    assert.equal(
      results.filter(([s, c]) => s === 403 && c === "invite_invalid").length,
      5,
      JSON.stringify(results),
    );
    assert.equal(await userCount(h), before + 1);
  });
});

Deno.test("invites expire (by the auth clock)", async () => {
  const clock = adjustableClock();
  await using h = await setup("invite", { clock });
  let admin = await loginAdmin(h);
  const oneDay = await createInvite(h, admin, { expires_in_days: 1, note: "one day" });
  const week = await createInvite(h, admin, { note: "a week" });
  const stale = await createInvite(h, admin, { note: "stale" });
  clock.advance(DAY_MS - 60_000);
  admin = await loginAdmin(h); // access tokens live 15 minutes
  assert.equal((await inviteOf(h, admin, oneDay.id)).status, "active");
  clock.advance(60_000);
  admin = await loginAdmin(h);
  assert.equal((await inviteOf(h, admin, oneDay.id)).status, "expired", "at expires_at");
  assert.deepEqual(
    await outcome(register(h, { email: "late@example.com", invite_code: oneDay.code })),
    [403, "invite_invalid"],
  );
  // Still fine after six days; not after seven.
  clock.advance(5 * DAY_MS);
  admin = await loginAdmin(h);
  assert.deepEqual(
    await outcome(register(h, { email: "ontime@example.com", invite_code: week.code })),
    [201, null],
  );
  clock.advance(DAY_MS + 1000);
  admin = await loginAdmin(h);
  assert.deepEqual(
    await outcome(register(h, { email: "stale@example.com", invite_code: stale.code })),
    [403, "invite_invalid"],
  );
  const statuses = Object.fromEntries(
    (await listInvites(h, admin)).map((i) => [i.note, i.status]),
  );
  assert.deepEqual(statuses, { "one day": "expired", "a week": "used", stale: "expired" });
  const expired = await listInvites(h, admin, "?status=expired");
  assert.deepEqual(expired.map((i) => i.note).sort(), ["one day", "stale"]);
  assert.deepEqual((await listInvites(h, admin, "?status=used")).map((i) => i.note), [
    "a week",
  ]);
  assert.deepEqual(await listInvites(h, admin, "?status=active"), []);
});

Deno.test("revoking invites", async () => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);
  const del = (id: string) =>
    h.request(`/admin/invites/${id}`, { method: "DELETE", headers: admin });
  assert.deepEqual(await outcome(del(crypto.randomUUID())), [404, "not_found"]);
  assert.deepEqual(await outcome(del("not-a-uuid")), [404, "not_found"]);

  const invite = await createInvite(h, admin, { note: "to revoke" });
  const res = await del(invite.id);
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "revoked");
  assert.ok(body.revoked_at);
  assert.ok(!("code" in body));
  // Again: no change, no second event.
  const again = await del(invite.id);
  assert.equal(again.status, 200);
  assert.equal((await again.json()).revoked_at, body.revoked_at);
  assert.deepEqual(
    await outcome(register(h, { email: "r@example.com", invite_code: invite.code })),
    [403, "invite_invalid"],
  );
  assert.equal((await inviteOf(h, admin, invite.id)).status, "revoked");
  const events = await h.sql`
    SELECT actor_id, details FROM audit_log WHERE event = 'admin.invite_revoked'`;
  assert.equal(events.length, 1);
  assert.equal(events[0].details.inviteId, invite.id);

  // A used invite cannot be revoked: 409, and it stays used.
  const used = await createInvite(h, admin);
  await register(h, { email: "u@example.com", invite_code: used.code });
  assert.deepEqual(await outcome(del(used.id)), [409, "invite_used"]);
  const listed = await inviteOf(h, admin, used.id);
  assert.equal(listed.status, "used");
  assert.equal(listed.revoked_at, null);
  await login(h, "u@example.com", PASSWORD);
});

Deno.test("invites are for administrators with a login session only", async () => {
  await using h = await setup("open");
  const admin = await loginAdmin(h);
  const invite = await createInvite(h, admin);
  assert.equal((await register(h, { email: "carol@example.com" })).status, 201);
  const carol = await login(h, "carol@example.com", PASSWORD);
  const adminKey = (await (await h.request("/auth/api-keys", {
    method: "POST",
    headers: admin,
    json: { name: "admin key", lifetime: "1h" },
  })).json()).key;
  const client = await (await h.request("/admin/clients", {
    method: "POST",
    headers: admin,
    json: { name: "bot", scopes: ["projects:read", "projects:write"] },
  })).json();
  const clientToken = (await (await h.request("/auth/token", {
    method: "POST",
    json: {
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
    },
  })).json()).access_token;
  assert.ok(clientToken);

  const routes: [string, string, unknown?][] = [
    ["POST", "/admin/invites", {}],
    ["GET", "/admin/invites"],
    ["DELETE", `/admin/invites/${invite.id}`],
  ];
  const callers: [string, Headers][] = [
    ["a normal user", carol],
    ["an admin's API key", { authorization: `Bearer ${adminKey}` }],
    ["a client acting for an admin", { authorization: `Bearer ${clientToken}` }],
  ];
  for (const [method, path, json] of routes) {
    for (const [who, headers] of callers) {
      const res = await h.request(path, { method, headers, json });
      assert.equal(res.status, 403, `${method} ${path} by ${who}`);
      assert.equal((await res.json()).code, "forbidden");
    }
    const anonymous = await h.request(path, { method, json });
    assert.equal(anonymous.status, 401, `${method} ${path} anonymously`);
    assert.equal(anonymous.headers.get("www-authenticate"), "Bearer");
    await anonymous.body?.cancel();
  }
  // Nothing was made or revoked by any of them.
  const [{ n }] = await h.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM invites`;
  assert.equal(n, 1);
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");

  // The dashboard's admin page is not there for a normal user either.
  assert.equal((await register(h, { email: "dan@example.com" })).status, 201);
  const cookie = await browserLogin(h, "dan@example.com", PASSWORD);
  assert.equal((await getPage(h, "/dashboard/admin", cookie)).status, 404);
  const token = await csrfOf(h, cookie, "/dashboard");
  const made = await postForm(h, "/dashboard/admin/invites", {
    _csrf: token,
    expires_in_days: "7",
  }, cookie);
  assert.equal(made.status, 404);
  const revoked = await postForm(h, `/dashboard/admin/invites/${invite.id}/revoke`, {
    _csrf: token,
  }, cookie);
  assert.equal(revoked.status, 404);
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
});

Deno.test("failed codes count against the register rate limit", async () => {
  // The defaults: 10 a minute per IP, 5 an hour per email; on a clock that stands still, so
  // that no window ends between the 10th attempt and the 11th.
  await using h = await createTestApp({
    INITIAL_ADMIN_EMAIL: ADMIN.email,
    INITIAL_ADMIN_PASSWORD: ADMIN.password,
    REGISTRATION: "invite",
  }, { clock: steadyClock() });
  const admin = await loginAdmin(h);
  const invite = await createInvite(h, admin);
  const ip = "192.0.2.77";
  for (let i = 0; i < 10; i++) {
    assert.deepEqual(
      await outcome(register(h, { email: `guess${i}@example.com`, invite_code: `x${i}` }, ip)),
      [403, "invite_invalid"],
    );
  }
  // The next attempt from that IP is refused before its code is looked at, a good one too.
  const limited = await register(h, { email: "real@example.com", invite_code: invite.code }, ip);
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  await limited.body?.cancel();
  assert.equal((await inviteOf(h, admin, invite.id)).status, "active");
  // Per email as well: five misses on one address, then it waits.
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(
      await outcome(
        register(h, { email: "target@example.com", invite_code: "bad" }, `198.51.100.${i}`),
      ),
      [403, "invite_invalid"],
    );
  }
  assert.deepEqual(
    await outcome(
      register(h, { email: "target@example.com", invite_code: invite.code }, "198.51.100.99"),
    ),
    [429, "rate_limited"],
  );
  // A missing code is an attempt too.
  const ip2 = "192.0.2.78";
  for (let i = 0; i < 10; i++) {
    await (await register(h, { email: `m${i}@example.com` }, ip2)).body?.cancel();
  }
  assert.deepEqual(
    await outcome(register(h, { email: "m@example.com", invite_code: invite.code }, ip2)),
    [429, "rate_limited"],
  );
  // Another IP with the code still gets in.
  assert.deepEqual(
    await outcome(
      register(h, { email: "real@example.com", invite_code: invite.code }, "192.0.2.79"),
    ),
    [201, null],
  );
});

Deno.test("REGISTRATION=invite on the dashboard's sign-up form", async () => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);
  const invite = await createInvite(h, admin);

  // The link an admin shares fills the field in.
  const linked = await getPage(h, `/signup?invite=${encodeURIComponent(invite.code)}`);
  assert.equal(linked.status, 200);
  const linkedHtml = await linked.text();
  assert.match(linkedHtml, /<label for="invite">Invite code<\/label>/);
  assert.ok(inputOf(linkedHtml, "invite")?.includes(`value="${invite.code}"`));
  assert.ok(inputOf(linkedHtml, "invite")?.includes('name="invite_code"'));
  // Without one, the field is there and empty.
  const plain = await (await getPage(h, "/signup")).text();
  const emptyField = inputOf(plain, "invite");
  assert.ok(emptyField?.includes('name="invite_code"'));
  assert.doesNotMatch(emptyField ?? "", /value="[^"]/);
  assert.match(plain, /needs an invite code/);

  // No code: the field says so, inline, and nothing is created.
  const before = await userCount(h);
  const missing = await postForm(h, "/signup", { email: "ann@example.com", password: PASSWORD });
  assert.equal(missing.status, 422);
  const missingHtml = await missing.text();
  assert.match(
    missingHtml,
    /id="invite-error"[^>]*>[^<]*<span[^>]*>⚠<\/span> Enter your invite code\./,
  );
  assert.match(inputOf(missingHtml, "invite") ?? "", /aria-invalid="true"/);
  assert.match(inputOf(missingHtml, "email") ?? "", /value="ann@example.com"/, "kept");

  // A bad code: inline too, with the code kept for correcting.
  const bad = await postForm(h, "/signup", {
    email: "ann@example.com",
    password: PASSWORD,
    invite_code: "pdxinv_wrong",
  });
  assert.equal(bad.status, 403);
  assert.equal(refreshCookieOf(bad), null);
  const badHtml = await bad.text();
  assert.match(badHtml, /id="invite-error"[^>]*>.*This invite code cannot be used\./s);
  assert.ok(inputOf(badHtml, "invite")?.includes('value="pdxinv_wrong"'));
  assert.match(inputOf(badHtml, "invite") ?? "", /aria-invalid="true"/);
  assert.equal(await userCount(h), before);

  // Other problems still show at their own fields.
  const short = await postForm(h, "/signup", {
    email: "ann@example.com",
    password: "short",
    invite_code: invite.code,
  });
  assert.equal(short.status, 422);
  assert.match(await short.text(), /id="password-error"/);

  // The good code: signed up and logged in, the invite used.
  const ok = await postForm(h, "/signup", {
    email: "ann@example.com",
    password: PASSWORD,
    invite_code: invite.code,
  });
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.get("location"), "/dashboard?flash=signed_up");
  const cookie = refreshCookieOf(ok);
  assert.ok(cookie);
  assert.equal((await getPage(h, "/dashboard", cookie)).status, 200);
  const listed = await inviteOf(h, admin, invite.id);
  assert.equal(listed.status, "used");
  assert.equal(listed.used_by_email, "ann@example.com");

  // Used now: the same form, the same message as for any bad code.
  const reused = await postForm(h, "/signup", {
    email: "ben@example.com",
    password: PASSWORD,
    invite_code: invite.code,
  });
  assert.equal(reused.status, 403);
  assert.match(await reused.text(), /This invite code cannot be used\./);
  assert.equal(await userCount(h), before + 1);
});

Deno.test("the admin page's Invites section, by forms with CSRF and without JavaScript", async () => {
  await using h = await setup("invite", { env: { PUBLIC_URL: "https://pomodex.example.org" } });
  const origin = "https://pomodex.example.org";
  const form = (path: string, fields: Record<string, string>, cookie: string) =>
    h.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        accept: "text/html",
        origin,
        cookie,
      },
      body: formBody(fields),
    });
  const res = await h.request("/login", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin },
    body: formBody(ADMIN),
  });
  const cookie = refreshCookieOf(res)!;
  assert.ok(cookie);
  const page = await getPage(h, "/dashboard/admin", cookie);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<h2 id="invites">Invites<\/h2>/);
  assert.match(html, /REGISTRATION=invite/);
  assert.match(html, /No invites yet\./);
  assert.match(html, /<form method="post" action="\/dashboard\/admin\/invites"/);
  assert.match(inputOf(html, "invite-days") ?? "", /value="7"/);
  assert.ok(inputOf(html, "invite-note"));
  const token = /name="_csrf" value="([^"]+)"/.exec(html)![1];

  // Create: the answer is the page with the code and the link, once.
  const created = await form("/dashboard/admin/invites", {
    _csrf: token,
    expires_in_days: "3",
    note: "for Zoe",
  }, cookie);
  assert.equal(created.status, 201);
  assert.equal(created.headers.get("cache-control"), "no-store");
  assert.equal(created.headers.get("location"), null, "not a redirect: no URL carries it");
  const createdHtml = await created.text();
  const code = /id="new-invite-code"[^>]*value="([^"]+)"/.exec(createdHtml)?.[1] ??
    /value="([^"]+)"[^>]*id="new-invite-code"/.exec(createdHtml)?.[1];
  assert.ok(code);
  assert.match(code, CODE_PATTERN);
  assert.ok(
    inputOf(createdHtml, "new-invite-link")?.includes(
      `value="${escapedHtml(`${origin}/signup?invite=${code}`)}"`,
    ),
    "the sign-up link under PUBLIC_URL",
  );
  assert.match(createdHtml, /not shown again/);
  const [row] = await h.sql<{ note: string; expiresAt: Date; createdAt: Date; id: string }[]>`
    SELECT id, note, expires_at, created_at FROM invites`;
  assert.equal(row.note, "for Zoe");
  assert.equal(row.expiresAt.getTime() - row.createdAt.getTime(), 3 * DAY_MS);

  // Later views list it with its status, never its code.
  const later = await (await getPage(h, "/dashboard/admin", cookie)).text();
  assert.ok(!later.includes(code), "the code is not shown again");
  const rowHtml = new RegExp(`<tr[^>]*data-invite-id="${row.id}"[^>]*>.*?</tr>`, "s")
    .exec(later)?.[0] ?? "";
  assert.match(rowHtml, /for Zoe/);
  assert.match(rowHtml, /data-status="active"[^>]*>Active</);
  assert.match(rowHtml, new RegExp(`action="/dashboard/admin/invites/${row.id}/revoke"`));

  // The link works: someone signs up with it.
  const signup = await h.request("/signup", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin },
    body: formBody({ email: "zoe@example.com", password: PASSWORD, invite_code: code }),
  });
  assert.equal(signup.status, 303);
  const usedHtml = await (await getPage(h, "/dashboard/admin", cookie)).text();
  const usedRow = new RegExp(`<tr[^>]*data-invite-id="${row.id}"[^>]*>.*?</tr>`, "s")
    .exec(usedHtml)?.[0] ?? "";
  assert.match(usedRow, /data-status="used"[^>]*>Used</);
  assert.match(usedRow, /zoe@example\.com/);
  assert.doesNotMatch(usedRow, /revoke/, "no revoke button for a used invite");
  // Posting the revoke anyway says why not.
  const usedRevoke = await form(`/dashboard/admin/invites/${row.id}/revoke`, {
    _csrf: token,
  }, cookie);
  assert.equal(usedRevoke.status, 303);
  assert.equal(
    usedRevoke.headers.get("location"),
    "/dashboard/admin?flash=invite_already_used",
  );

  // Revoke an active one.
  await form("/dashboard/admin/invites", { _csrf: token, expires_in_days: "7" }, cookie);
  const [second] = await h.sql<{ id: string }[]>`
    SELECT id FROM invites WHERE id <> ${row.id}`;
  const revoke = await form(`/dashboard/admin/invites/${second.id}/revoke`, {
    _csrf: token,
  }, cookie);
  assert.equal(revoke.status, 303);
  assert.equal(revoke.headers.get("location"), "/dashboard/admin?flash=invite_revoked");
  const flashed = await (await getPage(h, "/dashboard/admin?flash=invite_revoked", cookie))
    .text();
  assert.match(flashed, /Invite revoked\./);
  const revokedRow = new RegExp(`<tr[^>]*data-invite-id="${second.id}"[^>]*>.*?</tr>`, "s")
    .exec(flashed)?.[0] ?? "";
  assert.match(revokedRow, /data-status="revoked"[^>]*>Revoked</);
  assert.match(revokedRow, /\(no note\)/);
  const unknown = await form(`/dashboard/admin/invites/${crypto.randomUUID()}/revoke`, {
    _csrf: token,
  }, cookie);
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();

  // Bad input: the page again, the problem at its field, nothing made.
  for (
    const [fields, field, message] of [
      [{ expires_in_days: "0" }, "invite-days", /from 1 to 90/],
      [{ expires_in_days: "91" }, "invite-days", /from 1 to 90/],
      [{ expires_in_days: "seven" }, "invite-days", /from 1 to 90/],
      [{ expires_in_days: "" }, "invite-days", /from 1 to 90/],
      [{ expires_in_days: "7", note: "x".repeat(201) }, "invite-note", /at most 200/],
      [{ expires_in_days: "7", note: "a\u202Eb" }, "invite-note", /format characters/],
      [{ expires_in_days: "7", note: "a\nb" }, "invite-note", /control characters/],
    ] as const
  ) {
    const bad = await form("/dashboard/admin/invites", { _csrf: token, ...fields }, cookie);
    assert.equal(bad.status, 422, JSON.stringify(fields));
    const badHtml = await bad.text();
    assert.match(badHtml, new RegExp(`id="${field}-error"`), JSON.stringify(fields));
    assert.match(badHtml, message);
    assert.match(inputOf(badHtml, field) ?? "", /aria-invalid="true"/);
    assert.doesNotMatch(badHtml, /id="new-invite-code"/);
  }
  const [{ n }] = await h.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM invites`;
  assert.equal(n, 2);

  // CSRF: without the token, or from another origin, nothing happens.
  const noToken = await form("/dashboard/admin/invites", { expires_in_days: "7" }, cookie);
  assert.equal(noToken.status, 403);
  await noToken.body?.cancel();
  const crossSite = await h.request("/dashboard/admin/invites", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "text/html",
      origin: "https://evil.example",
      cookie,
    },
    body: formBody({ _csrf: token, expires_in_days: "7" }),
  });
  assert.equal(crossSite.status, 403);
  await crossSite.body?.cancel();
  const noTokenRevoke = await form(`/dashboard/admin/invites/${row.id}/revoke`, {}, cookie);
  assert.equal(noTokenRevoke.status, 403);
  await noTokenRevoke.body?.cancel();
  const [{ m }] = await h.sql<{ m: number }[]>`SELECT count(*)::int AS m FROM invites`;
  assert.equal(m, 2);
});

Deno.test("invite codes never appear in a list, the audit log or the logs", async () => {
  await using h = await setup("invite");
  // The same app over the same database, keeping its JSON log lines (debug and up).
  const logLines: string[] = [];
  const deps = await createServices(
    h.config,
    h.sql,
    createLogger("debug", (line) => logLines.push(line)),
  );
  // Its own engine client: h closes only the one it made.
  using cleanup = new DisposableStack();
  cleanup.defer(() => deps.engine.close());
  const app = createApp(deps);
  const call = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    if (init.json !== undefined) headers.set("content-type", "application/json");
    return app.fetch(
      new Request(`http://localhost${path}`, {
        ...init,
        headers,
        body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
      }),
      { remoteAddr: { transport: "tcp", hostname: "192.0.2.10", port: 1 } },
    );
  };
  const login = await (await call("/auth/login", { method: "POST", json: ADMIN })).json();
  const admin = { authorization: `Bearer ${login.access_token}` };
  const codes: string[] = [];
  for (const note of ["one", "two", "three"]) {
    const res = await call("/admin/invites", { method: "POST", headers: admin, json: { note } });
    codes.push((await res.json()).code);
  }
  // One used through the API, one through the dashboard (by its link), one revoked; bad
  // and used attempts besides.
  await (await call("/auth/register", {
    method: "POST",
    json: { email: "api@example.com", password: PASSWORD, invite_code: codes[0] },
  })).body?.cancel();
  await (await call(`/signup?invite=${codes[1]}`, { headers: { accept: "text/html" } })).text();
  await (await call("/signup", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "text/html",
      origin: ORIGIN,
    },
    body: formBody({ email: "page@example.com", password: PASSWORD, invite_code: codes[1] }),
  })).body?.cancel();
  await (await call("/auth/register", {
    method: "POST",
    json: { email: "again@example.com", password: PASSWORD, invite_code: codes[0] },
  })).body?.cancel();
  const [third] = await h.sql<{ id: string }[]>`SELECT id FROM invites WHERE note = 'three'`;
  await (await call(`/admin/invites/${third.id}`, { method: "DELETE", headers: admin })).body
    ?.cancel();
  await (await call("/auth/register", {
    method: "POST",
    json: { email: "late@example.com", password: PASSWORD, invite_code: codes[2] },
  })).body?.cancel();

  const listRes = await call("/admin/invites", { headers: admin });
  const listText = await listRes.text();
  const list = JSON.parse(listText);
  assert.equal(list.length, 3);
  assert.deepEqual(list.map((i: { status: string }) => i.status).sort(), [
    "revoked",
    "used",
    "used",
  ]);
  for (const item of list) {
    assert.deepEqual(Object.keys(item).sort(), [
      "created_at",
      "created_by",
      "expires_at",
      "id",
      "note",
      "revoked_at",
      "status",
      "used_at",
      "used_by",
      "used_by_email",
    ]);
  }
  const adminPage = await (await call("/dashboard/admin", {
    headers: {
      accept: "text/html",
      cookie: await (async () => {
        const res = await call("/login", {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
          body: formBody(ADMIN),
        });
        return refreshCookieOf(res)!;
      })(),
    },
  })).text();
  const audit = (await h.sql`SELECT * FROM audit_log`).map((r) => JSON.stringify(r)).join("\n");
  const stored = (await h.sql`SELECT * FROM invites`).map((r) => JSON.stringify(r)).join("\n");
  const logs = logLines.join("\n");
  assert.ok(logLines.length > 10, "the logs were captured");
  for (const code of codes) {
    const secret = code.slice("pdxinv_".length);
    assert.ok(!listText.includes(secret), "a code in GET /admin/invites");
    assert.ok(!adminPage.includes(secret), "a code on the admin page");
    assert.ok(!audit.includes(secret), "a code in the audit log");
    assert.ok(!stored.includes(secret), "a code in the invites table");
    assert.ok(!logs.includes(secret), "a code in the logs");
  }
});

Deno.test("the audit events of invites and registrations", async () => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);
  const [{ id: adminId }] = await h.sql<{ id: string }[]>`
    SELECT id FROM users WHERE email = ${ADMIN.email}`;
  const created = await h.request("/admin/invites", {
    method: "POST",
    headers: { ...admin, "x-request-id": "r-invite" },
    json: { expires_in_days: 2, note: "for Flo" },
    ip: "192.0.2.5",
  });
  const invite = await created.json();
  await (await h.request("/auth/register", {
    method: "POST",
    headers: { "x-request-id": "r-missing" },
    json: { email: "flo@example.com", password: PASSWORD },
    ip: "192.0.2.6",
  })).body?.cancel();
  await (await h.request("/auth/register", {
    method: "POST",
    headers: { "x-request-id": "r-unknown" },
    json: { email: "flo@example.com", password: PASSWORD, invite_code: "pdxinv_guess" },
    ip: "192.0.2.6",
  })).body?.cancel();
  const registered = await h.request("/auth/register", {
    method: "POST",
    headers: { "x-request-id": "r-register" },
    json: { email: "flo@example.com", password: PASSWORD, invite_code: invite.code },
    ip: "192.0.2.6",
  });
  const { user_id } = await registered.json();
  await (await h.request("/auth/register", {
    method: "POST",
    headers: { "x-request-id": "r-used" },
    json: { email: "gus@example.com", password: PASSWORD, invite_code: invite.code },
    ip: "192.0.2.7",
  })).body?.cancel();
  const other = await createInvite(h, admin);
  await (await h.request(`/admin/invites/${other.id}`, {
    method: "DELETE",
    headers: { ...admin, "x-request-id": "r-revoke" },
    ip: "192.0.2.5",
  })).body?.cancel();

  const rows = await h.sql<
    {
      event: string;
      userId: string | null;
      actorId: string | null;
      ip: string;
      requestId: string;
      details: Record<string, unknown>;
    }[]
  >`SELECT event, user_id, actor_id, ip, request_id, details FROM audit_log
    WHERE request_id LIKE 'r-%' ORDER BY id`;
  const by = Object.fromEntries(rows.map((r) => [r.requestId, r]));
  assert.equal(by["r-invite"].event, "admin.invite_created");
  assert.equal(by["r-invite"].actorId, adminId);
  assert.equal(by["r-invite"].ip, "192.0.2.5");
  assert.deepEqual(by["r-invite"].details, {
    inviteId: invite.id,
    expiresAt: invite.expires_at,
    note: "for Flo",
  });
  assert.equal(by["r-missing"].event, "auth.register_refused");
  assert.deepEqual(by["r-missing"].details, { reason: "invite_required", inviteId: null });
  assert.equal(by["r-missing"].ip, "192.0.2.6");
  assert.equal(by["r-unknown"].event, "auth.register_refused");
  assert.deepEqual(by["r-unknown"].details, { reason: "invite_invalid", inviteId: null });
  assert.equal(by["r-register"].event, "auth.register");
  assert.equal(by["r-register"].userId, user_id);
  assert.deepEqual(by["r-register"].details, { inviteId: invite.id });
  assert.equal(by["r-used"].event, "auth.register_refused");
  assert.deepEqual(by["r-used"].details, { reason: "invite_invalid", inviteId: invite.id });
  assert.equal(by["r-revoke"].event, "admin.invite_revoked");
  assert.equal(by["r-revoke"].actorId, adminId);
  assert.deepEqual(by["r-revoke"].details, { inviteId: other.id });
  assert.equal(rows.length, 6, rows.map((r) => r.event).join(", "));
});

Deno.test({
  name: "in a real browser with JavaScript off, 390 px wide: invite, share the link, sign up",
  ignore: SKIP_BROWSER_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The app's: made after the server, closed after it too, once nothing hands it requests.
    await using appCleanup = new AsyncDisposableStack();
    // Bound first, on port 0: the app (whose PUBLIC_URL names the port) is made after.
    let app: TestApp["app"] | null = null;
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req, info) =>
        app ? app.fetch(req, { remoteAddr: info.remoteAddr }) : new Response(null, { status: 503 }),
    );
    const base = `http://localhost:${server.addr.port}`;
    const h = appCleanup.use(await setup("invite", { env: { PUBLIC_URL: base } }));
    app = h.app;
    await using cleanup = new AsyncDisposableStack();
    const browser = await withDeadline(
      "launching chromium",
      60_000,
      () => launchBrowser({ javaScript: false }),
    );
    cleanup.defer(() => browser.close());
    const { page } = browser;
    await page.setViewportSize({ width: 390, height: 844 });
    const sideways = () =>
      page.evaluate(() => {
        // deno-lint-ignore no-explicit-any -- the page's document
        const d = (globalThis as any).document.documentElement;
        return d.scrollWidth - d.clientWidth;
      });
    // (axe-core needs page scripts to run, so tests/browser_test.ts checks with it.)
    const fits = async (what: string) =>
      assert.ok((await sideways()) <= 0, `no sideways scrolling on ${what}`);

    await page.goto(`${base}/login`);
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(`${base}/dashboard`);
    await page.goto(`${base}/dashboard/admin`);
    await fits("the admin page");

    await page.getByLabel("Expires after (days)").fill("14");
    await page.getByLabel("Note (optional)").fill("for a phone user with a long name");
    await page.getByRole("button", { name: "Create invite" }).click();
    const link = await page.getByLabel("Sign-up link").inputValue();
    const code = await page.getByLabel("Invite code").inputValue();
    assert.match(code, CODE_PATTERN);
    assert.equal(link, `${base}/signup?invite=${code}`);
    await fits("the admin page with a new code");
    await screenshot(page, "invites-admin-phone");

    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/login/);
    await page.goto(link);
    assert.equal(await page.getByLabel("Invite code").inputValue(), code);
    await fits("the sign-up page");
    await page.getByLabel("Email").fill("phone@example.com");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.waitForURL(/\/dashboard\?flash=signed_up/);
    const [row] = await h.sql`
      SELECT u.email FROM invites i JOIN users u ON u.id = i.used_by`;
    assert.equal(row.email, "phone@example.com");
  },
});

Deno.test("an invite note that is not valid Unicode (a lone surrogate) is a 422, not a 500", async () => {
  await using h = await setup("invite");
  const admin = await loginAdmin(h);
  for (const note of ["\ud800", "a\udfffb"]) {
    const res = await h.request("/admin/invites", {
      method: "POST",
      headers: admin,
      json: { note },
    });
    assert.equal(res.status, 422, await res.clone().text());
    assert.equal((await res.json()).errors[0].path, "note");
  }
});
