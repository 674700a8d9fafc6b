// What a crash half-way through a stop or a delete leaves of a sandbox's isolation (found by
// the reliability suite): the reconciler unmounts a stopped project's workspace even when
// its container is already gone, and a delete closes the direct route even when the network
// is already gone.
import assert from "node:assert/strict";
import { directEgressSubnets } from "@/infra/network/firewall.ts";
import { slotNetwork } from "@/infra/network/subnets.ts";
import { reconcile } from "@/projects/reconciler.ts";
import { createTestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";

const mounted = async (path: string) =>
  (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").some((l) =>
    l.split(" ")[4] === path
  );

engineTest(
  "a stop cut after the container went: the reconciler unmounts the workspace",
  async () => {
    await using h = await createTestApp();
    using engine = await requireEngine();
    const user = await signUp(h);
    const p = await createRunning(h, user);
    const mountpoint = `${h.deps.isolation.workspaces.dir}/mnt/${p.id}`;
    assert.ok(await mounted(mountpoint));
    // As snapshotAndStop leaves it when the server dies between the container's removal and
    // the unmount: snapshot recorded, container gone, workspace still mounted, worker dead.
    await engine.removeContainer(`pomodex-${p.id}`, { force: true });
    await h.sql`UPDATE projects SET status = 'snapshotting', status_changed_at = now(),
    last_snapshot_at = now() + interval '1 second', worker_id = NULL WHERE id = ${p.id}`;
    const report = await reconcile(h.deps);
    assert.deepEqual(report.resumed, [p.id]);
    assert.equal((await call(h, user, "GET", `/projects/${p.id}`)).body.status, "stopped");
    assert.equal(await mounted(mountpoint), false, "no mount (and loop device) held");
  },
);

engineTest("a delete whose network is already gone still closes the direct route", async () => {
  await using h = await createTestApp();
  using engine = await requireEngine();
  const user = await signUp(h);
  const p = await createRunning(h, user); // open by default: its subnet routes out
  const [{ sandboxSlot }] = await h.sql`SELECT sandbox_slot FROM projects WHERE id = ${p.id}`;
  const subnet = slotNetwork(h.deps.isolation.pool, sandboxSlot).subnet;
  assert.ok((await directEgressSubnets()).includes(subnet));
  // A crash after the network went, before the firewall was told.
  await engine.removeContainer(`pomodex-${p.id}`, { force: true });
  await engine.removeNetwork(`pomodex-net-${p.id}`);
  assert.equal((await call(h, user, "DELETE", `/projects/${p.id}`)).status, 200);
  assert.ok(!(await directEgressSubnets()).includes(subnet), "the slot's route is closed");
});
