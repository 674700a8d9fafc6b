// Access tokens: what they carry, how they verify offline, and every forgery we refuse.
import assert from "node:assert/strict";
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";
import { adjustableClock } from "@/core/clock.ts";
import { createAuthService } from "@/auth/service.ts";
import { createSecretBox, toBase64Url } from "@/infra/crypto/secrets.ts";
import { silentLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createApp } from "@/app.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signIn } from "./helpers/users.ts";
import { createTestDatabase } from "./helpers/db.ts";

const b64 = (value: unknown) => toBase64Url(new TextEncoder().encode(JSON.stringify(value)));

/** A token signed with the server's real key, with header or claims changed at will. */
async function forge(
  h: TestApp,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const { kid, privateKey } = await h.deps.auth.keys.signingKey();
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt", ...header } as never)
    .sign(privateKey);
}

async function status(h: TestApp, token: string): Promise<number> {
  const res = await h.request("/auth/me", { headers: { authorization: `Bearer ${token}` } });
  await res.body?.cancel();
  return res.status;
}

Deno.test("access tokens", async (t) => {
  const clock = adjustableClock();
  await using h = await createTestApp({}, { clock });
  const me = await signIn(h, "tokens@example.com");
  const good = decodeJwt(me.accessToken);
  const now = Math.floor(clock().getTime() / 1000);
  const validClaims = () => ({
    sub: me.userId,
    sid: good.sid,
    iss: "pomodex",
    aud: "pomodex-api",
    iat: now,
    exp: now + 900,
    jti: crypto.randomUUID(),
  });

  await t.step("carry sub, sid, iat, exp, iss, aud, jti; RS256 with a kid; 15 minutes", () => {
    const header = decodeProtectedHeader(me.accessToken);
    assert.equal(header.alg, "RS256");
    assert.equal(header.typ, "at+jwt");
    assert.ok(typeof header.kid === "string" && header.kid.length > 20);
    assert.equal(good.sub, me.userId);
    assert.match(String(good.sid), /^[0-9a-f-]{36}$/);
    assert.equal(good.iss, "pomodex");
    assert.equal(good.aud, "pomodex-api");
    assert.match(String(good.jti), /^[0-9a-f-]{36}$/);
    assert.equal(good.exp! - good.iat!, 900);
  });

  await t.step("verify offline with the published JWKS", async () => {
    const res = await h.request("/.well-known/jwks.json");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("cache-control")!, /max-age=\d+/);
    const jwks = await res.json();
    assert.equal(jwks.keys.length, 1);
    const [key] = jwks.keys;
    assert.deepEqual(Object.keys(key).sort(), ["alg", "e", "kid", "kty", "n", "use"]);
    assert.equal(key.d, undefined, "never the private part");
    const { payload } = await jwtVerify(me.accessToken, createLocalJWKSet(jwks), {
      algorithms: ["RS256"],
      issuer: "pomodex",
      audience: "pomodex-api",
      currentDate: clock(),
    });
    assert.equal(payload.sub, me.userId);
  });

  await t.step("a token re-signed by the real key with valid claims is accepted", async () => {
    assert.equal(await status(h, await forge(h, validClaims())), 200);
  });

  await t.step("alg none is refused", async () => {
    const { kid } = await h.deps.auth.keys.signingKey();
    for (const alg of ["none", "None", "NONE"]) {
      const token = `${b64({ alg, kid, typ: "at+jwt" })}.${b64(validClaims())}.`;
      assert.equal(await status(h, token), 401, alg);
    }
  });

  await t.step("HS256 signed with the public key (algorithm confusion) is refused", async () => {
    const { kid } = await h.deps.auth.keys.signingKey();
    const jwks = await h.deps.auth.keys.jwks();
    const publicKey = await importJWK(jwks.keys[0], "RS256", { extractable: true });
    const pem = await exportSPKI(publicKey as CryptoKey);
    for (const secret of [pem, JSON.stringify(jwks.keys[0]), String(jwks.keys[0].n)]) {
      const token = await new SignJWT(validClaims())
        .setProtectedHeader({ alg: "HS256", kid, typ: "at+jwt" })
        .sign(new TextEncoder().encode(secret));
      assert.equal(await status(h, token), 401);
    }
  });

  await t.step("an unknown kid, or another key under our kid, is refused", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const { kid } = await h.deps.auth.keys.signingKey();
    for (const header of [{ kid: "no-such-kid" }, { kid }, {}]) {
      const token = await new SignJWT(validClaims())
        .setProtectedHeader({ alg: "RS256", typ: "at+jwt", ...header })
        .sign(privateKey);
      assert.equal(await status(h, token), 401, JSON.stringify(header));
    }
  });

  await t.step(
    "jku, jwk, x5u, x5c and crit headers are refused even when well signed",
    async () => {
      const { publicKey } = await generateKeyPair("RS256", { extractable: true });
      const attackerJwk = await exportJWK(publicKey);
      const headers: Record<string, unknown>[] = [
        { jku: "https://attacker.example/jwks.json" },
        { jwk: attackerJwk },
        { x5u: "https://attacker.example/cert.pem" },
        { x5c: ["MIIB"] },
      ];
      for (const header of headers) {
        assert.equal(await status(h, await forge(h, validClaims(), header)), 401);
      }
    },
  );

  await t.step("expired, not-yet-valid and too-long-lived tokens are refused", async () => {
    const cases: Record<string, unknown>[] = [
      { iat: now - 1000, exp: now - 100 },
      { nbf: now + 600 },
      { iat: now + 600, exp: now + 1500 },
      { exp: undefined },
      { iat: undefined },
    ];
    for (const change of cases) {
      const token = await forge(h, { ...validClaims(), ...change });
      assert.equal(await status(h, token), 401, JSON.stringify(change));
    }
  });

  await t.step("wrong iss, aud or typ, or malformed subject claims, are refused", async () => {
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ iss: "someone-else" }, {}],
      [{ aud: "another-api" }, {}],
      [{ aud: undefined }, {}],
      [{ iss: undefined }, {}],
      [{ jti: undefined }, {}],
      [{ sub: "not-a-uuid" }, {}],
      [{ sid: "not-a-uuid" }, {}],
      [{ sid: undefined }, {}],
      [{ client_id: crypto.randomUUID() }, {}], // both a session and a client: neither
      [{ sub: crypto.randomUUID() }, {}], // a session that is not this subject's
      [{}, { typ: "JWT" }],
      [{}, { typ: undefined }],
    ];
    for (const [claims, header] of cases) {
      const token = await forge(h, { ...validClaims(), ...claims }, header);
      assert.equal(await status(h, token), 401, JSON.stringify({ claims, header }));
    }
  });

  await t.step("a tampered payload fails the signature", async () => {
    const [head, , sig] = me.accessToken.split(".");
    const other = b64({ ...decodeJwt(me.accessToken), sub: crypto.randomUUID() });
    assert.equal(await status(h, `${head}.${other}.${sig}`), 401);
  });

  await t.step("the signing key is sealed in the database, never plaintext", async () => {
    const rows = await h.sql<{ privateKeySealed: string; source: string }[]>`
      SELECT private_key_sealed, source FROM signing_keys`;
    assert.equal(rows.length, 1);
    assert.equal(rows[0].source, "generated");
    assert.match(rows[0].privateKeySealed, /^v1\./);
    assert.doesNotMatch(rows[0].privateKeySealed, /"d"|BEGIN/);
  });

  await t.step("a restart over the same database keeps tokens valid", async () => {
    const deps = await createServices(h.config, h.sql, silentLogger, { clock });
    const restarted = createApp(deps);
    const res = await restarted.fetch(
      new Request("http://localhost/auth/me", { headers: me.headers }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } },
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(
      (await deps.auth.keys.signingKey()).kid,
      (await h.deps.auth.keys.signingKey()).kid,
    );
  });

  await t.step(
    "rotation: new tokens use the new key; old ones verify until they expire",
    async () => {
      const before = me.accessToken;
      const oldKid = decodeProtectedHeader(before).kid;
      const newKid = await h.deps.auth.keys.rotate();
      assert.notEqual(newKid, oldKid);
      const fresh = await signIn(h, "tokens@example.com");
      assert.equal(decodeProtectedHeader(fresh.accessToken).kid, newKid);
      assert.equal(await status(h, before), 200, "old token still verifies");
      const kids = (await h.deps.auth.keys.jwks()).keys.map((k) => k.kid).sort();
      assert.deepEqual(kids, [oldKid, newKid].sort());
      const [active] = await h.sql`SELECT kid FROM signing_keys WHERE retired_at IS NULL`;
      assert.equal(active.kid, newKid);

      // Another instance over the same database learns the new key on first sight of it.
      const other = await createServices(h.config, h.sql, silentLogger, { clock });
      await other.auth.keys.rotate(); // and rotates again: we must accept its tokens too
      const third = await signIn(h, "tokens@example.com"); // we still sign with our cached key
      assert.equal(await status(h, third.accessToken), 200);
      const { kid } = await other.auth.keys.signingKey();
      const byOther = await new SignJWT({
        ...validClaims(),
        sid: decodeJwt(third.accessToken).sid,
      })
        .setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt" })
        .sign((await other.auth.keys.signingKey()).privateKey);
      assert.equal(await status(h, byOther), 200);

      // Once every token of the old key has expired, the key leaves the JWKS.
      clock.advance(900_000 + 130_000);
      const after = (await h.deps.auth.keys.jwks()).keys.map((k) => k.kid);
      assert.ok(!after.includes(oldKid));
      assert.ok(after.includes(kid));
    },
  );
});

Deno.test("two instances starting at once over one database end with one active key", async () => {
  await using db = await createTestDatabase();
  const secrets = await createSecretBox(crypto.getRandomValues(new Uint8Array(32)));
  const { loadConfig } = await import("@/core/config.ts");
  const config = loadConfig({ DATABASE_URL: db.url });
  const services = await Promise.all(
    [1, 2, 3, 4].map(() => createAuthService({ config, sql: db.sql, log: silentLogger, secrets })),
  );
  const kids = await Promise.all(services.map(async (s) => (await s.keys.signingKey()).kid));
  assert.equal(new Set(kids).size, 1);
  const [{ count }] = await db.sql<{ count: number }[]>`
    SELECT count(*)::int AS count FROM signing_keys WHERE retired_at IS NULL`;
  assert.equal(count, 1);
  const [{ total }] = await db.sql<{ total: number }[]>`
    SELECT count(*)::int AS total FROM signing_keys`;
  assert.equal(total, 1);
  const secretsRows = await db.sql`SELECT name FROM auth_secrets`;
  assert.equal(secretsRows.length, 1);
});

Deno.test("JWT_PRIVATE_KEY / JWT_PRIVATE_KEY_PATH: the configured key signs", async (t) => {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportPKCS8(privateKey);
  const expectedKid = await calculateJwkThumbprint(await exportJWK(publicKey));

  await t.step("inline PEM (with \\n escapes, as env files carry it)", async () => {
    await using h = await createTestApp({ JWT_PRIVATE_KEY: pem.replace(/\n/g, "\\n") });
    const me = await signIn(h, "env@example.com");
    assert.equal(decodeProtectedHeader(me.accessToken).kid, expectedKid);
    await jwtVerify(me.accessToken, publicKey, { algorithms: ["RS256"] });
    const jwks = (await (await h.request("/.well-known/jwks.json")).json()).keys as JWK[];
    assert.deepEqual(jwks.map((k) => k.kid), [expectedKid]);
    const [row] = await h.sql`SELECT private_key_sealed, source FROM signing_keys`;
    assert.equal(row.privateKeySealed, null, "the private half is not copied into the database");
    assert.equal(row.source, "environment");
    await assert.rejects(() => h.deps.auth.keys.rotate(), /JWT_PRIVATE_KEY/);
  });

  await t.step("a path, switched to from a generated key: old tokens keep verifying", async () => {
    await using h = await createTestApp();
    await using cleanup = new AsyncDisposableStack();
    const file = await Deno.makeTempFile({ suffix: ".pem" });
    cleanup.defer(() => Deno.remove(file));
    const before = await signIn(h, "switch@example.com");
    await Deno.writeTextFile(file, pem);
    const config = { ...h.config, jwt: { ...h.config.jwt, privateKeyPath: file } };
    const deps = await createServices(config, h.sql, silentLogger);
    const app = createApp(deps);
    const call = (headers: Record<string, string>) =>
      app.fetch(new Request("http://localhost/auth/me", { headers }), {
        remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
      });
    const res = await call(before.headers);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal((await deps.auth.keys.signingKey()).kid, expectedKid);
    assert.equal((await deps.auth.keys.jwks()).keys.length, 2);
  });

  await t.step("a PKCS#1 or non-RSA key stops the start with a clear message", async () => {
    await assert.rejects(
      () =>
        createTestApp({
          JWT_PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
        }),
      /PKCS#8/,
    );
  });
});
