// The database going away is a 503 that says so, not a 500; and the pool tries again within
// about a second, instead of backing off up to 20 s after a restart of a few seconds
// (reliability/faults_test.ts restarts a real cluster under load).
import assert from "node:assert/strict";
import { openDatabase, reconnectBackoff } from "@/infra/db/database.ts";
import { isDatabaseUnavailable, toAppError } from "@/web/http/errors.ts";
import { silentLogger } from "@/core/log.ts";
import { refusingAddress } from "./helpers/ports.ts";

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
  // Every connect is refused at once (an address held by the test, see refusingAddress).
  await using cleanup = new AsyncDisposableStack();
  const gone = refusingAddress();
  cleanup.defer(() => gone.close());
  const db = await openDatabase({
    url: `postgres://postgres@${gone.address}/postgres`,
    dataDir: "/nonexistent",
    poolSize: 1,
    log: silentLogger,
  });
  cleanup.defer(() => db.close());
  // The pool waits between reconnects by our backoff (under a second, tested above), not
  // postgres.js's default, whose 7th and 8th waits alone are 7 and 20 s.
  const options = (db.sql as unknown as { options: { backoff: unknown } }).options;
  assert.equal(options.backoff, reconnectBackoff);
  const started = performance.now();
  for (let i = 0; i < 8; i++) {
    const err = await db.sql`SELECT 1`.then(() => null, (e) => e);
    assert.ok(isDatabaseUnavailable(err), `attempt ${i}: ${err}`);
    assert.equal(err.code, "ECONNREFUSED", `attempt ${i}: ${err}`);
  }
  // How long that took is for the log: a busy machine must not fail the run over it.
  console.log(`8 failed queries: ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
