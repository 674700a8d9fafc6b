// The snapshot paths that only go wrong on a bad day: a stop with no container, a push that
// fails half-way (the committed image must go, the previous snapshot stay current), pruning
// to SNAPSHOTS_KEPT in the engine and the registry and a pruning that fails, a start that
// fails after it made a container, and a snapshot image the engine no longer has.
import assert from "node:assert/strict";
import { createLogger } from "@/core/log.ts";
import { stopProject } from "@/projects/lifecycle/stop.ts";
import { getOwnedProject } from "@/projects/queries.ts";
import { RegistryClient, RegistryError } from "@/infra/registry/client.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { startEngineFaultProxy } from "./helpers/engine-faults.ts";
import { call, createRunning, engineTest, registryTags } from "./helpers/projects.ts";
import { testRegistry } from "./helpers/env.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";
import type { DockerClient } from "@/infra/docker/mod.ts";

/** The snapshot tags (`s…`) of a repository the engine holds, sorted; and whether it has latest. */
async function engineTags(engine: DockerClient, repository: string) {
  const refs = (await engine.listImages(repository)).flatMap((i) => i.RepoTags ?? [])
    .filter((r) => r.startsWith(`${repository}:`)).map((r) => r.slice(repository.length + 1));
  return {
    snapshots: refs.filter((t) => t.startsWith("s")).sort(),
    latest: refs.includes("latest"),
  };
}

async function snapshotImageOf(h: TestApp, id: string) {
  const [row] = await h.sql<{ snapshotImage: string | null; lastSnapshotAt: Date | null }[]>`
    SELECT snapshot_image, last_snapshot_at FROM projects WHERE id = ${id}`;
  return row;
}

async function isMounted(h: TestApp, id: string) {
  const mounts = await Deno.readTextFile("/proc/self/mounts");
  return mounts.includes(` ${h.dataDir}/workspaces/mnt/${id} `);
}

const tagOf = (image: string) => image.slice(image.lastIndexOf(":") + 1);

engineTest(
  "snapshots: a stop of a project with no container fails clearly and changes nothing",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    // Running in the database, but no container recorded (an outside hand, a bug).
    const [row] = await h.sql<{ id: string }[]>`
    INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix)
    VALUES (${user.userId}, 'no container', 'running', 'ssh-ed25519 AAAAx', 'projects/n/')
    RETURNING id`;
    const stop = await call(h, user, "POST", `/projects/${row.id}/stop`);
    assert.equal(stop.status, 502, JSON.stringify(stop.body));
    assert.deepEqual(stop.body, {
      code: "snapshot_failed",
      detail: "The snapshot failed, nothing was lost: the project has no container",
    });
    const now = (await call(h, user, "GET", `/projects/${row.id}`)).body;
    assert.equal(now.status, "error");
    assert.equal(now.status_reason, "snapshot failed: the project has no container");
    assert.equal(now.last_snapshot_at, null);
    const [audit] = await h.sql<{ details: { reason: string } }[]>`
    SELECT details FROM audit_log WHERE project_id = ${row.id}
      AND event = 'project.snapshot_failed'`;
    assert.equal(audit.details.reason, "snapshot failed: the project has no container");
    assert.deepEqual(await engine.listImages(`localhost/pomodex-snapshot-${row.id}`), []);
  },
);

engineTest(
  "snapshots: a push that fails drops the image it committed; the previous snapshot stays current",
  async () => {
    const sharedRegistry = testRegistry();
    let registryDown = false;
    const commits: string[] = [];
    await using proxy = startEngineFaultProxy((req, path) => {
      const url = new URL(req.url);
      if (req.method === "POST" && path === "/commit") commits.push(url.searchParams.get("tag")!);
      if (registryDown && req.method === "POST" && /^\/images\/.+\/push$/.test(path)) {
        // What the engine streams when the registry does not answer: a 200, then the error.
        return new Response(
          [
            { status: "The push refers to repository" },
            {
              errorDetail: { message: "dial tcp 127.0.0.1:5000: connect: connection refused" },
              error: "dial tcp 127.0.0.1:5000: connect: connection refused",
            },
          ].map((l) => JSON.stringify(l)).join("\n") + "\n",
          { status: 200, headers: { "content-type": "application/json" } },
        );
      }
      return null;
    });
    await using h = await createTestApp({
      DOCKER_HOST: proxy.dockerHost,
      REGISTRY: sharedRegistry,
    });
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    const repository = `${sharedRegistry}/pomodex-${project.id}`;
    assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);
    const first = await snapshotImageOf(h, project.id);
    const firstId = (await engine.inspectImage(first.snapshotImage!))!.Id;
    const back = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    await sshRun(back.body, project.ssh_private_key, "echo since > ~/since.txt");

    registryDown = true;
    const failed = await call(h, user, "POST", `/projects/${project.id}/stop`);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.equal(failed.body.code, "snapshot_failed");
    assert.match(failed.body.detail, /connection refused/);
    const committed = commits.at(-1)!;
    assert.notEqual(committed, tagOf(first.snapshotImage!), "a new image was committed");
    // The new image never became current: gone from the engine, not in the registry.
    assert.equal(await engine.inspectImage(`${repository}:${committed}`), null);
    assert.deepEqual(await engineTags(engine, repository), {
      snapshots: [tagOf(first.snapshotImage!)],
      latest: true,
    });
    assert.equal((await engine.inspectImage(`${repository}:latest`))!.Id, firstId);
    assert.deepEqual(
      (await registryTags(sharedRegistry, `pomodex-${project.id}`)).sort(),
      ["latest", tagOf(first.snapshotImage!)].sort(),
    );
    assert.deepEqual(await snapshotImageOf(h, project.id), first, "the previous one is current");
    const now = (await call(h, user, "GET", `/projects/${project.id}`)).body;
    assert.equal(now.status, "error");
    assert.match(now.status_reason, /^snapshot failed: .*connection refused/);
    assert.equal(
      (await engine.inspectContainer(`pomodex-${project.id}`))?.State.Running,
      true,
      "the container keeps running: nothing written since is lost",
    );

    // The registry back: the same container resumes, and its next snapshot is current.
    registryDown = false;
    const resumed = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    const check = await sshRun(resumed.body, project.ssh_private_key, "cat ~/since.txt");
    assert.equal(check.stdout.trim(), "since");
    assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);
    const third = await snapshotImageOf(h, project.id);
    assert.equal(tagOf(third.snapshotImage!), commits.at(-1));
    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
    assert.deepEqual(await engine.listImages(repository), []);
    assert.deepEqual(await registryTags(sharedRegistry, `pomodex-${project.id}`), []);
  },
);

engineTest(
  "snapshots: 3 kept in the engine and the registry; a failed pruning is logged, the stop stands, the next one catches up; a snapshot the engine lost is pulled back",
  async () => {
    const sharedRegistry = testRegistry();
    await using h = await createTestApp({ REGISTRY: sharedRegistry });
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    const repository = `${sharedRegistry}/pomodex-${project.id}`;
    const path = `pomodex-${project.id}`;
    const made: string[] = [];
    const startAgain = async () => {
      const started = await call(h, user, "POST", `/projects/${project.id}/start`);
      assert.equal(started.status, 200, JSON.stringify(started.body));
    };
    const stopByApi = async () => {
      const stopped = await call(h, user, "POST", `/projects/${project.id}/stop`);
      assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
      made.push(tagOf((await snapshotImageOf(h, project.id)).snapshotImage!));
    };

    for (let i = 1; i <= 3; i++) {
      if (i > 1) await startAgain();
      await stopByApi();
      assert.deepEqual(await engineTags(engine, repository), { snapshots: made, latest: true });
      assert.deepEqual(
        (await registryTags(sharedRegistry, path)).sort(),
        [...made, "latest"].sort(),
      );
    }

    // The 4th stop, against a registry that refuses deletes (as one with deletion off
    // does): the stop stands, the engine is pruned, the registry keeps all four, and the
    // failure is in the log.
    await startAgain();
    const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
    const log = createLogger("debug", (l) => lines.push(JSON.parse(l)));
    const registry = h.deps.snapshots.registry!;
    class RefusingDeletes extends RegistryClient {
      override deleteTag(): Promise<boolean> {
        return Promise.reject(new RegistryError(405, "registry: deletes are disabled (405)"));
      }
    }
    const refusing = new RefusingDeletes(registry.address);
    const stopped = await stopProject(
      {
        ...h.deps,
        log,
        snapshots: { ...h.deps.snapshots, registry: { ...registry, client: refusing } },
      },
      { userId: user.userId, role: "user", via: "session", ip: "127.0.0.1" },
      await getOwnedProject(h.sql, user.userId, project.id),
    );
    assert.equal(stopped.status, "stopped");
    made.push(tagOf(stopped.snapshotImage!));
    assert.deepEqual(await engineTags(engine, repository), {
      snapshots: made.slice(-3),
      latest: true,
    });
    assert.deepEqual(
      (await registryTags(sharedRegistry, path)).sort(),
      [...made, "latest"].sort(),
    );
    const warned = lines.find((l) => l.msg === "pruning old snapshots failed");
    assert.ok(warned, JSON.stringify(lines));
    assert.equal(warned.level, "warn");
    assert.equal(warned.project_id, project.id);
    assert.match(String(warned.error), /deletes are disabled/);
    assert.equal((await call(h, user, "GET", `/projects/${project.id}`)).body.status, "stopped");

    // The 5th, with a registry that deletes again: both back to the newest 3.
    await startAgain();
    await stopByApi();
    assert.deepEqual(await engineTags(engine, repository), {
      snapshots: made.slice(-3),
      latest: true,
    });
    assert.deepEqual(
      (await registryTags(sharedRegistry, path)).sort(),
      [...made.slice(-3), "latest"].sort(),
    );

    // The engine lost every image of the project (pruned by hand, another host): the
    // current snapshot comes back from the registry.
    for (const image of await engine.listImages(repository)) {
      for (const ref of image.RepoTags ?? []) await engine.removeImage(ref, { force: true });
    }
    const current = (await snapshotImageOf(h, project.id)).snapshotImage!;
    assert.equal(await engine.inspectImage(current), null);
    await startAgain();
    assert.ok(await engine.inspectImage(current), "pulled back");
    const container = await engine.inspectContainer(`pomodex-${project.id}`);
    assert.equal(container?.Config.Image, current, "and started from");

    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
    assert.deepEqual(await engine.listImages(repository), []);
    assert.deepEqual(await registryTags(sharedRegistry, path), []);
  },
);

engineTest(
  "snapshots: a start that fails after making its container removes it and keeps the workspace",
  async () => {
    let failStarts = false;
    await using proxy = startEngineFaultProxy((req, path) =>
      failStarts && req.method === "POST" && /^\/containers\/[^/]+\/start$/.test(path)
        ? Response.json({ message: "crun: pivot_root: invalid argument (injected)" }, {
          status: 500,
        })
        : null
    );
    await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost });
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    await sshRun(project, project.ssh_private_key, "echo kept > ~/kept.txt");
    assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);

    failStarts = true;
    const failed = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.equal(failed.body.code, "restore_failed");
    assert.match(failed.body.detail, /pivot_root: invalid argument \(injected\)/);
    const now = (await call(h, user, "GET", `/projects/${project.id}`)).body;
    assert.equal(now.status, "error");
    assert.match(now.status_reason, /^start failed: .*pivot_root/);
    // What the start made is gone; the workspace stays, unmounted.
    assert.equal(await engine.inspectContainer(`pomodex-${project.id}`), null, "no container");
    assert.ok(await workspaceOnDisk(h.dataDir, project.id), "the workspace is kept");
    assert.equal(await isMounted(h, project.id), false, "and not mounted");

    failStarts = false;
    const started = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const check = await sshRun(started.body, project.ssh_private_key, "cat ~/kept.txt");
    assert.equal(check.stdout.trim(), "kept");
    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
  },
);

engineTest(
  "snapshots: without a registry, a snapshot image the engine lost is a clear error, and nothing is made",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    const project = await createRunning(h, user);
    assert.equal((await call(h, user, "POST", `/projects/${project.id}/stop`)).status, 200);
    const image = (await snapshotImageOf(h, project.id)).snapshotImage!;
    const repository = `localhost/pomodex-snapshot-${project.id}`;
    assert.ok(image.startsWith(`${repository}:s`));
    for (const i of await engine.listImages(repository)) {
      for (const ref of i.RepoTags ?? []) await engine.removeImage(ref, { force: true });
    }

    const failed = await call(h, user, "POST", `/projects/${project.id}/start`);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.deepEqual(failed.body, {
      code: "restore_failed",
      detail: `Could not start the project: the image ${image} is not in the engine`,
    });
    const now = (await call(h, user, "GET", `/projects/${project.id}`)).body;
    assert.equal(now.status, "error");
    assert.equal(now.status_reason, `start failed: the image ${image} is not in the engine`);
    assert.equal(await engine.inspectContainer(`pomodex-${project.id}`), null);
    assert.ok(await workspaceOnDisk(h.dataDir, project.id), "the workspace is kept");
    assert.equal(await isMounted(h, project.id), false);
    assert.equal((await call(h, user, "DELETE", `/projects/${project.id}`)).status, 200);
  },
);
