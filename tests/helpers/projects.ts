/**
 * What the project tests share: their Deno.test shape, API calls, and project rows made
 * through the API (createProject) or straight in the database (insertProject).
 */
import assert from "node:assert/strict";
import type { Sql } from "@/infra/db/database.ts";
import type { TestApp } from "./app.ts";
import { SKIP_ENGINE_TESTS } from "./engine.ts";
import type { TestUser } from "./users.ts";

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

/** POST /projects as `user`, in-process: asserts the 201 and returns the project it answers. */
export async function createProject(h: TestApp, user: TestUser, name = "project") {
  const created = await call(h, user, "POST", "/projects", { name });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body;
}

/** POST /projects, which answers once the project runs and SSH accepts logins. */
export async function createRunning(h: TestApp, user: TestUser, name = "project") {
  const project = await createProject(h, user, name);
  assert.equal(project.status, "running");
  return project;
}

/**
 * A project row straight into the database, with no container and no API call: the columns
 * a test names (camelCase; a value may be an sql`...` fragment such as sql`now()`) over
 * placeholders for the ones every row needs. Returns its id.
 */
export async function insertProject(
  sql: Sql,
  userId: string,
  columns: Record<string, unknown> = {},
): Promise<string> {
  const row = {
    userId,
    name: "p",
    sshPublicKey: "ssh-ed25519 AAAA test",
    gcsPrefix: "projects/x/",
    ...columns,
  };
  const [{ id }] = await sql<{ id: string }[]>`
    INSERT INTO projects ${sql(row as never)} RETURNING id`;
  return id;
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
