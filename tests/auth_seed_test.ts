// The seed's auth cases T8.1-T8.9 (seeds/000, tasks 4-8), against the real app and database.
import assert from "node:assert/strict";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { adjustableClock } from "@/core/clock.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { createTestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";

const password = "SecurePass123!";

Deno.test("seed auth cases T8.1-T8.9", async (t) => {
  const clock = adjustableClock();
  await using h = await createTestApp({}, { clock });
  await t.step(
    "T8.1 register returns 201 with user_id; the password is stored hashed",
    async () => {
      const res = await h.request("/auth/register", {
        method: "POST",
        json: { email: "new@example.com", password },
      });
      assert.equal(res.status, 201);
      const { user_id } = await res.json();
      assert.match(user_id, /^[0-9a-f-]{36}$/);
      const [user] = await h.sql<{ passwordHash: string }[]>`
      SELECT password_hash FROM users WHERE id = ${user_id}`;
      assert.notEqual(user.passwordHash, password);
      assert.match(user.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    },
  );

  await t.step("T8.2 a second registration of the same email is 409 email_taken", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "dupe@example.com", password },
    });
    for (const email of ["dupe@example.com", "DUPE@Example.COM"]) {
      const res = await h.request("/auth/register", {
        method: "POST",
        json: { email, password: "DifferentPass456!" },
      });
      assert.equal(res.status, 409);
      assert.equal((await res.json()).code, "email_taken");
    }
  });

  await t.step("T8.3 login gives a JWT access token and an opaque refresh token", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "login@example.com", password },
    });
    const res = await h.request("/auth/login", {
      method: "POST",
      json: { email: "login@example.com", password },
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.token_type, "bearer");
    assert.equal(body.expires_in, 900);
    assert.equal(body.access_token.split(".").length, 3);
    assert.ok(!body.refresh_token.includes("."));
    assert.ok(body.refresh_token.length >= 43, "32 random bytes or more");
    assert.match(body.refresh_token, /^[A-Za-z0-9_-]+$/);
    const claims = decodeJwt(body.access_token);
    assert.equal(claims.exp! - claims.iat!, 15 * 60);
    // Only the hash is stored, and it is found by the hash.
    const stored = await h.sql`
      SELECT 1 FROM refresh_tokens WHERE token_hash = ${await sha256Hex(body.refresh_token)}`;
    assert.equal(stored.length, 1);
    const plain = await h
      .sql`SELECT 1 FROM refresh_tokens WHERE token_hash = ${body.refresh_token}`;
    assert.equal(plain.length, 0);
    const thirtyDays = await h.sql<{ days: number }[]>`
      SELECT round(extract(epoch FROM expires_at - created_at) / 86400)::int AS days
      FROM refresh_tokens WHERE token_hash = ${await sha256Hex(body.refresh_token)}`;
    assert.equal(thirtyDays[0].days, 30);
  });

  await t.step("T8.4 a wrong password is 401 with no tokens", async () => {
    await h.request("/auth/register", {
      method: "POST",
      json: { email: "wrong@example.com", password },
    });
    const res = await h.request("/auth/login", {
      method: "POST",
      json: { email: "wrong@example.com", password: "WrongPassword!" },
    });
    assert.equal(res.status, 401);
    const body = await res.json();
    assert.equal(body.code, "invalid_credentials");
    assert.equal(body.access_token, undefined);
    assert.equal(body.refresh_token, undefined);
  });

  await t.step("T8.5 an unknown email is 401, the same answer as a wrong password", async () => {
    const res = await h.request("/auth/login", {
      method: "POST",
      json: { email: "nobody@example.com", password: "Whatever123!" },
    });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), {
      detail: "Invalid email or password",
      code: "invalid_credentials",
    });
  });

  await t.step("T8.6 refresh returns a new pair and the old refresh token is dead", async () => {
    const { refreshToken: old } = await signIn(h, "refresh@example.com", password);
    const res = await h.request("/auth/refresh", {
      method: "POST",
      json: { refresh_token: old },
    });
    assert.equal(res.status, 200);
    const data = await res.json();
    assert.ok(data.access_token);
    assert.ok(data.refresh_token);
    assert.notEqual(data.refresh_token, old);
    const again = await h.request("/auth/refresh", {
      method: "POST",
      json: { refresh_token: old },
    });
    assert.equal(again.status, 401);
  });

  await t.step("T8.7 an expired refresh token is 401", async () => {
    const { refreshToken } = await signIn(h, "expired@example.com", password);
    await h.sql`
      UPDATE refresh_tokens SET expires_at = now() - interval '1 hour'
      WHERE token_hash = ${await sha256Hex(refreshToken)}`;
    const res = await h.request("/auth/refresh", {
      method: "POST",
      json: { refresh_token: refreshToken },
    });
    assert.equal(res.status, 401);
  });

  await t.step(
    "T8.8 the middleware takes the user from a valid JWT and refuses others",
    async () => {
      const me = await signIn(h, "jwt@example.com", password);
      const res = await h.request("/auth/me", { headers: me.headers });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.id, me.userId);
      assert.equal(body.email, "jwt@example.com");
      assert.equal(body.role, "user");
      assert.ok(body.created_at);
      assert.equal(decodeJwt(me.accessToken).sub, me.userId);
      assert.equal(decodeProtectedHeader(me.accessToken).alg, "RS256");

      const refusals: Record<string, string>[] = [
        {},
        { authorization: "Bearer garbage.token.here" },
        { authorization: `Basic ${btoa("a:b")}` },
        { authorization: "Bearer" },
      ];
      for (const headers of refusals) {
        const refused = await h.request("/auth/me", { headers });
        assert.equal(refused.status, 401);
        assert.equal(refused.headers.get("www-authenticate"), "Bearer");
        assert.equal((await refused.json()).code, "unauthorized");
      }
    },
  );

  await t.step("T8.9 an access token works for 15 minutes and not after", async () => {
    const me = await signIn(h, "expiry@example.com", password);
    clock.advance(14 * 60_000);
    assert.equal((await h.request("/auth/me", { headers: me.headers })).status, 200);
    clock.advance(61_000 + 5_000); // past exp, and past the 5 s skew tolerance
    const res = await h.request("/auth/me", { headers: me.headers });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), "Bearer");
  });
});
