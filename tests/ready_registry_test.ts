// /ready names the snapshot registry when one is configured, but only reports it: a registry
// outage fails stops (502 snapshot_failed), not the instance's readiness.
import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";
import { testRegistry } from "./helpers/env.ts";
import { refusingAddress } from "./helpers/ports.ts";

Deno.test("/ready reports the registry as an optional check", async () => {
  const sharedRegistry = testRegistry();
  // A registry that is down: nothing listens there while the test holds the address.
  const down = refusingAddress();
  for (const [registry, up] of [[down.address, false], [sharedRegistry, true]] as const) {
    await using h = await createTestApp({ REGISTRY: registry });
    const res = await h.request("/ready");
    const body = await res.json();
    assert.equal(body.checks.registry.optional, true, JSON.stringify(body));
    assert.equal(body.checks.registry.ok, up, JSON.stringify(body));
    if (!up) assert.ok(body.checks.registry.error);
    // The database and the engine decide readiness.
    const required = Object.entries(body.checks as Record<string, { ok: boolean }>)
      .filter(([name]) => name !== "registry");
    const expected = required.every(([, c]) => c.ok);
    assert.equal(body.ready, expected);
    assert.equal(res.status, expected ? 200 : 503);
  }
  down.close();
  // Without a registry there is nothing to report.
  await using h = await createTestApp();
  const body = await (await h.request("/ready")).json();
  assert.equal(body.checks.registry, undefined);
});
