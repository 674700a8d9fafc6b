// The database going away is a 503 that says so, not a 500; and the pool tries again within
// about a second, instead of backing off up to 20 s after a restart of a few seconds
// (reliability/faults_test.ts restarts a real cluster under load).
import assert from "node:assert/strict";
import { openDatabase, reconnectBackoff } from "../lib/db/database.ts";
import { isDatabaseUnavailable, toAppError } from "../lib/http/errors.ts";
import { silentLogger } from "../lib/log.ts";

Deno.test("connection failures are database_unavailable (503), other errors are not", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5999"), {
    code: "ECONNREFUSED",
    syscall: "connect",
  });
  const adminShutdown = Object.assign(new Error("terminating connection"), { code: "57P01" });
  for (
    const err of [
      refused,
      adminShutdown,
      Object.assign(new Error("the database system is shutting down"), { code: "57P03" }),
      Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" }),
      Object.assign(new Error("write EPIPE"), { code: "EPIPE", syscall: "write" }),
      Object.assign(new Error("This socket has been ended by the other party"), { code: "EPIPE" }),
      Object.assign(new Error("connection failure"), { code: "08006" }),
    ]
  ) {
    assert.ok(isDatabaseUnavailable(err), err.message);
    const mapped = toAppError(err)!;
    assert.equal(mapped.status, 503);
    assert.equal(mapped.code, "database_unavailable");
    assert.equal(mapped.extra.headers?.["Retry-After"], "5");
  }
  for (
    const err of [
      new Error("boom"),
      Object.assign(new Error("duplicate key"), { code: "23505" }),
      Object.assign(new Error("syntax"), { code: "42601" }),
      Object.assign(new Error("refused elsewhere"), { code: "ECONNREFUSED" }), // no connect
      null,
    ]
  ) {
    assert.equal(isDatabaseUnavailable(err), false, String(err));
  }
});

Deno.test("the reconnect backoff stays within a second", () => {
  for (let retries = 0; retries < 50; retries++) {
    const s = reconnectBackoff(retries);
    assert.ok(s >= 0 && s <= 1, `${retries}: ${s}`);
  }
});

Deno.test("a pool whose server is gone keeps failing fast, not ever more slowly", async () => {
  // A port nothing listens on: every connect is refused at once.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const db = await openDatabase({
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir: "/nonexistent",
    poolSize: 1,
    log: silentLogger,
  });
  try {
    const started = performance.now();
    // With postgres.js's default backoff the 7th and 8th attempts alone wait 7 and 20 s.
    for (let i = 0; i < 8; i++) {
      const err = await db.sql`SELECT 1`.then(() => null, (e) => e);
      assert.ok(isDatabaseUnavailable(err), `attempt ${i}: ${err}`);
    }
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 12, `8 failed attempts took ${seconds.toFixed(1)} s`);
  } finally {
    await db.close();
  }
});
