// Registration rules, argon2id, and a login that answers unknown emails like wrong passwords.
import assert from "node:assert/strict";
import { hash } from "@node-rs/argon2";
import { createPasswordHasher } from "@/auth/passwords.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";

const register = (h: TestApp, email: unknown, password: unknown) =>
  h.request("/auth/register", { method: "POST", json: { email, password } });
const login = (h: TestApp, email: string, password: string) =>
  h.request("/auth/login", { method: "POST", json: { email, password } });

Deno.test("registration and passwords", async (t) => {
  await using h = await createTestApp({ RATE_LIMIT_REGISTER_PER_MINUTE: "1000" });
  await t.step("a bad email is 422 on the email field", async () => {
    const bad = [
      "",
      "plain",
      "a@",
      "@b.co",
      "a b@c.co",
      "a\u0000@b.co",
      `${"x".repeat(250)}@b.co`,
      42,
    ];
    for (const email of bad) {
      const res = await register(h, email, "long enough password");
      assert.equal(res.status, 422, JSON.stringify(email));
      const body = await res.json();
      assert.equal(body.code, "validation_error");
      assert.deepEqual(body.errors.map((e: { path: string }) => e.path), ["email"]);
    }
  });

  await t.step("passwords: 8 to 128 characters, counted as characters", async () => {
    const cases: [string, number][] = [
      ["short77", 422],
      ["12345678", 201],
      ["x".repeat(128), 201],
      ["x".repeat(129), 422],
      ["😀".repeat(7), 422], // 14 UTF-16 units, but 7 characters
      ["😀".repeat(8), 201],
      ["😀".repeat(128), 201],
      ["😀".repeat(129), 422],
    ];
    let n = 0;
    for (const [password, expected] of cases) {
      const res = await register(h, `len${n++}@example.com`, password);
      assert.equal(res.status, expected, `${[...password].length} characters`);
      const text = await res.text();
      assert.ok(!text.includes(password), "an error never echoes the password");
      if (expected === 422) assert.equal(JSON.parse(text).errors[0].path, "password");
    }
  });

  await t.step("stored as argon2id with OWASP parameters, salted", async () => {
    await register(h, "salt1@example.com", "same password!");
    await register(h, "salt2@example.com", "same password!");
    const rows = await h.sql<{ passwordHash: string }[]>`
      SELECT password_hash FROM users WHERE email LIKE 'salt%' ORDER BY email`;
    for (const r of rows) assert.match(r.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.notEqual(rows[0].passwordHash, rows[1].passwordHash);
  });

  await t.step("emails are unique case-insensitively and stored as typed", async () => {
    assert.equal((await register(h, "Mixed.Case@Example.com", "long enough 1")).status, 201);
    assert.equal((await register(h, "mixed.case@example.COM", "long enough 2")).status, 409);
    const [row] = await h
      .sql`SELECT email FROM users WHERE lower(email) = 'mixed.case@example.com'`;
    assert.equal(row.email, "Mixed.Case@Example.com");
    assert.equal((await login(h, "MIXED.case@example.com", "long enough 1")).status, 200);
  });

  await t.step("racing registrations of one email: one 201, the rest 409", async () => {
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => register(h, "race@example.com", `password ${i}!`)),
    );
    const statuses = answers.map((r) => r.status).sort();
    await Promise.all(answers.map((r) => r.body?.cancel()));
    assert.deepEqual(statuses, [201, 409, 409, 409, 409]);
  });

  await t.step("passwords compare after Unicode normalization (NFKC)", async () => {
    await register(h, "nfc@example.com", "caf\u00e9 au lait");
    assert.equal((await login(h, "nfc@example.com", "cafe\u0301 au lait")).status, 200);
  });

  await t.step("an unknown email and a wrong password get identical answers", async () => {
    await register(h, "known@example.com", "the real password");
    const wrong = await login(h, "known@example.com", "not the password");
    const unknown = await login(h, "unknown@example.com", "not the password");
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.deepEqual(await wrong.json(), await unknown.json());
    const headerNames = (r: Response) =>
      [...r.headers.keys()].filter((k) => k !== "x-request-id").sort();
    assert.deepEqual(headerNames(wrong), headerNames(unknown));
  });

  await t.step("...at the same cost: one argon2id verification each", async () => {
    // Counted, not timed (a busy machine would make timing flaky): the benchmark reports
    // the two latencies side by side.
    const passwords = h.deps.auth.passwords;
    const calls: string[] = [];
    const { verify, verifyDummy } = passwords;
    using restore = new DisposableStack();
    restore.defer(() => {
      passwords.verify = verify;
      passwords.verifyDummy = verifyDummy;
    });
    passwords.verify = (hash, password) => (calls.push("verify"), verify(hash, password));
    passwords.verifyDummy = (password) => (calls.push("dummy"), verifyDummy(password));
    await (await login(h, "known@example.com", "not the password")).body?.cancel();
    assert.deepEqual(calls, ["verify"]);
    await (await login(h, "nobody-at-all@example.com", "not the password")).body?.cancel();
    assert.deepEqual(calls, ["verify", "dummy"]);
    assert.match(passwords.dummyHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, "same cost");
  });

  await t.step("a hash made with weaker parameters is upgraded at the next login", async () => {
    await register(h, "legacy@example.com", "old password 1");
    const weak = await hash("old password 1", { algorithm: 2, memoryCost: 4096, timeCost: 1 });
    await h.sql`UPDATE users SET password_hash = ${weak} WHERE email = 'legacy@example.com'`;
    assert.equal((await login(h, "legacy@example.com", "old password 1")).status, 200);
    const [row] = await h.sql`SELECT password_hash FROM users WHERE email = 'legacy@example.com'`;
    assert.match(row.passwordHash, /m=19456,t=2,p=1/);
  });
});

Deno.test("argon2id runs off the event loop", async () => {
  const hasher = await createPasswordHasher();
  let timerRan = false;
  const pending = hasher.hash("some password");
  setTimeout(() => timerRan = true, 0);
  const hashed = await pending;
  assert.ok(timerRan, "a timer fired while the hash was computed");
  assert.ok(await hasher.verify(hashed, "some password"));
  assert.equal(await hasher.verify(hashed, "other password"), false);
  assert.equal(await hasher.verify("not a hash", "x"), false);

  // The dummy verification is a real one, against a hash of today's parameters: it costs
  // what a wrong password costs (counted, not timed; the benchmark shows both latencies).
  assert.equal(await hasher.verifyDummy("wrong"), false);
  const params = (h: string) => h.split("$").slice(1, 4).join("$");
  assert.equal(params(hasher.dummyHash), params(hashed));
  assert.equal(params(hashed), "argon2id$v=19$m=19456,t=2,p=1");
});
