// A delete the engine cannot finish (issue 23): answered like the other engine failures (502
// with the reason), the project stays deletable, and a later DELETE (or the reconciler)
// finishes the job.
import assert from "node:assert/strict";
import { reconcile } from "@/projects/reconciler.ts";
import { createTestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { startEngineFaultProxy } from "./helpers/engine-faults.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

engineTest(
  "DELETE with the engine failing: 502 with the reason, then deletable again",
  async () => {
    let engineDown = false;
    await using proxy = startEngineFaultProxy((req, path) =>
      engineDown && req.method === "DELETE" && path.startsWith("/containers/")
        ? Response.json({ message: "the engine is down for maintenance" }, { status: 500 })
        : null
    );
    await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost });
    using engine = await requireEngine();
    const user = await signUp(h);
    const p = await createRunning(h, user);
    engineDown = true;
    const failed = await call(h, user, "DELETE", `/projects/${p.id}`);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.equal(failed.body.code, "delete_failed");
    assert.match(failed.body.detail, /the engine is down for maintenance/);
    assert.match(failed.body.detail, /DELETE it again to retry/, "CRON=false: no reconciler");
    const [row] = await h.sql`SELECT status, worker_id, status_reason FROM projects`;
    assert.equal(row.status, "deleting");
    assert.equal(row.workerId, null, "nobody is working on it: free to retry");
    assert.match(row.statusReason, /^delete interrupted: /);

    // Still failing: still a 502, not a 404 that would hide it.
    assert.equal((await call(h, user, "DELETE", `/projects/${p.id}`)).status, 502);

    engineDown = false;
    const retried = await call(h, user, "DELETE", `/projects/${p.id}`);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal(await engine.inspectContainer(`pomodex-${p.id}`), null);
    assert.equal(await engine.inspectNetwork(`pomodex-net-${p.id}`), null);
    assert.equal(await workspaceOnDisk(h.dataDir, p.id), false);
    assert.equal((await call(h, user, "GET", `/projects/${p.id}`)).status, 404);
  },
);

engineTest("a failed delete is finished by the reconciler", async () => {
  let engineDown = true;
  await using proxy = startEngineFaultProxy((req, path) =>
    engineDown && req.method === "DELETE" && path.startsWith("/containers/")
      ? Response.json({ message: "busy" }, { status: 500 })
      : null
  );
  await using h = await createTestApp({ DOCKER_HOST: proxy.dockerHost, CRON: "true" });
  const user = await signUp(h);
  engineDown = false;
  const p = await createRunning(h, user);
  engineDown = true;
  const failed = await call(h, user, "DELETE", `/projects/${p.id}`);
  assert.equal(failed.status, 502);
  assert.match(failed.body.detail, /the reconciler retries it on its next pass/);
  engineDown = false;
  const report = await reconcile(h.deps);
  assert.deepEqual(report.deletesFinished, [p.id]);
  const [{ count }] = await h.sql`SELECT count(*)::int AS count FROM projects`;
  assert.equal(count, 0);
});
