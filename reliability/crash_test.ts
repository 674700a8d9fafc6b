/**
 * Crash: kill -9 the server in the middle of create, stop, start and delete, each at several
 * points. Each point is hit deterministically: the server talks to the engine through a
 * proxy that holds one chosen call, so the test kills the server while that call is in
 * flight, and logs what the database and the engine held at that moment. Every round's
 * next server is the restart of the one killed before. After the last kill a new instance
 * must, within one reconciler pass past the heartbeat timeout, leave every project running
 * with its container, network and mounted workspace, stopped with a usable snapshot and its
 * workspace image kept but unmounted, gone, or in error with a reason; and nothing of the
 * installation's that no project accounts for: no container, project network, workspace
 * image, mount or loop device, direct-egress entry or snapshot image. Each kill point has
 * one right outcome (the state, its reason, and the reconciler's audit event that says
 * which of its branches mended it); a project in error where it should run, or gone where it
 * should be stopped, fails the test.
 */
import assert from "node:assert/strict";
import type { DockerClient } from "@/infra/docker/mod.ts";
import { HEARTBEAT_TIMEOUT_SECONDS } from "@/projects/reconciler.ts";
import { containerNameOf, networkNameOf } from "@/projects/rows.ts";
import { createTestDatabase, type TestDatabase } from "@/tests/helpers/db.ts";
import { requireEngine, SKIP_ENGINE_TESTS } from "@/tests/helpers/engine.ts";
import { call } from "./helpers/api.ts";
import { signUp, type TestUser } from "@/tests/helpers/users.ts";
import {
  type CallMatcher,
  EngineGate,
  type InstallationPlaces,
  leftovers,
  NO_LEFTOVERS,
  removeEverything,
  snapshotImagesOf,
} from "./helpers/engine.ts";
import { randomMasterKey, type ServerProcess, sleep, startServer } from "@/tests/helpers/server.ts";
import {
  describeWorkspace,
  scratchDir,
  scratchWorkspaceDir,
  workspaceState,
} from "./helpers/workspace.ts";
import { messageOf } from "@/core/errors.ts";

const RECONCILER_PERIOD_SECONDS = 20;
/** The test's own pool, so that the direct-egress set can be checked for what it left. */
const SUBNET_POOL = "10.214.0.0/16";

interface Round {
  name: string;
  /** The project the round works on (null: a create, whose id comes from the database). */
  project: string | null;
  match: CallMatcher;
  phase: "before" | "after";
  /** Starts the operation; its answer never comes (the server dies), so it is not awaited. */
  trigger(base: string, user: TestUser): Promise<unknown>;
  /** What the reconciler must make of it: the state, its reason, and its audit event. */
  expect: Expected;
}

/** null: the project is gone (its delete finished). */
type Expected = {
  status: "running" | "stopped" | "error" | null;
  reason: string | null;
  event: string;
  /** For "running": the container it runs in is the one it had before the kill. */
  sameContainer?: () => string;
};

const CREATE_INTERRUPTED: Expected = {
  status: "error",
  reason: "creation was interrupted",
  event: "project.error",
};
const SNAPSHOT_ABANDONED = {
  status: "running",
  reason: "a snapshot was interrupted; the project kept running",
  event: "project.snapshot_abandoned",
} as const;
const DELETE_FINISHED: Expected = { status: null, reason: null, event: "project.delete_finished" };

interface Observed {
  round: string;
  project: string;
  heldCall: string;
  atKill: string;
  expect: Expected;
}

async function stateOf(
  db: TestDatabase,
  engine: DockerClient,
  workspaceDir: string,
  id: string,
): Promise<string> {
  const [row] = await db.sql<{ status: string; snapshotImage: string | null }[]>`
    SELECT status, snapshot_image FROM projects WHERE id = ${id}`;
  const container = await engine.inspectContainer(containerNameOf(id));
  const network = await engine.inspectNetwork(networkNameOf(id));
  const workspace = await workspaceState(workspaceDir, id);
  const images = await snapshotImagesOf(engine, id);
  return [
    `row ${row ? row.status : "gone"}`,
    `container ${container ? container.State.Status : "none"}`,
    `network ${network ? "yes" : "none"}`,
    describeWorkspace(workspace),
    `snapshot images ${images.length}`,
    row?.snapshotImage ? "snapshot recorded" : "no snapshot recorded",
  ].join(", ");
}

Deno.test({
  name:
    "crash: kill -9 during create, stop, start and delete; one reconciler pass mends each as it should",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Torn down in reverse: the servers (killed), the engine gate, what the projects left in
    // the engine and on the host, the engine client, the database, the directories.
    await using data = await scratchDir("pomodex-rel-crash-");
    await using workspace = await scratchWorkspaceDir();
    await using db = await createTestDatabase();
    using engine = await requireEngine();
    const dataDir = data.path;
    const workspaceDir = workspace.path;
    const places: InstallationPlaces = { workspaceDir, subnetPool: SUBNET_POOL };
    const [{ id: installationId }] = await db.sql<{ id: string }[]>`SELECT id FROM installation`;
    await using cleanup = new AsyncDisposableStack();
    cleanup.defer(async () => {
      const ids = (await db.sql<{ projectId: string }[]>`
        SELECT DISTINCT project_id FROM audit_log WHERE project_id IS NOT NULL`.catch(() => []))
        .map((r) => r.projectId);
      await removeEverything(engine, installationId, ids, places);
    });
    const gate = cleanup.use(new EngineGate());
    const servers: ServerProcess[] = [];
    cleanup.defer(async () => {
      for (const s of servers) await s.kill("SIGKILL");
    });
    const env = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      MASTER_KEY: randomMasterKey(),
      DOCKER_HOST: gate.dockerHost,
      DEFAULT_PROJECT_QUOTA: "20",
      SANDBOX_MEMORY_MB: "256",
      WORKSPACE_DIR: workspaceDir,
      SANDBOX_SUBNET_POOL: SUBNET_POOL,
    };
    const start = async (name: string) => {
      const s = await startServer(env, { name });
      servers.push(s);
      return s;
    };
    // --- set-up: projects for the stop and delete rounds
    let server = await start("setup");
    const user = await signUp(server.url);
    const create = async (name: string) => {
      const a = await call(server.url, "POST", "/projects", {
        token: user.token,
        json: { name },
        timeoutMs: 120_000,
      });
      assert.equal(a.status, 201, `create ${name}: ${a.text}`);
      return a.body.id as string;
    };
    const [stop1, stop2, stop3, del1, del2, del3, del4, start1, start2] = await Promise.all(
      [
        "stop-1",
        "stop-2",
        "stop-3",
        "del-1",
        "del-2",
        "del-3",
        "del-4",
        "start-1",
        "start-2",
      ].map(create),
    );
    await Promise.all([del2, del3, del4, start1, start2].map(async (id) => {
      const a = await call(server.url, "POST", `/projects/${id}/stop`, {
        token: user.token,
        timeoutMs: 120_000,
      });
      assert.equal(a.status, 200, `stop: ${a.text}`);
    }));
    const containerOf = async (id: string) =>
      (await db.sql<{ containerId: string }[]>`
        SELECT container_id FROM projects WHERE id = ${id}`)[0].containerId;
    const stop3Container = await containerOf(stop3);
    const stop1Container = await containerOf(stop1);
    const stop2Container = await containerOf(stop2);

    const post = (path: string) => (base: string, u: TestUser) =>
      call(base, "POST", path, { token: u.token, timeoutMs: 120_000 });
    const del = (id: string) => (base: string, u: TestUser) =>
      call(base, "DELETE", `/projects/${id}`, { token: u.token, timeoutMs: 120_000 });
    const createdSince = new Set<string>();
    const rounds: Round[] = [
      {
        name: "create: row written, network and workspace made, container not yet created",
        project: null,
        phase: "before",
        match: (m, p) => m === "POST" && p === "/containers/create",
        trigger: (base, u) =>
          call(base, "POST", "/projects", {
            token: u.token,
            json: { name: "crash-create-1" },
            timeoutMs: 120_000,
          }),
        expect: CREATE_INTERRUPTED,
      },
      {
        name: "create: container created and started, project not yet running",
        project: null,
        phase: "after",
        match: (m, p) => {
          if (m !== "POST") return false;
          const id = /^\/containers\/([0-9a-f]{12,})\/start$/.exec(p)?.[1];
          return !!id &&
            [...gate.created].some(([name, cid]) => cid === id && !createdSince.has(name));
        },
        trigger: (base, u) =>
          call(base, "POST", "/projects", {
            token: u.token,
            json: { name: "crash-create-2" },
            timeoutMs: 120_000,
          }),
        expect: CREATE_INTERRUPTED,
      },
      {
        name: "stop: snapshotting, workspace backed up, commit not yet made",
        project: stop1,
        phase: "before",
        match: (m, p, q) =>
          m === "POST" && p === "/commit" && q.get("container") === stop1Container,
        trigger: post(`/projects/${stop1}/stop`),
        expect: { ...SNAPSHOT_ABANDONED, sameContainer: () => stop1Container },
      },
      {
        name: "stop: commit made, snapshot not yet tagged latest nor recorded",
        project: stop2,
        phase: "before",
        match: (m, p) =>
          m === "POST" && p.includes(`pomodex-snapshot-${stop2}`) && p.endsWith("/tag"),
        trigger: post(`/projects/${stop2}/stop`),
        expect: { ...SNAPSHOT_ABANDONED, sameContainer: () => stop2Container },
      },
      {
        name: "stop: snapshot recorded, container not yet stopped",
        project: stop3,
        phase: "before",
        match: (m, p) => m === "POST" && p === `/containers/${stop3Container}/stop`,
        trigger: post(`/projects/${stop3}/stop`),
        expect: { status: "stopped", reason: null, event: "project.stop_finished" },
      },
      {
        name: "delete (running): deleting, container not yet removed",
        project: del1,
        phase: "before",
        match: (m, p) => m === "DELETE" && p === `/containers/${containerNameOf(del1)}`,
        trigger: del(del1),
        expect: DELETE_FINISHED,
      },
      {
        name: "delete (stopped): no container, workspace not yet removed",
        project: del2,
        phase: "before",
        match: (m, p) => m === "DELETE" && p === `/containers/${containerNameOf(del2)}`,
        trigger: del(del2),
        expect: DELETE_FINISHED,
      },
      {
        name: "delete (stopped): workspace removed, network not yet removed",
        project: del4,
        phase: "before",
        match: (m, p) => m === "DELETE" && p === `/networks/${networkNameOf(del4)}`,
        trigger: del(del4),
        expect: DELETE_FINISHED,
      },
      {
        name: "delete (stopped): network gone, snapshot images not yet removed",
        project: del3,
        phase: "before",
        match: (m, p) =>
          m === "DELETE" && p.startsWith(`/images/localhost/pomodex-snapshot-${del3}`),
        trigger: del(del3),
        expect: DELETE_FINISHED,
      },
      {
        name: "start: restoring from the snapshot, container not yet created",
        project: start1,
        phase: "before",
        match: (m, p, q) =>
          m === "POST" && p === "/containers/create" && q.get("name") === containerNameOf(start1),
        trigger: post(`/projects/${start1}/start`),
        expect: { status: "error", reason: "a start was interrupted", event: "project.error" },
      },
      {
        name: "start: container created and started, project not yet running",
        project: start2,
        phase: "after",
        match: (m, p) => {
          if (m !== "POST") return false;
          const id = /^\/containers\/([0-9a-f]{12,})\/start$/.exec(p)?.[1];
          return !!id && id === gate.created.get(containerNameOf(start2));
        },
        trigger: post(`/projects/${start2}/start`),
        expect: {
          status: "running",
          reason: null,
          event: "project.start_finished",
          sameContainer: () => gate.created.get(containerNameOf(start2))!,
        },
      },
    ];

    // --- the rounds: one kill each; the next round's server is the restart
    const observed: Observed[] = [];
    let lastKillAt = 0;
    for (const [i, round] of rounds.entries()) {
      if (i > 0) server = await start(`round-${i + 1}`);
      for (const name of gate.created.keys()) createdSince.add(name);
      const hold = gate.hold(round.match, round.phase);
      const pending = round.trigger(server.url, user).catch((err) => err);
      const heldCall = await Promise.race([
        hold.reached,
        pending.then((a) => {
          throw new Error(
            `${round.name}: finished before the hold (${JSON.stringify(a).slice(0, 300)})`,
          );
        }),
        sleep(60_000).then(() => {
          throw new Error(`${round.name}: the held call never came`);
        }),
      ]);
      const project = round.project ??
        (await db.sql<{ id: string }[]>`
          SELECT id FROM projects ORDER BY created_at DESC LIMIT 1`)[0].id;
      const atKill = await stateOf(db, engine, workspaceDir, project);
      await server.kill("SIGKILL");
      lastKillAt = Date.now();
      // "before": the call dies with the server; "after": the engine did it, the answer is lost.
      if (round.phase === "before") hold.drop();
      else hold.release();
      await pending;
      observed.push({ round: round.name, project, heldCall, atKill, expect: round.expect });
      console.log(`kill ${i + 1}: ${round.name}\n  held ${heldCall}\n  at the kill: ${atKill}`);
    }

    // --- restart; the last kill's worker goes silent, then one reconciler pass
    const restartedAt = Date.now();
    server = await start("after-crashes");
    const everIds = (await db.sql<{ projectId: string }[]>`
      SELECT DISTINCT project_id FROM audit_log WHERE event = 'project.create'`)
      .map((r) => r.projectId);
    const problemsNow = async () => {
      const rows = await db.sql<
        {
          id: string;
          status: string;
          statusReason: string | null;
          containerId: string | null;
          snapshotImage: string | null;
        }[]
      >`SELECT id, status, status_reason, container_id, snapshot_image FROM projects`;
      const problems: string[] = [];
      for (const r of rows) {
        const c = await engine.inspectContainer(containerNameOf(r.id));
        const ws = await workspaceState(workspaceDir, r.id);
        if (r.status === "running") {
          if (!c?.State.Running || c.Id !== r.containerId) {
            problems.push(`${r.id} running without its container`);
          }
          if (!ws.mounted) problems.push(`${r.id} running without its workspace mounted`);
          if (!(await engine.inspectNetwork(networkNameOf(r.id)))) {
            problems.push(`${r.id} running without its network`);
          }
        } else if (r.status === "stopped") {
          if (!r.snapshotImage || !(await engine.inspectImage(r.snapshotImage))) {
            problems.push(`${r.id} stopped without a usable snapshot (${r.snapshotImage})`);
          }
          if (c) problems.push(`${r.id} stopped but its container is there`);
          // The workspace is the user's data: kept, but no mount or loop device held.
          if (!ws.image) problems.push(`${r.id} stopped without its workspace image`);
          if (ws.mounted || ws.loops.length) {
            problems.push(
              `${r.id} stopped but its workspace is mounted (${describeWorkspace(ws)})`,
            );
          }
        } else if (r.status === "error") {
          if (!r.statusReason) problems.push(`${r.id} in error without a reason`);
        } else {
          problems.push(`${r.id} still ${r.status}`);
        }
      }
      const left = await leftovers(
        engine,
        installationId,
        new Set(rows.map((r) => r.id)),
        everIds,
        places,
      );
      for (const [kind, list] of Object.entries(left)) {
        if (list.length) problems.push(`${kind}: ${list.join(", ")}`);
      }
      return { rows, problems };
    };
    // Bounded: the heartbeat timeout, one reconciler period, and slack for the pass itself.
    const bound = (HEARTBEAT_TIMEOUT_SECONDS + RECONCILER_PERIOD_SECONDS + 15) * 1000;
    // The engine may answer oddly while the reconciler removes things: ask again.
    const observe = () =>
      problemsNow().catch((err) => ({
        rows: [] as unknown as Awaited<ReturnType<typeof problemsNow>>["rows"],
        problems: [`engine: ${messageOf(err)}`],
      }));
    let state = await observe();
    while (state.problems.length > 0 && Date.now() - restartedAt < bound) {
      await sleep(1000);
      state = await observe();
    }
    const consistentAfter = ((Date.now() - restartedAt) / 1000).toFixed(1);
    const sinceKill = ((Date.now() - lastKillAt) / 1000).toFixed(1);
    console.log(
      `\nconsistent ${consistentAfter} s after the restart (${sinceKill} s after the last kill)`,
    );
    for (const o of observed) {
      const row = state.rows.find((r) => r.id === o.project);
      console.log(
        `  ${o.round}\n    -> ${
          row ? `${row.status}${row.statusReason ? ` (${row.statusReason})` : ""}` : "gone"
        }`,
      );
    }
    assert.deepEqual(state.problems, [], "every project consistent, nothing orphaned");

    // Each kill point's one right outcome, mended by the reconciler branch meant for it.
    const outcomes = [], wanted = [];
    for (const o of observed) {
      const row = state.rows.find((r) => r.id === o.project);
      const events = (await db.sql<{ event: string; details: { by?: string } }[]>`
        SELECT event, details FROM audit_log WHERE project_id = ${o.project} ORDER BY id`)
        .filter((a) => a.details.by === "reconciler").map((a) => a.event);
      const { status, reason, event, sameContainer } = o.expect;
      outcomes.push({
        round: o.round,
        status: row?.status ?? null,
        reason: row?.statusReason ?? null,
        reconciler: events,
        ...(sameContainer ? { container: row?.containerId } : {}),
      });
      wanted.push({
        round: o.round,
        status,
        reason,
        reconciler: [event],
        ...(sameContainer ? { container: sameContainer() } : {}),
      });
    }
    assert.deepEqual(outcomes, wanted, "each kill point's outcome");

    // The states are usable: stopped ones start from their snapshot, and so do those in
    // error (a start is how a user retries); then every one deletes.
    await Promise.all(
      state.rows.filter((r) => ["stopped", "error"].includes(r.status)).map(async (r) => {
        const a = await call(server.url, "POST", `/projects/${r.id}/start`, {
          token: user.token,
          timeoutMs: 120_000,
        });
        assert.equal(a.status, 200, `start ${r.id} (${r.status}): ${a.text}`);
        assert.equal(a.body.status, "running");
      }),
    );
    for (const r of state.rows) {
      const a = await call(server.url, "DELETE", `/projects/${r.id}`, {
        token: user.token,
        timeoutMs: 120_000,
      });
      assert.equal(a.status, 200, `delete ${r.id}: ${a.text}`);
    }
    // Podman 4.3 answers a listing with 500 "image not known" when an image (anyone's: other
    // test files run beside this one) goes while it lists: ask again, a few times.
    let left = null;
    for (let attempt = 1; left === null; attempt++) {
      left = await leftovers(engine, installationId, new Set(), everIds, places).catch((err) => {
        if (attempt >= 5 || !/image not known/.test(String(err))) throw err;
        return null;
      });
    }
    assert.deepEqual(left, NO_LEFTOVERS, "nothing left of any project");
    const errors = servers.flatMap((s) => s.problems.filter((l) => l.level === "error"));
    assert.deepEqual(errors, [], "no error logged by any instance");
  },
});
