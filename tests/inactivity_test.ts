import assert from "node:assert/strict";
import { DockerError } from "@/infra/docker/mod.ts";
import { runInactivityCheck } from "@/jobs/inactivity.ts";
import { parseEstablishedOnPort } from "@/projects/activity.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import { createServices } from "@/services.ts";
import { silentLogger } from "@/core/log.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { signUp, type TestUser } from "./helpers/users.ts";
import { engineTest, insertProject } from "./helpers/projects.ts";
import { sshArgs } from "./helpers/ssh.ts";

const minutes = (n: number) => n * 60_000;
async function create(h: TestApp, user: TestUser, name: string) {
  const res = await h.request("/projects", { method: "POST", headers: user.auth, json: { name } });
  assert.equal(res.status, 201);
  return await res.json();
}

/** Moves a project's clocks into the past, as if time had passed. */
async function age(h: TestApp, id: string, activeAgo: number, createdAgo = activeAgo) {
  await h.sql`UPDATE projects SET last_active_at = now() - ${
    activeAgo / 1000
  } * interval '1 second',
    created_at = now() - ${createdAgo / 1000} * interval '1 second' WHERE id = ${id}`;
}

async function statusOf(h: TestApp, id: string) {
  const [row] = await h.sql`SELECT status, status_reason FROM projects WHERE id = ${id}`;
  return row;
}

engineTest(
  "idle projects are snapshotted and stopped; active, stopped and SSH-held ones are not",
  async () => {
    await using h = await createTestApp();
    const user = await signUp(h);
    const idle = await create(h, user, "idle-31-min");
    const active = await create(h, user, "active-4-min-ago");
    const never = await create(h, user, "never-connected");
    const held = await create(h, user, "ssh-session-open");
    const stopped = await create(h, user, "already-stopped");
    assert.equal(
      (await h.request(`/projects/${stopped.id}/stop`, { method: "POST", headers: user.auth }))
        .status,
      200,
    );

    await age(h, idle.id, minutes(31));
    await h
      .sql`UPDATE projects SET last_connection_at = now() - interval '31 minutes' WHERE id = ${idle.id}`;
    await age(h, active.id, minutes(4), minutes(60));
    await age(h, never.id, minutes(45)); // never connected, made 45 minutes ago
    await age(h, held.id, minutes(90));
    await age(h, stopped.id, minutes(120));

    // A real SSH session, open while the checker runs.
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/key`, held.ssh_private_key, { mode: 0o600 });
    const session = new Deno.Command("ssh", {
      args: sshArgs(held, `${dir}/key`, "echo connected; sleep 30"),
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = session.stdout.pipeThrough(textDecoder()).getReader();
    assert.match((await reader.read()).value ?? "", /connected/);

    const report = await runInactivityCheck(h.deps);
    session.kill();
    await session.status;
    await reader.cancel();
    await Deno.remove(dir, { recursive: true });

    assert.deepEqual(report.stopped.sort(), [idle.id, never.id].sort());
    assert.deepEqual(report.keptBySsh, [held.id]);
    assert.equal((await statusOf(h, idle.id)).status, "stopped");
    assert.match((await statusOf(h, idle.id)).statusReason, /^idle for 30 minutes/);
    assert.equal((await statusOf(h, never.id)).status, "stopped");
    assert.equal((await statusOf(h, active.id)).status, "running");
    assert.equal((await statusOf(h, held.id)).status, "running");
    assert.equal((await statusOf(h, stopped.id)).status, "stopped");
    const heldNow = await (await h.request(`/projects/${held.id}`, { headers: user.auth }))
      .json();
    assert.equal(heldNow.last_activity_source, "ssh");

    // Why it stopped is in the audit log.
    const [event] = await h.sql`SELECT details FROM audit_log
    WHERE event = 'project.auto_stopped' AND project_id = ${idle.id}`;
    assert.match(event.details.reason, /idle for 30 minutes/);

    // It comes back as it was.
    const back = await h.request(`/projects/${idle.id}/start`, {
      method: "POST",
      headers: user.auth,
    });
    assert.equal(back.status, 200);
    const view = await back.json();
    assert.equal(view.last_activity_source, "api");
    assert.ok(Date.parse(view.auto_stop_at) > Date.now() + minutes(29));

    for (const p of [idle, active, never, held, stopped]) {
      await h.request(`/projects/${p.id}`, { method: "DELETE", headers: user.auth });
    }
  },
);

Deno.test("two checkers at once over 20 idle projects stop each exactly once", async () => {
  await using h = await createTestApp({ DOCKER_HOST: "unix:///nonexistent.sock" });
  const user = await signUp(h);
  for (let i = 0; i < 20; i++) {
    await h.sql`INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix,
        container_id, last_active_at)
      VALUES (${user.userId}, ${`p${i}`}, 'running', 'k', 'x/', 'gone', now() - interval '2 hours')`;
  }
  // A second instance: its own services over the same database.
  const other = await createServices(h.config, h.sql, silentLogger);
  const stops: string[] = [];
  const stop = async (row: ProjectRow) => {
    stops.push(row.id);
    await new Promise((r) => setTimeout(r, 5)); // a snapshot takes a while
  };
  const noSessions = () => Promise.resolve(0);
  const [a, b] = await Promise.all([
    runInactivityCheck(h.deps, { stop, sshSessions: noSessions }),
    runInactivityCheck(other, { stop, sshSessions: noSessions }),
  ]);
  assert.equal(stops.length, 20);
  assert.equal(new Set(stops).size, 20);
  assert.equal(a.stopped.length + b.stopped.length, 20);
  const [{ count }] = await h
    .sql`SELECT count(*)::int AS count FROM projects WHERE status = 'snapshotting'`;
  assert.equal(count, 20);
  other.engine.close();
});

Deno.test("SSH sessions unknown: kept while the engine is silent, not when the container is broken", async () => {
  await using h = await createTestApp({ DOCKER_HOST: "unix:///nonexistent.sock" });
  const user = await signUp(h);
  const idle = async (name: string) => {
    const [{ id }] = await h.sql`INSERT INTO projects (user_id, name, status, ssh_public_key,
        gcs_prefix, container_id, last_active_at)
      VALUES (${user.userId}, ${name}, 'running', 'k', 'x/', ${name},
        now() - interval '2 hours') RETURNING id`;
    return id as string;
  };
  const silent = await idle("engine-silent");
  const broken = await idle("table-broken");
  const stopped: string[] = [];
  const report = await runInactivityCheck(h.deps, {
    stop: (row) => Promise.resolve(void stopped.push(row.id)),
    sshSessions: (containerId) =>
      Promise.reject(
        containerId === "engine-silent"
          ? new DockerError(0, "exec", "timed out after 10000 ms")
          : new Error("could not read the container's TCP table"),
      ),
  });
  assert.deepEqual(report.unchecked, [silent]);
  assert.deepEqual(stopped, [broken]);
  const [row] = await h.sql`SELECT status FROM projects WHERE id = ${silent}`;
  assert.equal(row.status, "running");
});

Deno.test("IDLE_THRESHOLD_MINUTES=1 stops a project idle for 2 minutes, as auto_stop_at promised (issue 15)", async () => {
  await using h = await createTestApp({
    DOCKER_HOST: "unix:///nonexistent.sock",
    IDLE_THRESHOLD_MINUTES: "1",
  });
  const user = await signUp(h);
  const running = (name: string, idleSeconds: number) =>
    insertProject(h.sql, user.userId, {
      name,
      status: "running",
      containerId: name,
      lastActiveAt: h.sql`now() - ${idleSeconds} * interval '1 second'`,
    });
  const idle = await running("idle-2-min", 120);
  await running("active-30-s-ago", 30);
  const stopped: string[] = [];
  const report = await runInactivityCheck(h.deps, {
    stop: (row) => Promise.resolve(void stopped.push(row.id)),
    sshSessions: () => Promise.resolve(0),
  });
  assert.deepEqual(stopped, [idle]);
  assert.equal(report.candidates, 1);
  const [row] = await h.sql`SELECT status, status_reason FROM projects WHERE id = ${idle}`;
  assert.equal(row.status, "snapshotting");
  assert.match(row.statusReason, /^idle for 1 minutes/);
});

Deno.test("per-project timeouts, off for admins only, and the activity endpoint", async () => {
  await using h = await createTestApp({ DOCKER_HOST: "unix:///nonexistent.sock" });
  const user = await signUp(h);
  const insert = async (name: string, idleMinutes: number | null, activeAgoMinutes: number) => {
    const [row] = await h.sql`INSERT INTO projects (user_id, name, status, ssh_public_key,
        gcs_prefix, idle_timeout_minutes, last_active_at)
      VALUES (${user.userId}, ${name}, 'running', 'k', 'x/', ${idleMinutes},
        now() - ${activeAgoMinutes} * interval '1 minute') RETURNING id`;
    return row.id as string;
  };
  const short = await insert("10-min-timeout", 10, 11);
  const long = await insert("120-min-timeout", 120, 60);
  const off = await insert("auto-stop-off", 0, 600);
  const bumped = await insert("bumped", null, 45);

  const bump = await h.request(`/projects/${bumped}/activity`, {
    method: "POST",
    headers: user.auth,
  });
  assert.equal(bump.status, 204);

  const stopped: string[] = [];
  const report = await runInactivityCheck(h.deps, {
    stop: (row) => Promise.resolve(void stopped.push(row.id)),
    sshSessions: () => Promise.resolve(0),
  });
  assert.deepEqual(stopped, [short]);
  assert.equal(report.candidates, 1);

  // Nor does time pass for a project whose timeout is off.
  const later = await runInactivityCheck(h.deps, {
    now: new Date(Date.now() + minutes(24 * 60)),
    stop: (row) => Promise.resolve(void stopped.push(row.id)),
    sshSessions: () => Promise.resolve(0),
  });
  assert.ok(!stopped.includes(off), "auto-stop off is never stopped");
  assert.equal(later.candidates, 2, "the long and the bumped ones, a day later");

  const patch = (id: string, value: unknown) =>
    h.request(`/projects/${id}`, {
      method: "PATCH",
      headers: user.auth,
      json: { idle_timeout_minutes: value },
    });
  assert.equal((await patch(long, 4)).status, 422);
  assert.equal((await patch(long, 481)).status, 422);
  assert.equal((await patch(long, 0)).status, 403, "off is for admins");
  const ok = await patch(long, 90);
  assert.equal(ok.status, 200);
  const view = await ok.json();
  assert.equal(view.idle_timeout_minutes, 90);
  const reset = await (await patch(long, null)).json();
  assert.equal(reset.idle_timeout_minutes, 30);
});

Deno.test("open SSH sessions are read from the TCP table: established on port 22 only", () => {
  const table = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid",
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
    "   1: 0200580A:0016 0100580A:D2F4 01 00000000:00000000 02:000A7B2D 00000000     0",
    "   2: 0200580A:0016 0100580A:D2F6 06 00000000:00000000 03:00001770 00000000     0",
    "   3: 0200580A:1F90 0100580A:D2F8 01 00000000:00000000 02:000A7B2D 00000000     0",
    "   0: 00000000000000000000000000000000:0016 00000000000000000000000001000000:C350 01 0",
  ].join("\n");
  assert.equal(parseEstablishedOnPort(table, 22), 2);
});

// Typed for byte chunks: with DOM typings in the program, TextDecoderStream wants BufferSource.
function textDecoder() {
  return new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>;
}
