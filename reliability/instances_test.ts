/**
 * Two app instances over one database, started at the same moment on a fresh database (so
 * migrations, the signing key and the initial admin race too), with the same MASTER_KEY:
 *   - a session made on one is valid on the other (login, me, refresh, logout across them);
 *   - both run the cron jobs: idle projects are auto-stopped exactly once each, one
 *     snapshot each; work a dead instance left half-done is finished exactly once.
 * Each has a DATA_DIR of its own and both share one WORKSPACE_DIR (either may stop or delete
 * any project): whichever instance stops a project leaves its workspace image kept and
 * unmounted, whichever finishes a delete leaves nothing of it (container, network, image,
 * mount, loop device).
 */
import assert from "node:assert/strict";
import { containerNameOf, networkNameOf } from "@/projects/rows.ts";
import { createTestDatabase } from "@/tests/helpers/db.ts";
import { requireEngine, SKIP_ENGINE_TESTS } from "@/tests/helpers/engine.ts";
import { call } from "./helpers/api.ts";
import { signUp } from "@/tests/helpers/users.ts";
import {
  type InstallationPlaces,
  leftovers,
  NO_LEFTOVERS,
  removeEverything,
  snapshotImagesOf,
} from "./helpers/engine.ts";
import {
  randomMasterKey,
  type ServerProcess,
  sleep,
  startServer,
  waitUntil,
} from "@/tests/helpers/server.ts";
import {
  describeWorkspace,
  removeDirSafely,
  scratchWorkspaceDir,
  workspaceState,
} from "./helpers/workspace.ts";

const CHECK_INTERVAL_SECONDS = 5;
const SUBNET_POOL = "10.214.0.0/16";
const IDLE_PROJECTS = 4;

Deno.test({
  name: "two instances: shared sessions; cron jobs act once per project",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Torn down in reverse: the servers, what the projects left in the engine and on the
    // host, the engine client, the database, the workspace directory, the data directories.
    await using dataDirs = new AsyncDisposableStack();
    const dirs = [
      await Deno.makeTempDir({ prefix: "pomodex-rel-a-" }),
      await Deno.makeTempDir({ prefix: "pomodex-rel-b-" }),
    ];
    dataDirs.defer(async () => {
      for (const d of dirs) await removeDirSafely(d);
    });
    await using workspace = await scratchWorkspaceDir();
    await using db = await createTestDatabase({ migrate: false });
    using engine = await requireEngine();
    const workspaceDir = workspace.path;
    const places: InstallationPlaces = { workspaceDir, subnetPool: SUBNET_POOL };
    await using cleanup = new AsyncDisposableStack();
    cleanup.defer(async () => {
      const installation = (await db.sql<{ id: string }[]>`SELECT id FROM installation`
        .catch(() => []))[0]?.id ?? null;
      const ids = (await db.sql<{ projectId: string }[]>`
        SELECT DISTINCT project_id FROM audit_log WHERE project_id IS NOT NULL`.catch(() => []))
        .map((r) => r.projectId);
      await removeEverything(engine, installation, ids, places);
    });
    const servers: ServerProcess[] = [];
    cleanup.defer(async () => {
      for (const s of servers) await s.stop();
    });
    const stoppedBy = new Map<string, string[]>();
    const env = {
      DATABASE_URL: db.url,
      MASTER_KEY: randomMasterKey(),
      INITIAL_ADMIN_EMAIL: "admin@example.com",
      INITIAL_ADMIN_PASSWORD: "correct horse battery staple",
      CHECK_INTERVAL_SECONDS: String(CHECK_INTERVAL_SECONDS),
      DEFAULT_PROJECT_QUOTA: "10",
      SANDBOX_MEMORY_MB: "256",
      // One for both: A's projects may be stopped or deleted by B.
      WORKSPACE_DIR: workspaceDir,
      SANDBOX_SUBNET_POOL: SUBNET_POOL,
    };
    // Both at once, on a database nobody has migrated yet.
    const [a, b] = await Promise.all(
      ["A", "B"].map((name, i) =>
        startServer({ ...env, DATA_DIR: dirs[i] }, {
          name,
          onInfo: (line) => {
            if (!line.includes('"msg":"inactivity checker"')) return;
            const stopped: string[] = JSON.parse(line).stopped ?? [];
            stoppedBy.set(name, [...(stoppedBy.get(name) ?? []), ...stopped]);
          },
        })
      ),
    );
    servers.push(a, b);
    const [{ admins }] = await db.sql<{ admins: number }[]>`
      SELECT count(*)::int AS admins FROM users WHERE role = 'admin'`;
    assert.equal(admins, 1, "one initial admin, though both instances tried");

    // --- sessions made on one instance are valid on the other
    const user = await signUp(a.url);
    const me = await call(b.url, "GET", "/auth/me", { token: user.token });
    assert.equal(me.status, 200, `token from A on B: ${me.text}`);
    assert.equal(me.body.id, user.userId);
    const refreshed = await call(b.url, "POST", "/auth/refresh", {
      json: { refresh_token: user.refreshToken },
    });
    assert.equal(refreshed.status, 200, `A's refresh token on B: ${refreshed.text}`);
    const onA = await call(a.url, "GET", "/auth/me", { token: refreshed.body.access_token });
    assert.equal(onA.status, 200, "B's access token on A");
    const jwksA = await call(a.url, "GET", "/.well-known/jwks.json");
    const jwksB = await call(b.url, "GET", "/.well-known/jwks.json");
    assert.deepEqual(jwksA.body, jwksB.body, "one signing key for both");
    const logout = await call(a.url, "POST", "/auth/logout", {
      json: { refresh_token: refreshed.body.refresh_token },
    });
    assert.equal(logout.status, 204);
    const revoked = await call(b.url, "GET", "/auth/me", { token: refreshed.body.access_token });
    assert.equal(revoked.status, 401, "a session logged out on A is dead on B");
    console.log(
      "sessions: A's token on B 200, A's refresh on B 200, B's token on A 200, " +
        "same JWKS, logout on A -> 401 on B",
    );

    // --- idle projects: both checkers see them, each is stopped exactly once
    const owner = await signUp(b.url);
    const ids = await Promise.all(Array.from({ length: IDLE_PROJECTS }, async (_, i) => {
      const res = await call(i % 2 ? a.url : b.url, "POST", "/projects", {
        token: owner.token,
        json: { name: `idle-${i}` },
        timeoutMs: 120_000,
      });
      assert.equal(res.status, 201, res.text);
      return res.body.id as string;
    }));

    // --- half-done work of a dead instance, for both reconcilers to find at once
    const dead = crypto.randomUUID();
    await db
      .sql`INSERT INTO instances (id, heartbeat_at) VALUES (${dead}, now() - interval '1 hour')`;
    const stuck = await Promise.all(["stuck-deleting", "stuck-creating"].map(async (name) => {
      const res = await call(a.url, "POST", "/projects", {
        token: owner.token,
        json: { name },
        timeoutMs: 120_000,
      });
      assert.equal(res.status, 201, res.text);
      return res.body.id as string;
    }));
    await db.sql`UPDATE projects SET status = 'deleting', worker_id = ${dead} WHERE id = ${
      stuck[0]
    }`;
    await db.sql`UPDATE projects SET status = 'creating', worker_id = ${dead} WHERE id = ${
      stuck[1]
    }`;

    const idleSince = Date.now();
    await db.sql`UPDATE projects SET last_active_at = now() - interval '2 hours'
      WHERE id IN ${db.sql(ids)}`;
    await waitUntil(
      "every idle project stopped",
      async () => {
        const rows = await db.sql<{ status: string }[]>`
          SELECT status FROM projects WHERE id IN ${db.sql(ids)}`;
        return rows.every((r) => r.status === "stopped");
      },
      90_000,
      250,
    );
    const stoppedAfter = (Date.now() - idleSince) / 1000;
    // The reconcilers: both run every 20 s from the same start; wait for them to settle.
    await waitUntil(
      "the stuck projects mended",
      async () => {
        const rows = await db.sql<{ id: string; status: string }[]>`
          SELECT id, status FROM projects WHERE id IN ${db.sql(stuck)}`;
        return rows.length === 1 && rows[0].id === stuck[1] && rows[0].status === "error";
      },
      60_000,
      250,
    );
    // One more checker period on both, to give a second stop every chance to happen.
    await sleep((CHECK_INTERVAL_SECONDS + 1) * 1000);

    const events = await db.sql<{ projectId: string; event: string; n: number }[]>`
      SELECT project_id, event, count(*)::int AS n FROM audit_log
      WHERE project_id IN ${db.sql([...ids, ...stuck])}
      GROUP BY project_id, event ORDER BY project_id, event`;
    const countOf = (id: string, event: string) =>
      events.find((e) => e.projectId === id && e.event === event)?.n ?? 0;
    console.log(
      `auto-stop: ${IDLE_PROJECTS} idle projects stopped within ${stoppedAfter.toFixed(1)} s; ` +
        `stopped by A: ${stoppedBy.get("A")?.length ?? 0}, by B: ${
          stoppedBy.get("B")?.length ?? 0
        }`,
    );
    for (const id of ids) {
      const tags = (await snapshotImagesOf(engine, id)).filter((t) => !t.endsWith(":latest"));
      console.log(
        `  ${id}: project.auto_stopped x${countOf(id, "project.auto_stopped")}, ` +
          `snapshot_failed x${countOf(id, "project.snapshot_failed")}, snapshots ${tags.length}`,
      );
      assert.equal(countOf(id, "project.auto_stopped"), 1, `${id} auto-stopped once`);
      assert.equal(countOf(id, "project.snapshot_failed"), 0);
      assert.equal(tags.length, 1, `${id}: one snapshot, not two (${tags.join(", ")})`);
      // Stopped by either instance: the image kept, no mount nor loop device held.
      const ws = await workspaceState(workspaceDir, id);
      assert.ok(
        ws.image && !ws.mounted && ws.loops.length === 0,
        `${id}: ${describeWorkspace(ws)}`,
      );
    }
    const allStopped = [...(stoppedBy.get("A") ?? []), ...(stoppedBy.get("B") ?? [])];
    assert.equal(allStopped.length, IDLE_PROJECTS, "the checkers' logs agree: one stop each");
    assert.equal(new Set(allStopped).size, IDLE_PROJECTS);

    console.log(
      `reconcilers: stuck deleting -> delete_finished x${
        countOf(stuck[0], "project.delete_finished")
      }; stuck creating -> project.error x${countOf(stuck[1], "project.error")}`,
    );
    assert.equal(countOf(stuck[0], "project.delete_finished"), 1, "one reconciler finished it");
    assert.equal(countOf(stuck[1], "project.error"), 1, "one reconciler failed it");
    for (const id of stuck) {
      // Deleted, or failed as an interrupted create: either way its sandbox is gone.
      assert.equal(await engine.inspectContainer(containerNameOf(id)), null, `${id} container`);
      assert.equal(await engine.inspectNetwork(networkNameOf(id)), null, `${id} network`);
      const ws = await workspaceState(workspaceDir, id);
      assert.ok(!ws.image && !ws.mounted && !ws.loops.length, `${id}: ${describeWorkspace(ws)}`);
    }
    const [{ id: installationId }] = await db.sql<{ id: string }[]>`SELECT id FROM installation`;
    const live = await db.sql<{ id: string }[]>`SELECT id FROM projects`;
    const everIds = [...ids, ...stuck];
    assert.deepEqual(
      await leftovers(engine, installationId, new Set(live.map((r) => r.id)), everIds, places),
      NO_LEFTOVERS,
      "nothing of the deleted project left, on the engine or the host",
    );

    for (const s of servers) {
      const errors = s.problems.filter((l) => l.level === "error");
      assert.deepEqual(errors, [], `no error logged by ${s.name}`);
    }
  },
});
