import assert from "node:assert/strict";
import { removeProjectResources } from "@/projects/lifecycle/delete.ts";
import { reconcile } from "@/projects/reconciler.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { createProject, engineTest } from "./helpers/projects.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";
import { installationLabel, projectLabel } from "@/projects/rows.ts";

/** The project's container and network on the engine, and its workspace on disk. */
async function engineState(h: TestApp, projectId: string) {
  using engine = await requireEngine();
  return {
    container: await engine.inspectContainer(`pomodex-${projectId}`),
    network: await engine.inspectNetwork(`pomodex-net-${projectId}`),
    workspace: await workspaceOnDisk(h.dataDir, projectId),
  };
}

engineTest("create, SSH in, write to the workspace, delete: nothing left", async () => {
  await using h = await createTestApp();
  const user = await signUp(h);
  const started = performance.now();
  const project = await createProject(h, user, "  my first project  ");
  const createMs = performance.now() - started;
  assert.equal(project.name, "my first project");
  assert.equal(project.status, "running");
  assert.equal(project.ssh_user, "agent");
  assert.equal(project.ssh_host, "127.0.0.1");
  assert.ok(project.ssh_port > 0);
  assert.match(project.ssh_private_key, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  assert.equal(project.terminal_url, `ws://localhost:9000/terminal/${project.id}`);
  console.log(`create → running in ${Math.round(createMs)} ms`);

  const ssh = await sshRun(
    project,
    project.ssh_private_key,
    "id -un; echo $HOME; echo kept > ~/notes.txt; cat ~/notes.txt; df --output=target ~ | tail -1",
  );
  assert.equal(ssh.code, 0, ssh.stderr);
  assert.deepEqual(ssh.stdout.trim().split("\n"), [
    "agent",
    "/home/agent",
    "kept",
    "/home/agent",
  ]);

  const { container, workspace } = await engineState(h, project.id);
  assert.ok(container?.State.Running);
  assert.equal(container.Config.Labels?.["pomodex.project"], project.id);
  assert.equal(container.HostConfig?.Memory, 1024 * 1024 * 1024);
  assert.equal(container.HostConfig?.PidsLimit, 256);
  // No raw sockets for neighbours' traffic, even with sudo inside.
  const caps = await sshRun(
    project,
    project.ssh_private_key,
    "sudo grep CapBnd /proc/self/status",
  );
  const bounding = BigInt(`0x${caps.stdout.trim().split(/\s+/)[1]}`);
  assert.equal(bounding & (1n << 13n), 0n, "CAP_NET_RAW is dropped");
  assert.ok(workspace);

  const got = await h.request(`/projects/${project.id}`, { headers: user.auth });
  assert.equal(got.status, 200);
  assert.equal((await got.json()).ssh_private_key, project.ssh_private_key);

  const list = await (await h.request("/projects", { headers: user.auth })).json();
  assert.deepEqual(list.map((p: { id: string }) => p.id), [project.id]);
  assert.equal(list[0].ssh_private_key, undefined, "no key material in lists");

  const del = await h.request(`/projects/${project.id}`, {
    method: "DELETE",
    headers: user.auth,
  });
  assert.equal(del.status, 200);
  assert.deepEqual(await del.json(), { status: "deleted" });
  const after = await engineState(h, project.id);
  assert.equal(after.container, null);
  assert.equal(after.network, null);
  assert.equal(after.workspace, false);
  const again = await h.request(`/projects/${project.id}`, {
    method: "DELETE",
    headers: user.auth,
  });
  assert.equal(again.status, 404);
  assert.equal((await h.request(`/projects/${project.id}`, { headers: user.auth })).status, 404);
});

engineTest("a user's own public key: no private key stored or returned, SSH works", async () => {
  await using h = await createTestApp();
  const user = await signUp(h);
  const keys = await generateSshKeyPair("me@laptop");
  const res = await h.request("/projects", {
    method: "POST",
    headers: user.auth,
    json: { name: "byo-key", ssh_public_key: keys.publicKey },
  });
  const project = await res.json();
  assert.equal(res.status, 201);
  assert.equal(project.ssh_private_key, null);
  const [row] = await h
    .sql`SELECT ssh_private_key_encrypted FROM projects WHERE id = ${project.id}`;
  assert.equal(row.sshPrivateKeyEncrypted, null);
  const ssh = await sshRun(project, keys.privateKey, "whoami");
  assert.equal(ssh.stdout.trim(), "agent");
  await h.request(`/projects/${project.id}`, { method: "DELETE", headers: user.auth });
});

engineTest("another user's project is a 404 for every verb; two concurrent deletes", async () => {
  await using h = await createTestApp();
  const alice = await signUp(h);
  const bob = await signUp(h);
  const project = await createProject(h, alice, "demo");
  for (
    const [method, path] of [
      ["GET", ""],
      ["DELETE", ""],
      ["POST", "/stop"],
      ["POST", "/start"],
      ["POST", "/snapshot"],
      ["POST", "/restore"],
      ["GET", "/backup-status"],
      ["POST", "/terminal-ticket"],
      ["POST", "/activity"],
    ]
  ) {
    const res = await h.request(`/projects/${project.id}${path}`, { method, headers: bob.auth });
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.deepEqual(await res.json(), { detail: "Project not found", code: "not_found" });
  }
  assert.deepEqual(await (await h.request("/projects", { headers: bob.auth })).json(), []);
  assert.equal((await engineState(h, project.id)).container?.State.Running, true);

  const [a, b] = await Promise.all([
    h.request(`/projects/${project.id}`, { method: "DELETE", headers: alice.auth }),
    h.request(`/projects/${project.id}`, { method: "DELETE", headers: alice.auth }),
  ]);
  assert.deepEqual([a.status, b.status].sort(), [200, 404]);
  const after = await engineState(h, project.id);
  assert.equal(after.container, null);
  assert.equal(after.network, null);
  assert.equal(after.workspace, false);
  const [{ count }] = await h.sql`SELECT count(*)::int AS count FROM projects`;
  assert.equal(count, 0);
});

Deno.test("engine down: create answers 502, the project is in error, nothing left", async () => {
  // SANDBOX_USERNS=required asks the engine first: unreachable is still a 502, not a 500.
  await using h = await createTestApp({
    DOCKER_HOST: "unix:///nonexistent/docker.sock",
    SANDBOX_USERNS: "required",
  });
  const user = await signUp(h);
  const res = await h.request("/projects", {
    method: "POST",
    headers: user.auth,
    json: { name: "x" },
  });
  assert.equal(res.status, 502);
  const body = await res.json();
  assert.equal(body.code, "provision_failed");
  assert.match(body.detail, /unreachable/);
  const list = await (await h.request("/projects", { headers: user.auth })).json();
  assert.equal(list.length, 1);
  assert.equal(list[0].status, "error");
  const got = await (await h.request(`/projects/${list[0].id}`, { headers: user.auth })).json();
  assert.match(got.status_reason, /^create failed: /);
  assert.equal(got.ssh_port, null);
  assert.equal(await workspaceOnDisk(h.dataDir, got.id), false, "no workspace disk left");
  const ready = await h.request("/ready");
  assert.equal(ready.status, 503);
  assert.equal((await ready.json()).checks.engine.ok, false);
});

Deno.test("names, quota, paging and filters", async (t) => {
  await using h = await createTestApp({ DOCKER_HOST: "unix:///nonexistent/docker.sock" });
  const user = await signUp(h);
  await t.step("names are validated", async () => {
    for (const name of ["", "   ", "x".repeat(65), "bad\nname", "nul\u0000", 42, null]) {
      const res = await h.request("/projects", {
        method: "POST",
        headers: user.auth,
        json: { name },
      });
      assert.equal(res.status, 422, JSON.stringify(name));
      const body = await res.json();
      assert.equal(body.code, "validation_error");
      assert.equal(body.errors[0].path, "name");
    }
  });

  await t.step("malformed ids are 404", async () => {
    for (const id of ["nope", "1", "' OR 1=1 --", "00000000-0000-0000-0000-000000000000"]) {
      const res = await h.request(`/projects/${encodeURIComponent(id)}`, { headers: user.auth });
      assert.equal(res.status, 404, id);
    }
  });

  await t.step("quota", async () => {
    await h.sql`UPDATE users SET project_quota = 1 WHERE id = ${user.userId}`;
    await h.request("/projects", { method: "POST", headers: user.auth, json: { name: "one" } });
    const res = await h.request("/projects", {
      method: "POST",
      headers: user.auth,
      json: { name: "two" },
    });
    assert.equal(res.status, 403);
    assert.equal((await res.json()).code, "quota_exceeded");
    await h.sql`DELETE FROM projects`;
    await h.sql`UPDATE users SET project_quota = NULL WHERE id = ${user.userId}`;
  });

  await t.step("cursor paging visits every project once, newest first", async () => {
    // Rows straight in the database: paging is about queries, not containers.
    for (let i = 0; i < 23; i++) {
      await h.sql`INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix)
        VALUES (${user.userId}, ${`p-${i}${i % 5 === 0 ? "_match%" : ""}`},
                ${i % 2 ? "stopped" : "running"}, 'k', 'x/')`;
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Response = await h.request(
        `/projects?limit=10${cursor ? `&cursor=${cursor}` : ""}`,
        { headers: user.auth },
      );
      const page = await res.json();
      seen.push(...page.map((p: { name: string }) => p.name));
      cursor = res.headers.get("x-next-cursor");
    } while (cursor);
    assert.equal(seen.length, 23);
    assert.equal(new Set(seen).size, 23);
    assert.equal(seen[0], "p-22");

    const stopped =
      await (await h.request("/projects?status=stopped&limit=100", { headers: user.auth }))
        .json();
    assert.equal(stopped.length, 11);
    const matching = await (await h.request("/projects?q=_match%25", { headers: user.auth }))
      .json();
    assert.equal(matching.length, 5, "LIKE wildcards in q are literal");

    for (const q of ["limit=0", "limit=101", "status=bogus", "cursor=garbage"]) {
      const res = await h.request(`/projects?${q}`, { headers: user.auth });
      assert.equal(res.status, 422, q);
    }
  });

  await t.step("no token is a 401 with WWW-Authenticate", async () => {
    const res = await h.request("/projects");
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), "Bearer");
  });
});

engineTest("server killed mid-create: the reconciler leaves no orphan", async () => {
  await using h = await createTestApp();
  using engine = await requireEngine();
  const user = await signUp(h);
  // A creating row whose container came up, as a crash between the two would leave it.
  const [row] = await h.sql`INSERT INTO projects (user_id, name, ssh_public_key, gcs_prefix,
      worker_id)
    VALUES (${user.userId}, 'half-made', 'ssh-ed25519 AAAA', 'x/', ${h.deps.instanceId})
    RETURNING id`;
  const { startSandbox } = await import("@/projects/sandbox.ts");
  const keys = await generateSshKeyPair("t");
  await startSandbox(h.deps, {
    projectId: row.id,
    userId: user.userId,
    image: h.config.engine.sandboxImage,
    sshPublicKey: keys.publicKey,
    directEgress: false,
  });
  // And a container labelled ours with no row at all.
  const orphanId = crypto.randomUUID();
  await engine.createContainer(`pomodex-${orphanId}`, {
    Image: h.config.engine.sandboxImage,
    Env: { SSH_PUBLIC_KEY: keys.publicKey },
    Labels: { [installationLabel]: h.deps.installationId, [projectLabel]: orphanId },
  });

  const deps = h.deps;
  const soon = await reconcile(deps);
  assert.deepEqual(soon.markedError, [], "a create whose instance is alive is left alone");
  assert.deepEqual(soon.orphansRemoved, [orphanId]);

  // Its instance stops beating (killed): the next pass finishes the job.
  await h.sql`UPDATE instances SET heartbeat_at = now() - interval '1 minute'`;
  const later = await reconcile(deps);
  assert.deepEqual(later.markedError, [row.id]);
  assert.equal(await engine.inspectContainer(`pomodex-${row.id}`), null);
  assert.equal(await workspaceOnDisk(h.dataDir, row.id), false);
  assert.equal(await engine.inspectNetwork(`pomodex-net-${row.id}`), null);
  assert.equal(await engine.inspectContainer(`pomodex-${orphanId}`), null);
  const [after] = await h.sql`SELECT status, status_reason FROM projects WHERE id = ${row.id}`;
  assert.equal(after.status, "error");
  assert.equal(after.statusReason, "creation was interrupted");
});

Deno.test("scopes: a read-only API key can look at projects but not change them", async () => {
  await using h = await createTestApp({ DOCKER_HOST: "unix:///nonexistent/docker.sock" });
  const user = await signUp(h);
  const keyFor = async (scopes: string[]) => {
    const res = await h.request("/auth/api-keys", {
      method: "POST",
      headers: user.auth,
      json: { name: scopes.join("+"), lifetime: "1h", scopes },
    });
    assert.equal(res.status, 201);
    return { authorization: `Bearer ${(await res.json()).key}` };
  };
  const reader = await keyFor(["projects:read"]);
  const writer = await keyFor(["projects:write"]);
  const [row] = await h
    .sql`INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix)
    VALUES (${user.userId}, 'kept', 'stopped', 'k', 'x/') RETURNING id`;

  assert.equal((await h.request("/projects", { headers: reader })).status, 200);
  assert.equal((await h.request(`/projects/${row.id}`, { headers: reader })).status, 200);
  for (
    const [method, path, json] of [
      ["POST", "/projects", { name: "nope" }],
      ["DELETE", `/projects/${row.id}`, undefined],
      ["PATCH", `/projects/${row.id}`, { name: "renamed" }],
      ["POST", `/projects/${row.id}/start`, undefined],
      ["POST", `/projects/${row.id}/stop`, undefined],
      ["POST", `/projects/${row.id}/activity`, undefined],
      ["POST", `/projects/${row.id}/terminal-ticket`, undefined],
    ] as const
  ) {
    const res = await h.request(path, { method, headers: reader, json });
    assert.equal(res.status, 403, `${method} ${path}`);
    assert.equal((await res.json()).code, "insufficient_scope");
  }
  const [after] = await h.sql`SELECT name, status FROM projects WHERE id = ${row.id}`;
  assert.deepEqual({ ...after }, { name: "kept", status: "stopped" });

  // projects:write may change; it reaches the engine (absent here: 502, not 403).
  const create = await h.request("/projects", {
    method: "POST",
    headers: writer,
    json: { name: "w" },
  });
  assert.equal(create.status, 502);
  const rename = await h.request(`/projects/${row.id}`, {
    method: "PATCH",
    headers: writer,
    json: { name: "renamed" },
  });
  assert.equal(rename.status, 200);
});

engineTest("disabling a user snapshots and stops their running projects", async () => {
  await using h = await createTestApp({
    INITIAL_ADMIN_EMAIL: "root@example.com",
    INITIAL_ADMIN_PASSWORD: "admin password 1",
  });
  const user = await signUp(h);
  const project = await createProject(h, user, "owner-disabled");
  const login = await h.request("/auth/login", {
    method: "POST",
    json: { email: "root@example.com", password: "admin password 1" },
  });
  const admin = { authorization: `Bearer ${(await login.json()).access_token}` };
  const res = await h.request(`/admin/users/${user.userId}/disable`, {
    method: "POST",
    headers: admin,
  });
  assert.equal(res.status, 200);
  let status = "";
  for (let i = 0; i < 100 && status !== "stopped"; i++) {
    await new Promise((r) => setTimeout(r, 100));
    [{ status }] = await h.sql`SELECT status FROM projects WHERE id = ${project.id}`;
  }
  assert.equal(status, "stopped");
  assert.equal(
    (await engineState(h, project.id)).container,
    null,
    "SSH is gone with the container",
  );
  // A snapshot was taken first, and it is in the engine.
  // (Read from the database: the disabled owner's token no longer works.)
  const [backups] = await h.sql<{ snapshotImage: string | null }[]>`
    SELECT snapshot_image FROM projects WHERE id = ${project.id}`;
  assert.match(
    backups.snapshotImage ?? "",
    new RegExp(`pomodex-snapshot-${project.id}:s\\d{17}$`),
  );
  {
    using engine = await requireEngine();
    assert.ok(await engine.inspectImage(backups.snapshotImage!), "the snapshot image exists");
  }
  const [event] = await h.sql`SELECT details FROM audit_log
    WHERE event = 'project.stopped_owner_disabled' AND project_id = ${project.id}`;
  assert.equal(event.details.reason, "the owner's account was disabled");
  await removeProjectResources(h.deps, { id: project.id, gcsPrefix: `projects/${project.id}/` });
});
