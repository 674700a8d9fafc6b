// M2M clients: admin-made, client_credentials grant, scoped tokens that die with the client.
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { requireScope, requireUser } from "@/web/http/auth.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { createErrorHandler } from "@/web/http/errors.ts";
import { createRouter } from "@/web/http/router.ts";
import { silentLogger } from "@/core/log.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";

const adminEnv = {
  INITIAL_ADMIN_EMAIL: "root@example.com",
  INITIAL_ADMIN_PASSWORD: "admin password 1",
};

function token(h: TestApp, body: Record<string, string>, headers: Record<string, string> = {}) {
  return h.request("/auth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(body).toString(),
  });
}

const basic = (id: string, secret: string) => ({
  authorization: `Basic ${btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`,
});

async function me(h: TestApp, accessToken: string): Promise<number> {
  const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${accessToken}` } });
  await res.body?.cancel();
  return res.status;
}

Deno.test("M2M clients", async (t) => {
  await using h = await createTestApp(adminEnv);
  const admin = await signIn(h, "root@example.com", "admin password 1");
  const erin = await signIn(h, "erin@example.com");
  let client: { client_id: string; client_secret: string; user_id: string; scopes: string[] };

  await t.step("an admin creates one: the secret is shown once and stored hashed", async () => {
    const res = await h.request("/admin/clients", {
      method: "POST",
      headers: admin.headers,
      json: {
        name: "ci runner",
        scopes: ["projects:read", "projects:write"],
        user_id: erin.userId,
      },
    });
    assert.equal(res.status, 201);
    client = await res.json();
    assert.match(client.client_id, /^[0-9a-f-]{36}$/);
    assert.ok(client.client_secret.length >= 43);
    assert.equal(client.user_id, erin.userId);
    const [row] = await h.sql`SELECT secret_hash FROM api_clients WHERE id = ${client.client_id}`;
    assert.equal(row.secretHash, await sha256Hex(client.client_secret));
    const list = await (await h.request("/admin/clients", { headers: admin.headers })).json();
    assert.equal(list.length, 1);
    assert.equal(list[0].client_id, client.client_id);
    assert.ok(!JSON.stringify(list).includes(client.client_secret));
    assert.equal(list[0].client_secret, undefined);
  });

  await t.step("user_id defaults to the admin; an unknown user_id is 422", async () => {
    const own = await (await h.request("/admin/clients", {
      method: "POST",
      headers: admin.headers,
      json: { name: "admin's", scopes: ["projects:read"] },
    })).json();
    assert.equal(own.user_id, admin.userId);
    const res = await h.request("/admin/clients", {
      method: "POST",
      headers: admin.headers,
      json: { name: "x", scopes: ["projects:read"], user_id: crypto.randomUUID() },
    });
    assert.equal(res.status, 422);
    await res.body?.cancel();
  });

  await t.step(
    "client_credentials by HTTP Basic gives a short-lived token, no refresh",
    async () => {
      const res = await token(
        h,
        { grant_type: "client_credentials" },
        basic(client.client_id, client.client_secret),
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "no-store");
      const body = await res.json();
      assert.equal(body.token_type, "bearer");
      assert.equal(body.expires_in, 900);
      assert.equal(body.refresh_token, undefined);
      assert.equal(body.scope, "projects:read projects:write");
      const claims = decodeJwt(body.access_token);
      assert.equal(claims.client_id, client.client_id);
      assert.equal(claims.sub, erin.userId);
      assert.equal(claims.sid, undefined);
      assert.equal(claims.scope, "projects:read projects:write");
      const who = await (await h.request("/auth/me", {
        headers: { authorization: `Bearer ${body.access_token}` },
      })).json();
      assert.equal(who.id, erin.userId);
    },
  );

  await t.step("...or by client_id/client_secret in a form or JSON body", async () => {
    const form = await token(h, {
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
      scope: "projects:read",
    });
    assert.equal(form.status, 200);
    assert.equal((await form.json()).scope, "projects:read");
    const json = await h.request("/auth/token", {
      method: "POST",
      json: {
        grant_type: "client_credentials",
        client_id: client.client_id,
        client_secret: client.client_secret,
      },
    });
    assert.equal(json.status, 200);
    await json.body?.cancel();
  });

  await t.step("the token's scope limits it (requireScope)", async () => {
    const { access_token } = await (await token(h, {
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret,
      scope: "projects:read",
    })).json();
    const app = createRouter();
    app.use("*", requireUser(h.deps));
    app.post("/write", requireScope("projects:write"), (c) => c.json(c.var.actor));
    app.get("/read", requireScope("projects:read"), (c) => c.json(c.var.actor));
    app.onError(createErrorHandler(silentLogger));
    const call = (method: string, path: string) =>
      app.fetch(
        new Request(`http://x${path}`, {
          method,
          headers: { authorization: `Bearer ${access_token}` },
        }),
      );
    const read = await call("GET", "/read");
    assert.equal(read.status, 200);
    assert.deepEqual(await read.json(), {
      userId: erin.userId,
      role: "user",
      via: "client",
      scopes: ["projects:read"],
    });
    const write = await call("POST", "/write");
    assert.equal(write.status, 403);
    await write.body?.cancel();
    // A client token is not a login session: no key minting, no admin.
    const mint = await h.request("/auth/api-keys", {
      method: "POST",
      headers: { authorization: `Bearer ${access_token}` },
      json: { name: "x", lifetime: "1h" },
    });
    assert.equal(mint.status, 403);
    await mint.body?.cancel();
  });

  await t.step("RFC 6749 errors, in our {detail, code} body", async () => {
    const cases: [Record<string, string>, Record<string, string>, number, string][] = [
      [
        { grant_type: "password" },
        basic(client.client_id, client.client_secret),
        400,
        "unsupported_grant_type",
      ],
      [
        { grant_type: "client_credentials" },
        basic(client.client_id, "wrong"),
        401,
        "invalid_client",
      ],
      [
        { grant_type: "client_credentials" },
        basic(crypto.randomUUID(), "wrong"),
        401,
        "invalid_client",
      ],
      [{ grant_type: "client_credentials" }, basic("not-a-uuid", "x"), 401, "invalid_client"],
      [{ grant_type: "client_credentials" }, {}, 401, "invalid_client"],
      [
        { grant_type: "client_credentials", scope: "admin" },
        basic(client.client_id, client.client_secret),
        400,
        "invalid_scope",
      ],
    ];
    for (const [body, headers, status, code] of cases) {
      const res = await token(h, body, headers);
      assert.equal(res.status, status, code);
      const json = await res.json();
      assert.equal(json.code, code);
      assert.equal(typeof json.detail, "string");
      assert.ok(!JSON.stringify(json).includes(client.client_secret));
    }
    const missing = await token(h, {}, basic(client.client_id, client.client_secret));
    assert.equal(missing.status, 422);
    await missing.body?.cancel();
  });

  await t.step("disabling the client makes its tokens fail at once", async () => {
    const { access_token } = await (await token(
      h,
      { grant_type: "client_credentials" },
      basic(client.client_id, client.client_secret),
    )).json();
    assert.equal(await me(h, access_token), 200);
    const res = await h.request(`/admin/clients/${client.client_id}/disable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(res.status, 200);
    assert.ok((await res.json()).disabled_at);
    assert.equal(await me(h, access_token), 401);
    const again = await token(
      h,
      { grant_type: "client_credentials" },
      basic(client.client_id, client.client_secret),
    );
    assert.equal(again.status, 401);
    await again.body?.cancel();
    const missing = await h.request(`/admin/clients/${crypto.randomUUID()}/disable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });

  await t.step("a client acting for a disabled user stops working too", async () => {
    const c2 = await (await h.request("/admin/clients", {
      method: "POST",
      headers: admin.headers,
      json: { name: "for erin", scopes: ["projects:read"], user_id: erin.userId },
    })).json();
    const { access_token } = await (await token(
      h,
      { grant_type: "client_credentials" },
      basic(c2.client_id, c2.client_secret),
    )).json();
    assert.equal(await me(h, access_token), 200);
    await h.request(`/admin/users/${erin.userId}/disable`, {
      method: "POST",
      headers: admin.headers,
    });
    assert.equal(await me(h, access_token), 401);
  });
});
