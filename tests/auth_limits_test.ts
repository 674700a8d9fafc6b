// Rate limits: per IP, per account, across instances, and not fooled by forwarding headers.
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { estimate, retryAfterSeconds } from "@/auth/rate-limit.ts";
import { silentLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { steadyClock } from "./helpers/clock.ts";

const password = "correct horse battery";

function login(h: TestApp, email: string, pw: string, init: { ip?: string; xff?: string } = {}) {
  return h.request("/auth/login", {
    method: "POST",
    json: { email, password: pw },
    ip: init.ip,
    headers: init.xff ? { "x-forwarded-for": init.xff } : {},
  });
}

function refresh(h: TestApp, refreshToken: string, ip: string) {
  return h.request("/auth/refresh", { method: "POST", json: { refresh_token: refreshToken }, ip });
}

async function statusOf(res: Response | Promise<Response>): Promise<number> {
  const r = await res;
  await r.body?.cancel();
  return r.status;
}

Deno.test("the sliding estimate and Retry-After", () => {
  const rule = { bucket: "t", limit: 10, windowSeconds: 60 };
  assert.equal(estimate(rule, { previous: 10, current: 0, elapsedMs: 30_000 }), 5);
  assert.equal(retryAfterSeconds(rule, { previous: 0, current: 10, elapsedMs: 0 }, 0), 0);
  assert.equal(retryAfterSeconds(rule, { previous: 0, current: 9, elapsedMs: 0 }, 1), 0);
  // 11 this window: wait for the window to end and 1/11 of the next to pass.
  assert.equal(
    retryAfterSeconds(rule, { previous: 0, current: 11, elapsedMs: 10_000 }, 0),
    Math.ceil((50_000 + 60_000 * (1 / 11)) / 1000),
  );
  // The previous window's 10 fade: with 5 now, room for 1 more needs them down to 4.
  assert.equal(retryAfterSeconds(rule, { previous: 10, current: 5, elapsedMs: 0 }, 1), 36);
  // Whatever the case, after waiting that long the hit fits.
  for (
    const [previous, current, elapsedMs, pending] of [[7, 9, 1234, 1], [30, 2, 59_000, 1], [
      0,
      40,
      5_000,
      0,
    ], [12, 12, 30_000, 1]]
  ) {
    const wait = retryAfterSeconds(rule, { previous, current, elapsedMs }, pending) * 1000;
    const later = elapsedMs + wait >= 60_000
      ? { previous: current, current: 0, elapsedMs: elapsedMs + wait - 60_000 }
      : { previous, current, elapsedMs: elapsedMs + wait };
    assert.ok(estimate(rule, later) + pending <= rule.limit, JSON.stringify({ previous, current }));
  }
});

Deno.test("rate limits", async (t) => {
  // Time moves only when a step moves it: no window ends in the middle of a burst.
  const clock = steadyClock();
  // The login back-off's waits, recorded instead of slept through.
  const delays: number[] = [];
  const sleep = (ms: number) => {
    delays.push(ms);
    return Promise.resolve();
  };
  /** Moves the clock just past the start of a 15-minute window: a fresh count per step. */
  const atWindowStart = () => {
    const size = 15 * 60_000;
    clock.advance(size - (clock().getTime() % size) + 1_000);
  };
  await using h = await createTestApp({}, { clock, sleep });
  await h.request("/auth/register", {
    method: "POST",
    json: { email: "victim@example.com", password },
    ip: "10.9.9.9",
  });

  await t.step("login: 30 a minute per IP, then 429 rate_limited with Retry-After", async () => {
    for (let i = 0; i < 30; i++) {
      assert.equal(
        await statusOf(login(h, `u${i}@example.com`, "wrong-password", { ip: "10.0.0.1" })),
        401,
      );
    }
    const res = await login(h, "victim@example.com", password, { ip: "10.0.0.1" });
    assert.equal(res.status, 429);
    assert.equal((await res.json()).code, "rate_limited");
    const retryAfter = Number(res.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 120);
    // Another client is not affected.
    assert.equal(
      await statusOf(login(h, "victim@example.com", password, { ip: "10.0.0.2" })),
      200,
    );
  });

  await t.step("rotating X-Forwarded-For does not reset it (no trusted proxy)", async () => {
    for (let i = 0; i < 5; i++) {
      const res = await login(h, "victim@example.com", password, {
        ip: "10.0.0.1",
        xff: `203.0.113.${i}, 198.51.100.${i}`,
      });
      assert.equal(res.status, 429);
      await res.body?.cancel();
    }
  });

  await t.step("after Retry-After the IP may log in again", async () => {
    const res = await login(h, "victim@example.com", password, { ip: "10.0.0.1" });
    clock.advance(Number(res.headers.get("retry-after")) * 1000);
    await res.body?.cancel();
    assert.equal(
      await statusOf(login(h, "victim@example.com", password, { ip: "10.0.0.1" })),
      200,
    );
  });

  await t.step("register: 10 a minute per IP", async () => {
    for (let i = 0; i < 10; i++) {
      const res = await h.request("/auth/register", {
        method: "POST",
        json: { email: `reg${i}@example.com`, password },
        ip: "10.0.1.1",
      });
      assert.equal(res.status, 201);
      await res.body?.cancel();
    }
    const res = await h.request("/auth/register", {
      method: "POST",
      json: { email: "reg-extra@example.com", password },
      ip: "10.0.1.1",
    });
    assert.equal(res.status, 429);
    assert.ok(res.headers.get("retry-after"));
    await res.body?.cancel();
  });

  await t.step("refresh: 60 a minute per IP", async () => {
    for (let i = 0; i < 60; i++) {
      const res = await refresh(h, `junk${i}`, "10.0.2.1");
      assert.equal(res.status, 401);
      await res.body?.cancel();
    }
    const res = await refresh(h, "junk", "10.0.2.1");
    assert.equal(res.status, 429);
    await res.body?.cancel();
  });

  await t.step("parallel guesses from many IPs: past 10, each one waits first", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "target@example.com", password },
      ip: "10.9.0.1",
    });
    atWindowStart();
    delays.length = 0;
    const answers = await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) => statusOf(login(h, "target@example.com", `guess-${i}`, { ip: `10.9.1.${i}` })),
      ),
    );
    // Refused by nobody (each IP has its own 10), but every guess past the account's 10th
    // waited before its password was checked: 1 s, growing to at most 5 s.
    assert.deepEqual(answers, Array(30).fill(401));
    assert.deepEqual(
      [...delays].sort((a, b) => a - b),
      [1000, 2000, 3000, 4000, ...Array(16).fill(5000)],
    );
  });

  await t.step("logins an IP limit refuses do not count against the account", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "busy@example.com", password },
      ip: "10.8.0.1",
    });
    const answers: number[] = [];
    for (let i = 0; i < 45; i++) {
      answers.push(await statusOf(login(h, "busy@example.com", password, { ip: "10.8.0.2" })));
    }
    assert.ok(answers.filter((s) => s === 429).length >= 15, "the IP was limited");
    // From another IP the owner still gets in: the refused ones were not counted.
    assert.equal(await statusOf(login(h, "busy@example.com", password, { ip: "10.8.0.3" })), 200);
  });

  await t.step(
    "10 failed logins lock that account for that IP only; the owner still gets in",
    async () => {
      atWindowStart();
      delays.length = 0;
      for (let i = 0; i < 10; i++) {
        const res = await login(h, "victim@example.com", `guess-${i}`, { ip: "10.1.0.1" });
        assert.equal(res.status, 401);
        await res.body?.cancel();
      }
      assert.deepEqual(delays, [], "no wait within the limit");
      // That IP is refused for this account now, even with the right password...
      const locked = await login(h, "VICTIM@example.com", password, { ip: "10.1.0.1" });
      assert.equal(locked.status, 429);
      assert.equal((await locked.clone().json()).code, "rate_limited");
      const retryAfter = Number(locked.headers.get("retry-after"));
      assert.ok(retryAfter > 60 && retryAfter <= 30 * 60, `Retry-After ${retryAfter}`);
      await locked.body?.cancel();
      // ...but the owner, from another IP, logs in with it: slowed down, not locked out.
      assert.equal(
        await statusOf(login(h, "victim@example.com", password, { ip: "10.1.1.1" })),
        200,
      );
      assert.deepEqual(delays, [1000], "the account's failures made the owner wait 1 s");
      // The owner's login does not unlock the attacker's IP...
      assert.equal(
        await statusOf(login(h, "victim@example.com", "guess", { ip: "10.1.0.1" })),
        429,
      );
      // ...which still logs in to other accounts, without waiting.
      await h.request("/auth/register", {
        method: "POST",
        json: { email: "neighbour@example.com", password },
        ip: "10.2.0.1",
      });
      delays.length = 0;
      assert.equal(
        await statusOf(login(h, "neighbour@example.com", password, { ip: "10.1.0.1" })),
        200,
      );
      assert.deepEqual(delays, []);
      // Guesses from ever more IPs wait longer and longer, up to 5 s each.
      for (let i = 0; i < 6; i++) {
        assert.equal(
          await statusOf(login(h, "victim@example.com", `more-${i}`, { ip: `10.1.2.${i}` })),
          401,
        );
      }
      assert.deepEqual(delays, [1000, 2000, 3000, 4000, 5000, 5000]);
      // After Retry-After the attacker's IP may guess again.
      clock.advance(retryAfter * 1000);
      assert.equal(
        await statusOf(login(h, "victim@example.com", "wrong", { ip: "10.1.0.1" })),
        401,
      );
    },
  );

  await t.step("an unknown email is locked and slowed exactly like an account", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "known@example.com", password },
      ip: "10.3.9.9",
    });
    atWindowStart();
    for (let i = 0; i < 10; i++) {
      assert.equal(
        await statusOf(login(h, "ghost@example.com", `guess-${i}`, { ip: "10.3.0.1" })),
        401,
      );
      assert.equal(
        await statusOf(login(h, "known@example.com", `guess-${i}`, { ip: "10.3.0.2" })),
        401,
      );
    }
    assert.equal(await statusOf(login(h, "ghost@example.com", "x", { ip: "10.3.0.1" })), 429);
    assert.equal(await statusOf(login(h, "known@example.com", "x", { ip: "10.3.0.2" })), 429);
    delays.length = 0;
    const ghost = await login(h, "ghost@example.com", "x", { ip: "10.3.1.1" });
    const known = await login(h, "known@example.com", "x", { ip: "10.3.1.2" });
    assert.equal(ghost.status, 401);
    assert.equal(known.status, 401);
    assert.deepEqual(await ghost.json(), await known.json());
    assert.deepEqual(delays, [1000, 1000], "both waited the same");
  });

  await t.step("counters are shared by every instance over the database", async () => {
    const deps = await createServices(h.config, h.sql, silentLogger, { clock, sleep });
    const other = createApp(deps);
    const viaOther = () =>
      other.fetch(
        new Request("http://localhost/auth/login", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: "victim@example.com", password }),
        }),
        { remoteAddr: { transport: "tcp", hostname: "10.4.0.1", port: 1 } },
      );
    for (let i = 0; i < 15; i++) {
      assert.equal(
        await statusOf(login(h, "victim@example.com", password, { ip: "10.4.0.1" })),
        200,
      );
      assert.equal(await statusOf(viaOther()), 200);
    }
    assert.equal(
      await statusOf(login(h, "victim@example.com", password, { ip: "10.4.0.1" })),
      429,
    );
    assert.equal(await statusOf(viaOther()), 429);
  });

  await t.step("old counter rows are pruned", async () => {
    await h.sql`
      INSERT INTO rate_limit_counters (bucket, key, window_start, count, expires_at)
      VALUES ('login:ip', 'ancient', now() - interval '1 day', 3, now() - interval '23 hours')`;
    const deps = await createServices(h.config, h.sql, silentLogger, { clock });
    await deps.auth.limiter.hit(deps.auth.rules.loginPerIp, "10.5.0.1");
    const left = await h.sql`SELECT 1 FROM rate_limit_counters WHERE key = 'ancient'`;
    assert.equal(left.length, 0);
  });
});

Deno.test("behind a trusted proxy, the forwarded client address is the one limited", async () => {
  await using h = await createTestApp(
    { TRUSTED_PROXIES: "127.0.0.1", RATE_LIMIT_LOGIN_PER_MINUTE: "3" },
    { clock: steadyClock() }, // the 4th is refused even if a real minute ended after the 3rd
  );
  for (let i = 0; i < 3; i++) {
    assert.equal(await statusOf(login(h, "p@example.com", "x", { xff: "198.51.100.7" })), 401);
  }
  assert.equal(await statusOf(login(h, "p@example.com", "x", { xff: "198.51.100.7" })), 429);
  // A different client behind the same proxy has its own budget...
  assert.equal(await statusOf(login(h, "q@example.com", "x", { xff: "198.51.100.8" })), 401);
  // ...and a client cannot pose as another by prepending addresses: the rightmost
  // untrusted one counts.
  assert.equal(
    await statusOf(login(h, "q@example.com", "x", { xff: "192.0.2.1, 198.51.100.7" })),
    429,
  );
  const [row] = await h.sql`
    SELECT ip FROM audit_log WHERE event = 'auth.login_failed' ORDER BY id LIMIT 1`;
  assert.equal(row.ip, "198.51.100.7");
});

Deno.test("per-account limits: registrations of one email, refreshes of one user", async (t) => {
  const clock = steadyClock();
  await using h = await createTestApp({
    RATE_LIMIT_REGISTER_PER_EMAIL_PER_HOUR: "3",
    RATE_LIMIT_REFRESH_PER_ACCOUNT_PER_MINUTE: "4",
  }, { clock });
  await t.step("one email, from many IPs: 3 tries an hour, then 429", async () => {
    const register = (i: number) =>
      h.request("/auth/register", {
        method: "POST",
        json: { email: i % 2 ? "Probe@Example.com" : "probe@example.com", password },
        ip: `10.1.0.${i}`,
      });
    assert.equal(await statusOf(register(1)), 201);
    assert.equal(await statusOf(register(2)), 409);
    assert.equal(await statusOf(register(3)), 409);
    const res = await register(4);
    assert.equal(res.status, 429, "the fourth try, case-insensitively the same email");
    assert.ok(Number(res.headers.get("retry-after")) > 60);
    await res.body?.cancel();
    assert.equal(
      await statusOf(h.request("/auth/register", {
        method: "POST",
        json: { email: "other@example.com", password },
        ip: "10.1.0.4",
      })),
      201,
      "another email from the same IP",
    );
  });

  await t.step(
    "one user's refreshes, from many IPs: 4 a minute; a refused one keeps the token",
    async () => {
      const tokens = await (await login(h, "probe@example.com", password, { ip: "10.1.1.1" }))
        .json();
      let token = tokens.refresh_token as string;
      for (let i = 0; i < 4; i++) {
        const res = await refresh(h, token, `10.1.2.${i}`);
        assert.equal(res.status, 200);
        token = (await res.json()).refresh_token;
      }
      const refused = await refresh(h, token, "10.1.2.9");
      assert.equal(refused.status, 429);
      const retryAfter = Number(refused.headers.get("retry-after"));
      await refused.body?.cancel();
      // Another user is not affected; unknown tokens count only against the IP.
      const other = await (await login(h, "other@example.com", password, { ip: "10.1.1.2" }))
        .json();
      assert.equal(
        await statusOf(refresh(h, other.refresh_token, "10.1.2.9")),
        200,
      );
      // After Retry-After the refused token works: it was not rotated, its session lives.
      clock.advance(retryAfter * 1000);
      assert.equal(
        await statusOf(refresh(h, token, "10.1.2.10")),
        200,
      );
    },
  );

  await t.step("a dead token counts only against its IP, never its former owner", async () => {
    clock.advance(120_000);
    const dead = await (await login(h, "other@example.com", password, { ip: "10.1.3.1" }))
      .json();
    const live = await (await login(h, "other@example.com", password, { ip: "10.1.3.2" }))
      .json();
    const logout = await h.request("/auth/logout", {
      method: "POST",
      json: { refresh_token: dead.refresh_token },
      headers: { authorization: `Bearer ${dead.access_token}` },
      ip: "10.1.3.1",
    });
    assert.ok(logout.ok);
    await logout.body?.cancel();
    for (let i = 0; i < 8; i++) {
      const res = refresh(h, dead.refresh_token, `10.1.4.${i}`);
      assert.equal(await statusOf(res), 401);
    }
    assert.equal(
      await statusOf(refresh(h, live.refresh_token, "10.1.3.2")),
      200,
      "the owner's live session is not held at the limit",
    );
  });
});

Deno.test("client_credentials: per IP, then 429; other IPs unaffected", async () => {
  await using h = await createTestApp({ RATE_LIMIT_CLIENT_TOKEN_PER_MINUTE: "3" }, {
    clock: steadyClock(),
  });
  const token = (ip: string) =>
    h.request("/auth/token", {
      method: "POST",
      json: {
        grant_type: "client_credentials",
        client_id: crypto.randomUUID(),
        client_secret: "wrong",
      },
      ip,
    });
  for (let i = 0; i < 3; i++) assert.equal(await statusOf(token("10.2.1.1")), 401);
  const refused = await token("10.2.1.1");
  assert.equal(refused.status, 429, "one IP, many ids");
  assert.ok(refused.headers.get("retry-after"));
  await refused.body?.cancel();
  assert.equal(await statusOf(token("10.2.1.2")), 401, "another IP has its own budget");
});
