// MAX_RUNNING_SANDBOXES (issue 13): a host says "full" with a 503 and Retry-After instead of
// starting more sandboxes than it can hold, for creates and starts alike, also when they race.
import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";

engineTest(
  "a full host answers 503 capacity_exhausted with Retry-After, to creates and starts",
  async () => {
    await using h = await createTestApp({ MAX_RUNNING_SANDBOXES: "1" });
    const alice = await signUp(h), bob = await signUp(h);
    const first = await createRunning(h, alice, "first");

    const res = await h.request("/projects", {
      method: "POST",
      headers: bob.auth,
      json: { name: "b" },
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "60");
    const body = await res.json();
    assert.equal(body.code, "capacity_exhausted");
    assert.match(body.detail, /most sandboxes at once \(1\)/);
    const [{ count }] = await h.sql`SELECT count(*)::int AS count FROM projects`;
    assert.equal(count, 1, "a refused create leaves no row behind");

    // A stop frees the place; then a start must wait its turn like a create.
    assert.equal((await call(h, alice, "POST", `/projects/${first.id}/stop`)).status, 200);
    const second = await createRunning(h, bob, "second");
    const refused = await call(h, alice, "POST", `/projects/${first.id}/start`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.code, "capacity_exhausted");
    assert.equal((await call(h, alice, "GET", `/projects/${first.id}`)).body.status, "stopped");

    assert.equal((await call(h, bob, "DELETE", `/projects/${second.id}`)).status, 200);
    assert.equal((await call(h, alice, "POST", `/projects/${first.id}/start`)).status, 200);
  },
);

engineTest("two creates racing for the last place: exactly one gets it", async () => {
  await using h = await createTestApp({ MAX_RUNNING_SANDBOXES: "1" });
  const alice = await signUp(h), bob = await signUp(h);
  const [a, b] = await Promise.all([
    call(h, alice, "POST", "/projects", { name: "a" }),
    call(h, bob, "POST", "/projects", { name: "b" }),
  ]);
  assert.deepEqual([a.status, b.status].sort(), [201, 503]);
});

Deno.test("the default capacity follows the machine's memory", async () => {
  const { defaultMaxRunning, loadConfig } = await import("@/core/config.ts");
  assert.equal(defaultMaxRunning(24 * 1024 ** 3, 1024), 96);
  assert.equal(defaultMaxRunning(512 * 1024 ** 2, 1024), 2);
  assert.equal(defaultMaxRunning(100 * 1024 ** 2, 4096), 1, "never 0");
  const config = loadConfig({}, { memoryBytes: 8 * 1024 ** 3 });
  assert.equal(config.isolation.maxRunningSandboxes, 32);
  assert.equal(loadConfig({ MAX_RUNNING_SANDBOXES: "7" }).isolation.maxRunningSandboxes, 7);
});
