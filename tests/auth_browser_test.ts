// Dashboard sessions: the refresh token lives in a __Host- cookie; CSRF is checked by origin.
import assert from "node:assert/strict";
import { createTestApp, type TestApp } from "./helpers/app.ts";

const origin = "http://localhost:8000"; // PUBLIC_URL's default
const email = "browser@example.com";
const password = "correct horse battery";

function cookieOf(res: Response): { value: string; attributes: string[] } {
  const header = res.headers.get("set-cookie") ?? "";
  const [pair, ...attributes] = header.split(";").map((s) => s.trim());
  const [name, value] = pair.split("=");
  assert.equal(name, "__Host-pomodex_refresh");
  return { value, attributes: attributes.map((a) => a.toLowerCase()) };
}

function browserLogin(h: TestApp, headers: Record<string, string> = { origin }) {
  return h.request("/auth/browser/login", { method: "POST", json: { email, password }, headers });
}

Deno.test("browser sessions", async (t) => {
  await using h = await createTestApp();
  await h.request("/auth/register", { method: "POST", json: { email, password } });

  await t.step("login sets an HttpOnly, Secure, SameSite=Strict __Host- cookie", async () => {
    const res = await browserLogin(h);
    assert.equal(res.status, 200);
    const cookie = cookieOf(res);
    assert.ok(cookie.value.length >= 43);
    for (const a of ["httponly", "secure", "samesite=strict", "path=/"]) {
      assert.ok(cookie.attributes.includes(a), `${a} in ${cookie.attributes}`);
    }
    assert.ok(!cookie.attributes.some((a) => a.startsWith("domain=")));
    const maxAge = Number(cookie.attributes.find((a) => a.startsWith("max-age="))!.slice(8));
    assert.ok(Math.abs(maxAge - 30 * 86400) < 60);
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["access_token", "expires_in", "token_type"]);
    assert.ok(!JSON.stringify(body).includes(cookie.value), "never the refresh token in JSON");
    assert.equal(res.headers.get("cache-control"), "no-store");
    const me = await h.request("/auth/me", {
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    assert.equal(me.status, 200);
    await me.body?.cancel();
    const [session] = await h.sql`SELECT kind FROM sessions ORDER BY created_at DESC LIMIT 1`;
    assert.equal(session.kind, "browser");
  });

  await t.step("an HTML form body works too", async () => {
    const res = await h.request("/auth/browser/login", {
      method: "POST",
      headers: { origin, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ email, password }).toString(),
    });
    assert.equal(res.status, 200);
    assert.ok(cookieOf(res).value);
    await res.body?.cancel();
    const bad = await h.request("/auth/browser/login", {
      method: "POST",
      headers: { origin, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ email }).toString(),
    });
    assert.equal(bad.status, 422);
    await bad.body?.cancel();
    const odd = await h.request("/auth/browser/login", {
      method: "POST",
      headers: { origin, "content-type": "text/plain" },
      body: "email=x",
    });
    assert.equal(odd.status, 415);
    assert.equal((await odd.json()).code, "unsupported_media_type");
  });

  await t.step("wrong credentials: the same 401 as the API, and no cookie", async () => {
    const res = await h.request("/auth/browser/login", {
      method: "POST",
      json: { email, password: "wrong password" },
      headers: { origin },
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("set-cookie"), null);
    assert.equal((await res.json()).code, "invalid_credentials");
  });

  await t.step("refresh reads the cookie, rotates it and sets the new one", async () => {
    const first = cookieOf(await browserLogin(h)).value;
    const res = await h.request("/auth/browser/refresh", {
      method: "POST",
      headers: { origin, cookie: `__Host-pomodex_refresh=${first}` },
    });
    assert.equal(res.status, 200);
    const second = cookieOf(res).value;
    assert.notEqual(second, first);
    const body = await res.json();
    assert.ok(body.access_token);
    assert.equal(body.refresh_token, undefined);
    // The old cookie is dead (outside any race with the rotation).
    const stale = await h.request("/auth/browser/refresh", {
      method: "POST",
      headers: { origin, cookie: `__Host-pomodex_refresh=${first}` },
    });
    assert.equal(stale.status, 401);
    await stale.body?.cancel();
    const none = await h.request("/auth/browser/refresh", {
      method: "POST",
      headers: { origin },
    });
    assert.equal(none.status, 401);
    await none.body?.cancel();
  });

  await t.step("logout revokes the session and clears the cookie", async () => {
    const login = await browserLogin(h);
    const cookie = cookieOf(login).value;
    const access = (await login.json()).access_token;
    const res = await h.request("/auth/browser/logout", {
      method: "POST",
      headers: { origin, cookie: `__Host-pomodex_refresh=${cookie}` },
    });
    assert.equal(res.status, 204);
    const cleared = cookieOf(res);
    assert.equal(cleared.value, "");
    assert.ok(cleared.attributes.includes("max-age=0"));
    const me = await h.request("/auth/me", { headers: { authorization: `Bearer ${access}` } });
    assert.equal(me.status, 401);
    await me.body?.cancel();
  });

  await t.step("CSRF: no Origin, or another origin, is 403 csrf_failed", async () => {
    const cookie = cookieOf(await browserLogin(h)).value;
    const attempts: [string, Record<string, string>][] = [
      ["/auth/browser/login", {}],
      ["/auth/browser/login", { origin: "https://evil.example" }],
      ["/auth/browser/login", { origin: "null" }],
      ["/auth/browser/login", { origin: "http://localhost:8000.evil.example" }],
      ["/auth/browser/refresh", { cookie: `__Host-pomodex_refresh=${cookie}` }],
      ["/auth/browser/refresh", {
        cookie: `__Host-pomodex_refresh=${cookie}`,
        origin: "https://evil.example",
        "sec-fetch-site": "cross-site",
      }],
      ["/auth/browser/logout", { cookie: `__Host-pomodex_refresh=${cookie}` }],
    ];
    for (const [path, headers] of attempts) {
      const res = await h.request(path, {
        method: "POST",
        headers,
        json: path.endsWith("login") ? { email, password } : undefined,
      });
      assert.equal(res.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.equal((await res.json()).code, "csrf_failed");
      assert.equal(res.headers.get("set-cookie"), null);
    }
    // The refused logout did not log anyone out.
    const still = await h.request("/auth/browser/refresh", {
      method: "POST",
      headers: { "sec-fetch-site": "same-origin", cookie: `__Host-pomodex_refresh=${cookie}` },
    });
    assert.equal(still.status, 200, "Sec-Fetch-Site: same-origin is accepted");
    await still.body?.cancel();
  });
});
