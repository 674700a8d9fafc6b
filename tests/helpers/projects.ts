/** What the engine-backed project tests share: their Deno.test shape and API calls. */
import assert from "node:assert/strict";
import type { TestApp } from "./app.ts";
import { SKIP_ENGINE_TESTS } from "./engine.ts";
import type { TestUser } from "./users.ts";

/** The local registry the test command starts (snapshots are pushed there). */
export const SHARED_REGISTRY = Deno.env.get("TEST_REGISTRY") ?? "localhost:5000";

/**
 * A test on the real engine (skipped without one). Pooled connections (postgres.js, the
 * engine client) outlive single tests, so the resource sanitizers are off.
 */
export const engineTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: SKIP_ENGINE_TESTS, sanitizeResources: false, sanitizeOps: false, fn });

/** One API call as `user`, in-process: the status and the parsed body (null when empty). */
export async function call(
  h: TestApp,
  user: TestUser,
  method: string,
  path: string,
  json?: unknown,
) {
  const res = await h.request(path, { method, headers: user.auth, json });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** POST /projects, which answers once the project runs and SSH accepts logins. */
export async function createRunning(h: TestApp, user: TestUser, name = "project") {
  const created = await call(h, user, "POST", "/projects", { name });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.status, "running");
  return created.body;
}

/** A repository's tags in a registry, through its HTTP API ([] when it has none). */
export async function registryTags(registry: string, repository: string): Promise<string[]> {
  const res = await fetch(
    `http://${registry.replace("localhost", "127.0.0.1")}/v2/${repository}/tags/list`,
  );
  if (res.status === 404) {
    await res.body?.cancel();
    return [];
  }
  return (await res.json()).tags ?? [];
}
