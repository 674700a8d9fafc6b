// The inactivity checker's SSH-session probe (issue 13, finding 8): it reads the sandbox's TCP
// table from the host, so a tenant who replaces `cat` (or anything else) can neither flood
// the API's memory nor hide a session, and nothing is run inside the sandbox.
import assert from "node:assert/strict";
import { readTcpTables } from "@/infra/host/proc.ts";
import { countSshSessions } from "@/projects/activity.ts";
import { createTestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { createRunning, engineTest } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";
import { sshArgs } from "./helpers/ssh.ts";

engineTest("a sandbox whose cat floods its output still shows its real SSH sessions", async () => {
  await using h = await createTestApp();
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "pomodex-probe-" });
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  using engine = await requireEngine();
  const user = await signUp(h);
  const p = await createRunning(h, user);
  await Deno.writeTextFile(`${dir}/key`, p.ssh_private_key, { mode: 0o600 });
  const ssh = (command: string[]) =>
    new Deno.Command("ssh", {
      args: sshArgs(p, `${dir}/key`, ...command),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  // The tenant's cat and sh now answer with 1.5 GB of zeros (as in the finding).
  const flood = await ssh([
    "printf '#!/bin/bash\\nhead -c 1500000000 /dev/zero\\n' | sudo tee /usr/local/bin/flood >/dev/null" +
    " && sudo chmod +x /usr/local/bin/flood && sudo cp /usr/local/bin/flood /bin/cat && echo done",
  ]).output();
  assert.equal(new TextDecoder().decode(flood.stdout).trim(), "done");

  const containerId = (await engine.inspectContainer(`pomodex-${p.id}`))!.Id;
  const execsBefore = (await engine.inspectContainer(containerId) as unknown as {
    ExecIDs: string[] | null;
  }).ExecIDs ?? [];
  assert.equal(await countSshSessions(engine, containerId), 0, "no session yet");

  await using _session = ssh(["sleep", "120"]).spawn();
  let seen = 0;
  for (let i = 0; i < 50 && seen === 0; i++) {
    seen = await countSshSessions(engine, containerId);
    if (seen === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(seen, 1, "the open session is seen");
  const execsAfter = (await engine.inspectContainer(containerId) as unknown as {
    ExecIDs: string[] | null;
  }).ExecIDs ?? [];
  assert.deepEqual(execsAfter, execsBefore, "the probe ran nothing inside the sandbox");
});

Deno.test("the TCP table is read up to a cap, cut at a whole line", async () => {
  const whole = await readTcpTables(Deno.pid);
  assert.match(whole, /local_address/);
  const capped = await readTcpTables(Deno.pid, 200);
  const v4 = capped.split("\n\n")[0] + "\n";
  assert.ok(whole.length > 200, "the table is longer than the cap");
  assert.ok(v4.length <= 200, `${v4.length} bytes of the IPv4 table`);
  assert.ok(whole.startsWith(v4), "a prefix of the table, cut after a whole line");
});
