import assert from "node:assert/strict";
import { openDatabase } from "@/infra/db/database.ts";
import { migrate, readMigrations } from "@/infra/db/migrate.ts";
import { silentLogger } from "@/core/log.ts";
import { createTestApp } from "./helpers/app.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { engineSocketPath } from "./helpers/engine.ts";
import { sandboxImage } from "./helpers/env.ts";

Deno.test("HTTP basics, in-process", async (t) => {
  await using h = await createTestApp();
  await t.step("health, ready, metrics, openapi", async () => {
    const health = await h.request("/health");
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });

    const ready = await h.request("/ready");
    assert.equal(ready.status, 200);
    const readiness = await ready.json();
    assert.equal(readiness.ready, true);
    assert.deepEqual(readiness.checks.database, { ok: true });
    assert.deepEqual(readiness.checks.engine, { ok: true });
    // ...and it is the run's engine (DOCKER_HOST), the one every assertion reads: a helper
    // that fell back to a default socket would test another engine without a word.
    assert.equal(h.deps.engine.socketPath, engineSocketPath());
    assert.equal(h.config.engine.sandboxImage, sandboxImage());

    const metrics = await h.request("/metrics");
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(
      text,
      /pomodex_http_requests_total\{method="GET",route="\/health",status="200"\} 1/,
    );
    assert.match(text, /pomodex_http_request_duration_seconds_bucket/);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);

    const doc = await (await h.request("/openapi.json")).json();
    assert.equal(doc.openapi, "3.1.0");
    for (const path of ["/health", "/ready", "/metrics"]) assert.ok(doc.paths[path], path);
  });

  await t.step("request id echoed when well formed, replaced when not", async () => {
    const echoed = await h.request("/health", { headers: { "x-request-id": "abc-123" } });
    assert.equal(echoed.headers.get("x-request-id"), "abc-123");
    const bad = await h.request("/health", { headers: { "x-request-id": "<script>" } });
    assert.match(bad.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
    const fresh = await h.request("/nope");
    assert.match(fresh.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  });

  await t.step("unknown route is a JSON 404, wrong method a 405 with Allow", async () => {
    const missing = await h.request("/no/such/route");
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { detail: "No such route", code: "not_found" });
    const wrong = await h.request("/health", { method: "DELETE" });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "GET, HEAD");
    assert.equal((await wrong.json()).code, "method_not_allowed");
  });

  await t.step("secure default headers", async () => {
    const res = await h.request("/health");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN");
    assert.ok(res.headers.get("strict-transport-security"));
  });
});

Deno.test("bad inputs get the documented status and shape", async (t) => {
  await using h = await createTestApp();
  // /auth/register is any JSON endpoint; these checks run before its handler.
  await t.step("malformed JSON is 400 bad_json", async () => {
    const res = await h.request("/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"email": ',
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      detail: "The body is not valid JSON",
      code: "bad_json",
    });
  });

  await t.step("wrong content type is 415", async () => {
    const res = await h.request("/auth/register", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "email=a",
    });
    assert.equal(res.status, 415);
    assert.equal((await res.json()).code, "unsupported_media_type");
  });

  await t.step("1 MB body is 413", async () => {
    const res = await h.request("/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "a@b.co", password: "x".repeat(1024 * 1024) }),
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).code, "payload_too_large");
  });

  await t.step("1 MB body without a length header (streamed) is 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (sent++ >= 16) ctl.close();
        else ctl.enqueue(chunk);
      },
    });
    const res = await h.request("/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.equal(res.status, 413);
  });

  await t.step("NUL bytes and unicode never cause a 5xx", async () => {
    for (const email of ["a\u0000@b.co", "ü@exämple.com", "\u202e@x.io", "😀".repeat(300)]) {
      const res = await h.request("/auth/register", {
        method: "POST",
        json: { email, password: "pässwörd\u0000123" },
      });
      assert.ok(res.status < 500, `${JSON.stringify(email)} gave ${res.status}`);
      const body = await res.json();
      assert.equal(typeof body.code === "string" || typeof body.user_id === "string", true);
    }
  });

  await t.step("no stack trace or SQL text in any error body", async () => {
    const res = await h.request("/auth/register", { method: "POST", json: [1, 2, 3] });
    const text = await res.text();
    assert.ok(res.status === 422 || res.status === 400, `status ${res.status}`);
    assert.doesNotMatch(text, /at \w+ \(|SELECT|INSERT|stack/i);
  });
});

Deno.test("migrations apply on PostgreSQL twice in a row, and concurrently to one schema", async () => {
  await using db = await createTestDatabase({ migrate: false });
  const all = await readMigrations();
  assert.ok(all.length >= 1);
  const runs = await Promise.all([migrate(db.sql), migrate(db.sql), migrate(db.sql)]);
  // Exactly one run applied everything; the others waited on the lock and found nothing to do.
  assert.deepEqual(runs.map((r) => r.length).sort(), [0, 0, all.length]);
  assert.deepEqual(await migrate(db.sql), []);
  const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM schema_migrations`;
  assert.equal(count, all.length);
});

Deno.test("migrations apply on PGlite twice in a row", async () => {
  await using cleanup = new AsyncDisposableStack();
  const dataDir = await Deno.makeTempDir({ prefix: "pomodex-pglite-" });
  cleanup.defer(() => Deno.remove(dataDir, { recursive: true }));
  const first = await openDatabase({ dataDir, poolSize: 1, log: silentLogger });
  assert.equal(first.kind, "pglite");
  assert.equal((await migrate(first.sql)).length, (await readMigrations()).length);
  assert.deepEqual(await migrate(first.sql), []);
  await first.close();
  const again = await openDatabase({ dataDir, poolSize: 1, log: silentLogger });
  assert.deepEqual(await migrate(again.sql), []);
  await again.close();
});

Deno.test("the real server starts with no configuration and keeps data across restarts", async () => {
  await using cleanup = new AsyncDisposableStack();
  const cwd = await Deno.makeTempDir({ prefix: "pomodex-start-" });
  cleanup.defer(() => Deno.remove(cwd, { recursive: true }));
  const main = new URL("../main.ts", import.meta.url).pathname;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const start = () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", config, main],
      cwd,
      // Nothing but a free port, and no proxy: two tests may start servers at once.
      env: { PORT: "0", TERMINAL_PROXY: "false", CRON: "false" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return { child, port: listeningPort(child.stdout) };
  };
  const first = start();
  const port = await first.port;
  const health = await waitFor(() => fetch(`http://127.0.0.1:${port}/health`));
  assert.equal(health.status, 200);
  await health.body?.cancel();
  first.child.kill("SIGTERM");
  const status = await first.child.status;
  assert.equal(status.code, 0, "SIGTERM ends the server cleanly");
  await first.child.stderr.cancel();

  // Write a row straight into the embedded database, then restart and read it back.
  const db = await openDatabase({ dataDir: `${cwd}/data`, poolSize: 1, log: silentLogger });
  await db.sql`INSERT INTO audit_log (event) VALUES ('restart-check')`;
  await db.close();

  const second = start();
  const port2 = await second.port;
  const ready = await waitFor(() => fetch(`http://127.0.0.1:${port2}/ready`));
  assert.equal(ready.status, 200);
  await ready.body?.cancel();
  second.child.kill("SIGTERM");
  await second.child.status;
  await second.child.stderr.cancel();

  const check = await openDatabase({ dataDir: `${cwd}/data`, poolSize: 1, log: silentLogger });
  const rows = await check.sql`SELECT event FROM audit_log WHERE event = 'restart-check'`;
  await check.close();
  assert.equal(rows.length, 1);
});

Deno.test("a bad setting stops the start with one line naming the variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    env: { PORT: "not-a-port", DATA_DIR: "/nonexistent/never-used" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(stderr, "Invalid configuration: PORT must be a number");
});

/** Reads the server's JSON log until the "listening" line and returns its port. */
async function listeningPort(stream: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stream.pipeThrough(textDecoder()).getReader();
  let buffered = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before listening:\n${buffered}`);
    buffered += value;
    const match = buffered.match(/"msg":"listening","url":"http:\/\/[^"]*:(\d+)"/);
    if (match) {
      // Keep draining so the child never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      return Number(match[1]);
    }
  }
}

async function waitFor(fn: () => Promise<Response>, ms = 15000): Promise<Response> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// Typed for byte chunks: with DOM typings in the program, TextDecoderStream wants BufferSource.
function textDecoder() {
  return new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>;
}
