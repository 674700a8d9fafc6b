// SANDBOX_ROOTFS_GB (issue 13): what a sandbox writes outside its workspace is bounded too.
// Neither engine here can bound a container's layer (overlay on ext4), so the disk job holds
// the bound: it measures, and stops (with a snapshot) a sandbox found over it, saying why.
import assert from "node:assert/strict";
import { runDiskCheck } from "@/jobs/disk.ts";
import { createTestApp } from "./helpers/app.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";

engineTest(
  "a sandbox over SANDBOX_ROOTFS_GB outside its workspace is stopped, its workspace kept",
  async () => {
    await using h = await createTestApp({ SANDBOX_ROOTFS_GB: "1" });
    const user = await signUp(h);
    const small = await createRunning(h, user, "small");
    const big = await createRunning(h, user, "big");
    await sshRun(small, small.ssh_private_key, "echo kept > ~/notes.txt");
    const write = await sshRun(
      big,
      big.ssh_private_key,
      "echo kept > ~/notes.txt && sudo dd if=/dev/zero of=/opt/big bs=1M count=1100 status=none && echo written",
    );
    assert.equal(write.stdout.trim(), "written", write.stderr);

    const report = await runDiskCheck(h.deps);
    assert.deepEqual(report.stoppedOverRootfs, [big.id]);
    const seen = await call(h, user, "GET", `/projects/${big.id}`);
    assert.equal(seen.body.status, "stopped");
    assert.match(seen.body.status_reason, /over the 1 GB bound \(SANDBOX_ROOTFS_GB\)/);
    assert.ok(seen.body.disk.rootfs_used_bytes > 1024 ** 3, JSON.stringify(seen.body.disk));
    const other = await call(h, user, "GET", `/projects/${small.id}`);
    assert.equal(other.body.status, "running", "a sandbox within the bound runs on");
    assert.ok(other.body.disk.rootfs_used_bytes < 1024 ** 3);

    // Started again, it has its workspace, and the owner can free the space.
    const started = await call(h, user, "POST", `/projects/${big.id}/start`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const after = await sshRun(
      started.body,
      big.ssh_private_key,
      "cat ~/notes.txt && sudo rm /opt/big && echo freed",
    );
    assert.deepEqual(after.stdout.trim().split("\n"), ["kept", "freed"]);
  },
);
