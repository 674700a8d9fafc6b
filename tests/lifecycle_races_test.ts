// Lifecycle behaviours around an outside hand and racing requests, on the real engine and
// real PostgreSQL: what the reconciler does when a container vanishes or has no row, and
// what two concurrent stops (or starts) of one project leave behind.
import assert from "node:assert/strict";
import { reconcile } from "@/projects/reconciler.ts";
import { installationLabel, projectLabel } from "@/projects/rows.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine, TEST_LABELS, testImage } from "./helpers/engine.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";
import { call, createRunning, engineTest, registryTags } from "./helpers/projects.ts";
import { testRegistry } from "./helpers/env.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";
import { ensureWorkspace } from "@/infra/host/workspace.ts";

async function auditEvents(h: TestApp, projectId: string, event: string) {
  return await h.sql<{ details: Record<string, unknown> }[]>`
    SELECT details FROM audit_log WHERE project_id = ${projectId} AND event = ${event}
    ORDER BY id`;
}

engineTest(
  "reconciler: a vanished container puts a running project in error; a stopped one is resumed",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user, "vanishing");
    const key = project.ssh_private_key;
    const written = await sshRun(project, key, "echo survived > ~/keep.txt");
    assert.equal(written.code, 0, written.stderr);

    // Removed behind Pomodex's back. No grace period applies to running rows: one pass.
    assert.equal(await engine.removeContainer(`pomodex-${project.id}`, { force: true }), true);
    const report = await reconcile(h.deps);
    assert.deepEqual(report.markedError, [project.id]);
    assert.deepEqual(report.resumed, []);
    assert.deepEqual(report.orphansRemoved, []);

    const seen = await call(h, user, "GET", `/projects/${project.id}`);
    assert.equal(seen.status, 200);
    assert.equal(seen.body.status, "error");
    assert.equal(seen.body.status_reason, "container disappeared");
    assert.equal(seen.body.ssh_port, null, "no SSH details for a project in error");
    assert.equal(seen.body.terminal_url, null);
    const errors = await auditEvents(h, project.id, "project.error");
    assert.deepEqual(errors.map((e) => e.details), [
      { by: "reconciler", reason: "container disappeared" },
    ]);
    assert.ok(await workspaceOnDisk(h.dataDir, project.id), "the workspace is kept");

    // A second pass finds nothing more to do and logs nothing more.
    const again = await reconcile(h.deps);
    assert.deepEqual(again, {
      orphansRemoved: [],
      markedError: [],
      deletesFinished: [],
      resumed: [],
    });
    assert.equal((await auditEvents(h, project.id, "project.error")).length, 1);

    // Start from error brings it back on the kept volume.
    const started = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.status, "running");
    assert.equal(started.body.status_reason, null);
    const back = await sshRun(started.body, key, "cat ~/keep.txt");
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout.trim(), "survived");

    // Stopped behind our back (not removed): the reconciler starts it again, and what the
    // API then tells the user must still reach it.
    const info = await engine.inspectContainer(`pomodex-${project.id}`);
    assert.ok(info?.State.Running);
    await engine.stopContainer(info.Id, { timeoutSeconds: 2 });
    assert.equal((await engine.inspectContainer(info.Id))?.State.Running, false);
    // Podman keeps the port on a restart, Docker may not: a stale port in the row stands in
    // for the engine handing out a new one, which the reconciler must then record.
    await h.sql`UPDATE projects SET ssh_host_port = 1 WHERE id = ${project.id}`;
    const resumed = await reconcile(h.deps);
    assert.deepEqual(resumed.resumed, [project.id]);
    assert.deepEqual(resumed.markedError, []);
    const after = await engine.inspectContainer(info.Id);
    assert.equal(after?.State.Running, true, "the container runs again");
    const view = await call(h, user, "GET", `/projects/${project.id}`);
    assert.equal(view.body.status, "running");
    assert.equal(
      view.body.ssh_port,
      engine.hostPortOf(after, "22/tcp"),
      "the advertised SSH port is the one the engine published",
    );
    let ssh = { code: -1, stdout: "", stderr: "" };
    for (let i = 0; i < 50 && ssh.code !== 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      ssh = await sshRun(view.body, key, "cat ~/keep.txt");
    }
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), "survived");

    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
    assert.equal(await engine.inspectContainer(`pomodex-${project.id}`), null);
    assert.equal(await workspaceOnDisk(h.dataDir, project.id), false);
    assert.equal(await engine.inspectNetwork(`pomodex-net-${project.id}`), null);
  },
);

engineTest(
  "reconciler: removes our containers, networks and workspaces with no row, leaves other installations' alone",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const foreignProject = crypto.randomUUID();
    const foreignLabels = {
      ...TEST_LABELS,
      [installationLabel]: crypto.randomUUID(),
      [projectLabel]: foreignProject,
    };
    // The foreign sandbox carries another installation's label: h.close() leaves it alone.
    await using cleanup = new AsyncDisposableStack();
    cleanup.defer(async () => {
      await engine.removeContainer(`pomodex-${foreignProject}`, { force: true }).catch(() => {});
      await engine.removeNetwork(`pomodex-net-${foreignProject}`).catch(() => {});
    });
    const user = await signUp(h);
    const [kept, orphaned] = await Promise.all([
      createRunning(h, user, "kept"),
      createRunning(h, user, "orphaned"),
    ]);
    // The row goes, the container, network and workspace stay: as a crash mid-delete, or a
    // restore of an older database, would leave them.
    await h.sql`DELETE FROM projects WHERE id = ${orphaned.id}`;
    // A workspace of ours (mounted) with no container and no row.
    const loneWorkspace = crypto.randomUUID();
    await ensureWorkspace(h.deps.isolation.workspaces, loneWorkspace, 1000);
    // Another installation's sandbox on the same engine, named the way Pomodex names them.
    await engine.createNetwork({ Name: `pomodex-net-${foreignProject}`, Labels: foreignLabels });
    const foreign = await engine.createContainer(`pomodex-${foreignProject}`, {
      Image: await testImage(engine),
      Entrypoint: ["sleep", "600"],
      Labels: foreignLabels,
    });
    await engine.startContainer(foreign.id);

    const report = await reconcile(h.deps);
    assert.deepEqual(report.orphansRemoved.sort(), [orphaned.id, loneWorkspace].sort());
    assert.deepEqual(report.markedError, []);
    assert.equal(await engine.inspectContainer(`pomodex-${orphaned.id}`), null);
    assert.equal(await engine.inspectNetwork(`pomodex-net-${orphaned.id}`), null);
    assert.equal(await workspaceOnDisk(h.dataDir, orphaned.id), false);
    assert.equal(await workspaceOnDisk(h.dataDir, loneWorkspace), false);
    for (const id of [orphaned.id, loneWorkspace]) {
      assert.deepEqual(
        (await auditEvents(h, id, "project.orphan_removed")).map((e) => e.details),
        [
          { by: "reconciler" },
        ],
      );
    }

    const other = await engine.inspectContainer(foreign.id);
    assert.equal(other?.State.Running, true, "another installation's container runs on");
    assert.ok(
      await engine.inspectNetwork(`pomodex-net-${foreignProject}`),
      "and keeps its network",
    );

    // Our own project with a row is untouched, as the user sees it and on the engine.
    const view = await call(h, user, "GET", `/projects/${kept.id}`);
    assert.equal(view.body.status, "running");
    assert.equal((await engine.inspectContainer(`pomodex-${kept.id}`))?.State.Running, true);
    const ssh = await sshRun(view.body, kept.ssh_private_key, "true");
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal((await call(h, user, "GET", `/projects/${orphaned.id}`)).status, 404);

    assert.equal((await call(h, user, "DELETE", `/projects/${kept.id}`)).status, 200);
    assert.equal(await engine.inspectContainer(`pomodex-${kept.id}`), null);
  },
);

engineTest(
  "two concurrent stops: one wins, one 409, one snapshot; two concurrent starts: likewise",
  async () => {
    const sharedRegistry = testRegistry();
    await using h = await createTestApp({ REGISTRY: sharedRegistry });
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user, "racing");
    const key = project.ssh_private_key;
    const repository = `pomodex-${project.id}`;
    const written = await sshRun(project, key, "echo raced > ~/race.txt");
    assert.equal(written.code, 0, written.stderr);

    const stops = await Promise.all([
      call(h, user, "POST", `/projects/${project.id}/stop`),
      call(h, user, "POST", `/projects/${project.id}/stop`),
    ]);
    assert.deepEqual(stops.map((r) => r.status).sort(), [200, 409], JSON.stringify(stops));
    const stopWinner = stops.find((r) => r.status === 200)!;
    const stopLoser = stops.find((r) => r.status === 409)!;
    assert.equal(stopWinner.body.status, "stopped");
    assert.equal(stopLoser.body.code, "invalid_state");
    assert.match(
      stopLoser.body.detail,
      /^The project is snapshotting;/,
      "the two really overlapped",
    );

    const stopped = await call(h, user, "GET", `/projects/${project.id}`);
    assert.equal(stopped.body.status, "stopped");
    assert.equal(stopped.body.status_reason, null);
    assert.equal(await engine.inspectContainer(`pomodex-${project.id}`), null);
    const status = (await call(h, user, "GET", `/projects/${project.id}/backup-status`)).body;
    const tag = status.snapshot_image.split(":").at(-1);
    assert.equal(status.snapshot_image, `${sharedRegistry}/${repository}:${tag}`);
    assert.deepEqual(
      (await registryTags(sharedRegistry, repository)).sort(),
      ["latest", tag].sort(),
    );
    const local = (await engine.listImages(`${sharedRegistry}/${repository}`))
      .flatMap((i) => i.RepoTags ?? []);
    assert.deepEqual(
      local.filter((ref) => ref.startsWith(`${sharedRegistry}/${repository}:s`)),
      [status.snapshot_image],
      "one snapshot image in the engine",
    );
    assert.equal((await auditEvents(h, project.id, "project.stopped")).length, 1);
    assert.equal((await auditEvents(h, project.id, "project.snapshot_failed")).length, 0);

    const starts = await Promise.all([
      call(h, user, "POST", `/projects/${project.id}/start`),
      call(h, user, "POST", `/projects/${project.id}/start`),
    ]);
    assert.deepEqual(starts.map((r) => r.status).sort(), [200, 409], JSON.stringify(starts));
    const startWinner = starts.find((r) => r.status === 200)!;
    const startLoser = starts.find((r) => r.status === 409)!;
    assert.equal(startWinner.body.status, "running");
    assert.equal(startLoser.body.code, "invalid_state");
    assert.match(
      startLoser.body.detail,
      /^The project is restoring;/,
      "the two really overlapped",
    );

    const running = await call(h, user, "GET", `/projects/${project.id}`);
    assert.equal(running.body.status, "running");
    assert.equal(running.body.ssh_port, startWinner.body.ssh_port);
    const ours = await engine.listContainers({
      all: true,
      labels: { [installationLabel]: h.deps.installationId },
    });
    assert.equal(ours.length, 1, "exactly one container for the project");
    const info = await engine.inspectContainer(`pomodex-${project.id}`);
    assert.equal(info?.State.Running, true);
    assert.equal(info.Config.Image, status.snapshot_image, "started from the snapshot");
    const ssh = await sshRun(running.body, key, "cat ~/race.txt");
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), "raced");
    assert.equal((await auditEvents(h, project.id, "project.started")).length, 1);

    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
    assert.equal(await engine.inspectContainer(`pomodex-${project.id}`), null);
    assert.equal(await workspaceOnDisk(h.dataDir, project.id), false);
    assert.equal(await engine.inspectNetwork(`pomodex-net-${project.id}`), null);
    assert.deepEqual(await registryTags(sharedRegistry, repository), []);
    assert.deepEqual(await engine.listImages(`${sharedRegistry}/${repository}`), []);
  },
);
