// The reconciler's repair branches that only a misbehaving engine or the clock reaches: a
// container that will not start again, one whose new port cannot be read, the time-based
// "stuck" cutoff with a live worker, and a repair that fails (logged, retried later).
import assert from "node:assert/strict";
import { createLogger, type Logger } from "@/core/log.ts";
import { reconcile, stuckAfterSeconds } from "@/projects/reconciler.ts";
import { containerNameOf } from "@/projects/rows.ts";
import type { Status } from "@/shared/status.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { startEngineFaultProxy } from "./helpers/engine-faults.ts";
import { createRunning, engineTest } from "./helpers/projects.ts";
import { signUp, type TestUser } from "./helpers/users.ts";

interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: createLogger("debug", (l) => lines.push(JSON.parse(l))), lines };
}

const engineError = (message: string) => Response.json({ message }, { status: 500 });

async function projectRow(h: TestApp, id: string) {
  const [row] = await h.sql<
    {
      status: string;
      statusReason: string | null;
      sshHostPort: number | null;
      containerId: string | null;
      workerId: string | null;
      statusChangedAt: Date;
    }[]
  >`SELECT status, status_reason, ssh_host_port, container_id, worker_id, status_changed_at
    FROM projects WHERE id = ${id}`;
  return row ?? null;
}

async function reconcilerAudit(h: TestApp, id: string) {
  return (await h.sql<{ event: string; details: Record<string, unknown> }[]>`
    SELECT event, details FROM audit_log WHERE project_id = ${id} ORDER BY id`)
    .filter((a) => a.details.by === "reconciler")
    .map((a) => ({ event: a.event, reason: a.details.reason }));
}

/** This instance is alive: a row it works on is stuck only by its deadline. */
async function beat(h: TestApp) {
  await h.sql`UPDATE instances SET heartbeat_at = now() WHERE id = ${h.deps.instanceId}`;
}

/** A project row of the given state, with no engine resources, worked on by this instance. */
async function insertRow(h: TestApp, user: TestUser, status: Status, ageSeconds: number) {
  const [row] = await h.sql<{ id: string }[]>`
    INSERT INTO projects (user_id, name, status, status_changed_at, ssh_public_key, gcs_prefix,
      worker_id)
    VALUES (${user.userId}, ${`${status}-${ageSeconds}`}, ${status},
      now() - make_interval(secs => ${ageSeconds}), 'ssh-ed25519 AAAAx', 'projects/x/',
      ${h.deps.instanceId})
    RETURNING id`;
  return row.id;
}

engineTest(
  "reconciler: restarting a container stopped behind our back, when it works and when it does not",
  async () => {
    const faults = {
      failStartOf: null as string | null,
      failInspectAfterStartOf: null as string | null,
      startSeen: false,
    };
    await using proxy = startEngineFaultProxy((req, path) => {
      const start = /^\/containers\/([^/]+)\/start$/.exec(path)?.[1];
      if (req.method === "POST" && start && start === faults.failStartOf) {
        return engineError("crun: cannot start: the OCI runtime failed (injected)");
      }
      if (req.method === "POST" && start && start === faults.failInspectAfterStartOf) {
        faults.startSeen = true;
      }
      const inspect = /^\/containers\/([^/]+)\/json$/.exec(path)?.[1];
      if (
        req.method === "GET" && inspect && faults.startSeen &&
        inspect === faults.failInspectAfterStartOf
      ) {
        faults.startSeen = false;
        faults.failInspectAfterStartOf = null;
        return engineError("inspect timed out (injected)");
      }
      return null;
    });
    await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost });
    using engine = await requireEngine();
    const user = await signUp(h);
    const a = await createRunning(h, user, "restarted");
    const b = await createRunning(h, user, "vanished");
    const containerA = (await projectRow(h, a.id))!.containerId!;

    // 1. The port is re-read after the restart (Docker gives a new one): the API must show
    // the port SSH answers on now, not the one recorded before.
    await h.sql`UPDATE projects SET ssh_host_port = 1 WHERE id = ${a.id}`;
    await engine.stopContainer(containerA, { timeoutSeconds: 2 });
    const { log, lines } = capturingLogger();
    let report = await reconcile({ ...h.deps, log });
    assert.deepEqual(report.resumed, [a.id]);
    assert.deepEqual(report.markedError, []);
    const info = await engine.inspectContainer(containerA);
    assert.equal(info?.State.Running, true, "restarted");
    const realPort = engine.hostPortOf(info, "22/tcp");
    assert.equal((await projectRow(h, a.id))!.sshHostPort, realPort, "the port SSH answers on");
    assert.equal((await projectRow(h, a.id))!.status, "running");

    // 2. Restarted, but its port cannot be read: the old port stays, a warning says why, and
    // the rest of the pass goes on (B's container vanished: B goes to error in the same pass).
    await h.sql`UPDATE projects SET ssh_host_port = 2 WHERE id = ${a.id}`;
    await engine.stopContainer(containerA, { timeoutSeconds: 2 });
    const containerB = (await projectRow(h, b.id))!.containerId!;
    await engine.removeContainer(containerB, { force: true });
    faults.failInspectAfterStartOf = containerA;
    report = await reconcile({ ...h.deps, log });
    assert.equal(faults.failInspectAfterStartOf, null, "the injected inspect failure happened");
    assert.deepEqual(report.resumed, [a.id]);
    assert.deepEqual(report.markedError, [b.id]);
    assert.equal((await engine.inspectContainer(containerA))?.State.Running, true);
    assert.equal((await projectRow(h, a.id))!.sshHostPort, 2, "the old port kept");
    const warned = lines.find((l) =>
      l.msg === "reconciler: the SSH port of a restarted container is unknown"
    );
    assert.ok(warned, JSON.stringify(lines));
    assert.equal(warned.level, "warn");
    assert.equal(warned.project_id, a.id);
    assert.match(String(warned.error), /inspect timed out \(injected\)/);
    assert.deepEqual(await projectRow(h, b.id).then((r) => [r!.status, r!.statusReason]), [
      "error",
      "container disappeared",
    ]);

    // 3. The restart itself fails: the project goes to error, saying what state its
    // container is in, and the container is left for a start to bring back.
    await engine.stopContainer(containerA, { timeoutSeconds: 2 });
    faults.failStartOf = containerA;
    report = await reconcile({ ...h.deps, log });
    assert.deepEqual(report.resumed, []);
    assert.deepEqual(report.markedError, [a.id]);
    const failed = (await projectRow(h, a.id))!;
    assert.equal(failed.status, "error");
    assert.equal(failed.statusReason, "container stopped (exited)");
    assert.deepEqual((await reconcilerAudit(h, a.id)).at(-1), {
      event: "project.error",
      reason: "container stopped (exited)",
    });
    assert.equal((await engine.inspectContainer(containerA))?.State.Running, false);
    // A later pass leaves a project in error alone: nothing to restart, nothing to mark.
    report = await reconcile({ ...h.deps, log });
    assert.deepEqual([report.resumed, report.markedError], [[], []]);

    // The user's start brings it back, the engine willing again.
    faults.failStartOf = null;
    const back = await h.request(`/projects/${a.id}/start`, {
      method: "POST",
      headers: user.auth,
    });
    assert.equal(back.status, 200, await back.text());
  },
);

engineTest(
  "reconciler: past its state's deadline a project is mended even while its worker lives; before it, left alone",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    const cases: { status: Status; late: string; early: string }[] = [];
    for (const [status, seconds] of Object.entries(stuckAfterSeconds)) {
      cases.push({
        status: status as Status,
        late: await insertRow(h, user, status as Status, seconds! + 120),
        early: await insertRow(h, user, status as Status, Math.floor(seconds! / 2)),
      });
    }
    assert.deepEqual(cases.map((c) => c.status).sort(), [
      "creating",
      "deleting",
      "restoring",
      "snapshotting",
    ]);
    const earlyBefore = new Map(
      await Promise.all(cases.map(async (c) => [c.early, await projectRow(h, c.early)] as const)),
    );
    await beat(h);
    const report = await reconcile(h.deps);

    const expected: Record<string, [string, string | null] | null> = {
      deleting: null, // finished: the row is gone
      creating: ["error", "creation was interrupted"],
      snapshotting: ["error", "a snapshot was interrupted"],
      restoring: ["error", "a start was interrupted"],
    };
    for (const c of cases) {
      const late = await projectRow(h, c.late);
      assert.deepEqual(
        late && [late.status, late.statusReason],
        expected[c.status],
        `${c.status} past its deadline`,
      );
      // Within its deadline, with its worker alive: untouched, not even claimed.
      assert.deepEqual(await projectRow(h, c.early), earlyBefore.get(c.early), c.status);
    }
    assert.deepEqual(report.deletesFinished, [cases.find((c) => c.status === "deleting")!.late]);
    assert.deepEqual(
      report.markedError.sort(),
      cases.filter((c) => c.status !== "deleting").map((c) => c.late).sort(),
    );
    for (const c of cases) {
      assert.equal(await engine.inspectContainer(containerNameOf(c.late)), null);
    }
  },
);

engineTest(
  "reconciler: a repair that fails is logged, claimed with a fresh deadline, and retried once it passes",
  async () => {
    let failRemovalOf: string | null = null;
    let removals = 0;
    await using proxy = startEngineFaultProxy((req, path) => {
      if (req.method === "DELETE" && failRemovalOf && path === `/containers/${failRemovalOf}`) {
        removals++;
        return engineError("removing container: device or resource busy (injected)");
      }
      return null;
    });
    await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost });
    const user = await signUp(h);
    const id = await insertRow(h, user, "deleting", stuckAfterSeconds.deleting! + 120);
    const other = await insertRow(h, user, "deleting", stuckAfterSeconds.deleting! + 120);
    failRemovalOf = containerNameOf(id);
    const { log, lines } = capturingLogger();
    await beat(h);
    const before = (await projectRow(h, id))!;

    // Pass 1: the repair fails. The pass itself does not: the other project is finished.
    let report = await reconcile({ ...h.deps, log });
    assert.deepEqual(report.deletesFinished, [other]);
    assert.equal(removals, 1);
    const warned = lines.find((l) => l.msg === "reconciler could not mend a project");
    assert.ok(warned, JSON.stringify(lines));
    assert.equal(warned.level, "warn");
    assert.equal(warned.project_id, id);
    assert.match(String(warned.error), /device or resource busy \(injected\)/);
    const claimed = (await projectRow(h, id))!;
    assert.equal(claimed.status, "deleting");
    assert.equal(claimed.workerId, h.deps.instanceId);
    assert.ok(claimed.statusChangedAt > before.statusChangedAt, "a fresh deadline");

    // Pass 2, at once: within the fresh deadline and with its worker alive, not retried.
    await beat(h);
    report = await reconcile({ ...h.deps, log });
    assert.deepEqual(report.deletesFinished, []);
    assert.equal(removals, 1, "no second attempt before the deadline");

    // Past the deadline (time is moved, not waited for), with the engine willing: finished.
    failRemovalOf = null;
    await h.sql`UPDATE projects SET status_changed_at = now() - interval '1 hour'
    WHERE id = ${id}`;
    await beat(h);
    report = await reconcile({ ...h.deps, log });
    assert.deepEqual(report.deletesFinished, [id]);
    assert.equal(await projectRow(h, id), null, "the row is gone");
    assert.deepEqual((await reconcilerAudit(h, id)).map((a) => a.event), [
      "project.delete_finished",
    ]);
  },
);
