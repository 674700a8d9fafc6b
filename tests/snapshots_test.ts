import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { startEngineFaultProxy } from "./helpers/engine-faults.ts";
import { startTestRegistry } from "./helpers/registry.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";
import { call, createRunning, engineTest, registryTags } from "./helpers/projects.ts";
import { testRegistry } from "./helpers/env.ts";
import { removeWorkspaceOf, workspaceOnDisk } from "./helpers/workspace.ts";

engineTest(
  "stop pushes a snapshot; start brings back the workspace and the system changes",
  async () => {
    const sharedRegistry = testRegistry();
    await using h = await createTestApp({ REGISTRY: sharedRegistry });
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    const key = project.ssh_private_key;
    const setup = await sshRun(
      project,
      key,
      "echo in-workspace > ~/work.txt && sudo sh -c 'echo \"#!/bin/sh\necho tool-ok\" > /usr/local/bin/mytool && chmod +x /usr/local/bin/mytool'",
    );
    assert.equal(setup.code, 0, setup.stderr);

    const stopped = await call(h, user, "POST", `/projects/${project.id}/stop`);
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    assert.equal(stopped.body.status, "stopped");
    assert.ok(stopped.body.last_snapshot_at);
    assert.equal(stopped.body.ssh_port, null);
    assert.equal(
      await engine.inspectContainer(`pomodex-${project.id}`),
      null,
      "container removed",
    );
    assert.ok(await workspaceOnDisk(h.dataDir, project.id), "workspace kept");

    const status = await call(h, user, "GET", `/projects/${project.id}/backup-status`);
    assert.equal(status.status, 200);
    const image: string = status.body.snapshot_image;
    assert.match(image, new RegExp(`^${sharedRegistry}/pomodex-${project.id}:s\\d{17}$`));
    assert.equal(status.body.backups.length, 1, "a backup on every stop");
    assert.ok(status.body.last_backup_at);
    const tags = await registryTags(sharedRegistry, `pomodex-${project.id}`);
    assert.deepEqual(tags.sort(), ["latest", image.split(":").at(-1)!].sort());

    // Pulled back from the registry: the engine no longer has it.
    for (const i of await engine.listImages(`${sharedRegistry}/pomodex-${project.id}`)) {
      for (const ref of i.RepoTags ?? []) await engine.removeImage(ref, { force: true });
    }
    const again = await call(h, user, "POST", `/projects/${project.id}/stop`);
    assert.equal(again.status, 409, "stop of a stopped project");
    assert.equal(again.body.code, "invalid_state");

    const started = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.status, "running");
    const check = await sshRun(started.body, key, "cat ~/work.txt; mytool");
    assert.equal(check.code, 0, check.stderr);
    assert.deepEqual(check.stdout.trim().split("\n"), ["in-workspace", "tool-ok"]);

    const del = await call(h, user, "DELETE", `/projects/${project.id}`);
    assert.equal(del.status, 200);
    assert.deepEqual(await registryTags(sharedRegistry, `pomodex-${project.id}`), []);
    assert.deepEqual(await engine.listImages(`${sharedRegistry}/pomodex-${project.id}`), []);
    const backupDir = `${h.dataDir}/backups/projects/${project.id}`;
    assert.equal(await Deno.stat(backupDir).then(() => true, () => false), false);
  },
);

engineTest(
  "without a registry snapshots stay engine images; a lost volume comes back from backup",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    await sshRun(
      project,
      project.ssh_private_key,
      "mkdir -p ~/src && echo backed-up > ~/src/a.txt",
    );
    const stopped = await call(h, user, "POST", `/projects/${project.id}/snapshot`);
    assert.equal(stopped.status, 200);
    const { body: status } = await call(h, user, "GET", `/projects/${project.id}/backup-status`);
    assert.match(
      status.snapshot_image,
      new RegExp(`^localhost/pomodex-snapshot-${project.id}:s`),
    );

    await removeWorkspaceOf(h.dataDir, project.id);
    const started = await call(h, user, "POST", `/projects/${project.id}/restore`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const check = await sshRun(
      started.body,
      project.ssh_private_key,
      "cat ~/src/a.txt; ls -ld ~/src | cut -d' ' -f3",
    );
    assert.equal(check.code, 0, check.stderr);
    assert.deepEqual(check.stdout.trim().split("\n"), ["backed-up", "agent"]);
    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
    assert.deepEqual(await engine.listImages(`localhost/pomodex-snapshot-${project.id}`), []);
  },
);

engineTest("registry down during stop: error, old snapshot intact, nothing lost", async () => {
  await using registry = await startTestRegistry();
  await using h = await createTestApp({ REGISTRY: registry.address });
  using engine = await requireEngine();
  const user = await signUp(h);
  const project = await createRunning(h, user);
  const key = project.ssh_private_key;
  assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);
  const first = (await call(h, user, "GET", `/projects/${project.id}/backup-status`)).body;
  const restarted = await call(h, user, "POST", `/projects/${project.id}/start`);
  assert.equal(restarted.status, 200);
  await sshRun(
    restarted.body,
    key,
    "echo after-first-snapshot > ~/late.txt; sudo touch /opt/late",
  );

  await registry.stop();
  const failed = await call(h, user, "POST", `/projects/${project.id}/stop`);
  assert.equal(failed.status, 502);
  assert.equal(failed.body.code, "snapshot_failed");
  const now = (await call(h, user, "GET", `/projects/${project.id}`)).body;
  assert.equal(now.status, "error");
  assert.match(now.status_reason, /^snapshot failed: /);
  const after = (await call(h, user, "GET", `/projects/${project.id}/backup-status`)).body;
  assert.equal(after.snapshot_image, first.snapshot_image, "the previous snapshot stays current");
  assert.equal(after.last_snapshot_at, first.last_snapshot_at);
  // The image the failed stop committed never became current: the engine no longer has it.
  const repository = `${registry.address}/pomodex-${project.id}`;
  const refs = (await engine.listImages(repository)).flatMap((i) => i.RepoTags ?? []);
  assert.deepEqual(refs.sort(), [first.snapshot_image, `${repository}:latest`].sort());
  const container = await engine.inspectContainer(`pomodex-${project.id}`);
  assert.equal(container?.State.Running, true, "the container was not stopped");

  // Start from error brings the same container back: nothing written since is lost.
  await registry.start();
  const back = await call(h, user, "POST", `/projects/${project.id}/start`);
  assert.equal(back.status, 200, JSON.stringify(back.body));
  const check = await sshRun(back.body, key, "cat ~/late.txt; ls /opt/late");
  assert.deepEqual(check.stdout.trim().split("\n"), ["after-first-snapshot", "/opt/late"]);
  assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);
  assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
});

engineTest("a disk-full error on commit: error, container untouched, start recovers", async () => {
  let failCommits = true;
  await using proxy = startEngineFaultProxy((req, path) =>
    failCommits && req.method === "POST" && path === "/commit"
      ? Response.json(
        { message: "committing container: write /var/lib/containers: no space left on device" },
        { status: 500 },
      )
      : null
  );
  await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost });
  const user = await signUp(h);
  const project = await createRunning(h, user);
  await sshRun(project, project.ssh_private_key, "echo precious > ~/p.txt");
  const failed = await call(h, user, "POST", `/projects/${project.id}/stop`);
  assert.equal(failed.status, 502);
  assert.match(failed.body.detail, /no space left on device/);
  const now = (await call(h, user, "GET", `/projects/${project.id}`)).body;
  assert.equal(now.status, "error");
  assert.equal(now.last_snapshot_at, null);
  failCommits = false;
  const back = await call(h, user, "POST", `/projects/${project.id}/start`);
  assert.equal(back.status, 200);
  const check = await sshRun(back.body, project.ssh_private_key, "cat ~/p.txt");
  assert.equal(check.stdout.trim(), "precious");
  assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
});
