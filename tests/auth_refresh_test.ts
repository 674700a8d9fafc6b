// Refresh tokens: rotation, reuse detection, the grace window, absolute sessions, logout.
import assert from "node:assert/strict";
import { adjustableClock } from "@/core/clock.ts";
import { refreshSession } from "@/auth/login.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";

const refresh = (h: TestApp, token: string) =>
  h.request("/auth/refresh", { method: "POST", json: { refresh_token: token } });

async function me(h: TestApp, accessToken: string): Promise<number> {
  const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${accessToken}` } });
  await res.body?.cancel();
  return res.status;
}

async function sessionOf(h: TestApp, refreshToken: string) {
  const [row] = await h.sql<{ id: string; revokedAt: Date | null; revokedReason: string | null }[]>`
    SELECT s.id, s.revoked_at, s.revoked_reason FROM sessions s
      JOIN refresh_tokens rt ON rt.session_id = s.id
    WHERE rt.token_hash = ${await sha256Hex(refreshToken)}`;
  return row;
}

Deno.test("refresh tokens", async (t) => {
  const clock = adjustableClock();
  await using h = await createTestApp({}, { clock });
  await t.step("rotation records which token replaced which", async () => {
    const s = await signIn(h, "rotate@example.com");
    const res = await refresh(h, s.refreshToken);
    assert.equal(res.status, 200);
    const next = await res.json();
    const [old] = await h.sql<{ rotatedAt: Date; replacedBy: string }[]>`
      SELECT rotated_at, replaced_by FROM refresh_tokens
      WHERE token_hash = ${await sha256Hex(s.refreshToken)}`;
    assert.ok(old.rotatedAt);
    const [successor] = await h.sql<{ id: string }[]>`
      SELECT id FROM refresh_tokens WHERE token_hash = ${await sha256Hex(next.refresh_token)}`;
    assert.equal(old.replacedBy, successor.id);
    assert.equal(await me(h, next.access_token), 200);
  });

  await t.step("unknown or malformed refresh tokens are 401; a missing one is 422", async () => {
    for (const token of ["nope", "a.b.c", "x".repeat(512)]) {
      const res = await refresh(h, token);
      assert.equal(res.status, 401);
      assert.equal((await res.json()).code, "unauthorized");
    }
    const missing = await h.request("/auth/refresh", { method: "POST", json: {} });
    assert.equal(missing.status, 422);
    await missing.body?.cancel();
  });

  await t.step("a replay inside the grace window is refused and the session lives", async () => {
    const s = await signIn(h, "replay@example.com");
    const next = await (await refresh(h, s.refreshToken)).json();
    clock.advance(3_000);
    const replay = await refresh(h, s.refreshToken);
    assert.equal(replay.status, 401);
    await replay.body?.cancel();
    assert.equal((await sessionOf(h, next.refresh_token)).revokedAt, null);
    assert.equal(await me(h, next.access_token), 200);
    assert.equal((await refresh(h, next.refresh_token)).status, 200);
    const [audit] = await h.sql`
      SELECT details FROM audit_log WHERE event = 'auth.refresh_reuse_detected'
      ORDER BY id DESC LIMIT 1`;
    assert.equal(audit.details.sessionRevoked, false);
  });

  await t.step(
    "reuse after the grace window kills the session and its access tokens",
    async () => {
      const s = await signIn(h, "reuse@example.com");
      const next = await (await refresh(h, s.refreshToken)).json();
      assert.equal(await me(h, next.access_token), 200);
      clock.advance(11_000); // grace is 10 s
      const reuse = await refresh(h, s.refreshToken);
      assert.equal(reuse.status, 401);
      await reuse.body?.cancel();
      const session = await sessionOf(h, s.refreshToken);
      assert.ok(session.revokedAt);
      assert.equal(session.revokedReason, "refresh_token_reuse");
      assert.equal(await me(h, next.access_token), 401, "the access token dies with the session");
      assert.equal(await me(h, s.accessToken), 401);
      const successor = await refresh(h, next.refresh_token);
      assert.equal(successor.status, 401, "so does the legitimate successor");
      await successor.body?.cancel();
      const [audit] = await h.sql`
      SELECT user_id, ip, request_id, details FROM audit_log
      WHERE event = 'auth.refresh_reuse_detected' ORDER BY id DESC LIMIT 1`;
      assert.equal(audit.userId, s.userId);
      assert.equal(audit.details.sessionRevoked, true);
      assert.ok(audit.ip && audit.requestId);
    },
  );

  await t.step("a refresh that raced the rotation gets the same successor", async () => {
    const s = await signIn(h, "raced@example.com");
    const arrivedBefore = new Date(clock().getTime() - 1);
    const winner = await (await refresh(h, s.refreshToken)).json();
    const racer = await refreshSession(h.deps.auth, s.refreshToken, {
      ip: "127.0.0.1",
      receivedAt: arrivedBefore,
    });
    assert.equal(racer.refreshToken, winner.refresh_token);
    assert.equal(await me(h, racer.accessToken), 200);
    assert.equal((await sessionOf(h, s.refreshToken)).revokedAt, null);
    const rows = await h.sql`
      SELECT 1 FROM refresh_tokens WHERE session_id = ${racer.sessionId}`;
    assert.equal(rows.length, 2, "no fork: one token and its one successor");
  });

  await t.step("a racer whose successor was already used does not get it", async () => {
    const s = await signIn(h, "raced2@example.com");
    const arrivedBefore = new Date(clock().getTime() - 1);
    const first = await (await refresh(h, s.refreshToken)).json();
    assert.equal((await refresh(h, first.refresh_token)).status, 200);
    await assert.rejects(
      () =>
        refreshSession(h.deps.auth, s.refreshToken, {
          ip: "127.0.0.1",
          receivedAt: arrivedBefore,
        }),
      (err: Error & { status?: number }) => err.status === 401,
    );
  });

  await t.step("20 parallel refreshes of one token leave one live session", async () => {
    const s = await signIn(h, "parallel@example.com");
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => refresh(h, s.refreshToken)),
    );
    const ok = [];
    for (const res of answers) {
      if (res.status === 200) ok.push(await res.json());
      else {
        assert.equal(res.status, 401);
        await res.body?.cancel();
      }
    }
    assert.ok(ok.length >= 1);
    const successors = new Set(ok.map((b) => b.refresh_token));
    assert.equal(successors.size, 1, "every winner holds the same successor");
    const session = await sessionOf(h, s.refreshToken);
    assert.equal(session.revokedAt, null, "the session lives");
    const live = await h.sql`
      SELECT 1 FROM refresh_tokens WHERE session_id = ${session.id} AND rotated_at IS NULL`;
    assert.equal(live.length, 1, "exactly one live refresh token");
    const sessions = await h.sql`
      SELECT 1 FROM sessions WHERE user_id = ${s.userId} AND revoked_at IS NULL`;
    assert.equal(sessions.length, 1);
    for (const body of ok) assert.equal(await me(h, body.access_token), 200);
    assert.equal((await refresh(h, [...successors][0])).status, 200);
  });

  await t.step("the session lifetime is absolute: refreshing never extends it", async () => {
    const s = await signIn(h, "absolute@example.com");
    const [{ expiresAt }] = await h.sql<{ expiresAt: Date }[]>`
      SELECT expires_at FROM sessions WHERE id = ${(await sessionOf(h, s.refreshToken)).id}`;
    clock.advance(29 * 86400_000);
    const next = await (await refresh(h, s.refreshToken)).json();
    const [successor] = await h.sql<{ expiresAt: Date }[]>`
      SELECT expires_at FROM refresh_tokens
      WHERE token_hash = ${await sha256Hex(next.refresh_token)}`;
    assert.equal(successor.expiresAt.getTime(), expiresAt.getTime());
    const [session] = await h.sql<{ expiresAt: Date }[]>`
      SELECT expires_at FROM sessions WHERE id = ${(await sessionOf(h, s.refreshToken)).id}`;
    assert.equal(session.expiresAt.getTime(), expiresAt.getTime());
    clock.advance(86400_000 + 1000);
    const late = await refresh(h, next.refresh_token);
    assert.equal(late.status, 401);
    await late.body?.cancel();
    assert.equal(await me(h, next.access_token), 401, "nor do its access tokens outlive it");
  });

  await t.step("logout revokes the session: refresh and access tokens fail at once", async () => {
    const s = await signIn(h, "logout@example.com");
    assert.equal(await me(h, s.accessToken), 200);
    const res = await h.request("/auth/logout", {
      method: "POST",
      json: { refresh_token: s.refreshToken },
    });
    assert.equal(res.status, 204);
    assert.equal(await me(h, s.accessToken), 401);
    const again = await refresh(h, s.refreshToken);
    assert.equal(again.status, 401);
    await again.body?.cancel();
    // Unknown tokens get the same 204: logout says nothing about validity.
    const unknown = await h.request("/auth/logout", {
      method: "POST",
      json: { refresh_token: "unknown" },
    });
    assert.equal(unknown.status, 204);
  });

  await t.step("logout-all revokes every session of the user", async () => {
    const a = await signIn(h, "everywhere@example.com");
    const b = await signIn(h, "everywhere@example.com");
    const other = await signIn(h, "bystander@example.com");
    const res = await h.request("/auth/logout-all", { method: "POST", headers: a.headers });
    assert.equal(res.status, 204);
    assert.equal(await me(h, a.accessToken), 401);
    assert.equal(await me(h, b.accessToken), 401);
    assert.equal(await me(h, other.accessToken), 200);
    for (const token of [a.refreshToken, b.refreshToken]) {
      const r = await refresh(h, token);
      assert.equal(r.status, 401);
      await r.body?.cancel();
    }
    const unauth = await h.request("/auth/logout-all", { method: "POST" });
    assert.equal(unauth.status, 401);
    await unauth.body?.cancel();
  });
});
