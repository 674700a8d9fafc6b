import { recordAudit } from "@/infra/audit.ts";
import { AppError } from "@/core/errors.ts";
import { backupWorkspace, restoreLatestBackup } from "./backups.ts";
import { containerNameOf, type ProjectRow } from "./rows.ts";
import { ensureWorkspace, unmountWorkspace, workspaceExists } from "@/infra/host/workspace.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { claimCapacity } from "./capacity.ts";
import { effectivePolicy } from "./egress.ts";
import { assertIsolationReady, usernsFor } from "./isolation.ts";
import { removeSandbox, type RunningSandbox, startSandbox, waitForSsh } from "./sandbox.ts";
import { type Actor, auditOf, getOwnedProject, type ProjectDeps, reasonOf } from "./service.ts";
import { applyStep } from "./states.ts";
import { cloudEnv, deliverCloudKey, openCloudKey } from "./cloud-identity.ts";

/** Snapshot tags kept per project besides `latest`; older ones are deleted after a stop. */
const SNAPSHOTS_KEPT = 3;

/** Why a project stops: a user's request, or the inactivity checker. */
export type StopCause =
  | { by: "api"; actor: Actor }
  | { by: "idle"; reason: string }
  | { by: "disk"; reason: string }
  | { by: "owner_disabled"; reason: string };

const stopEvents = {
  api: "project.stopped",
  idle: "project.auto_stopped",
  disk: "project.stopped_over_disk_bound",
  owner_disabled: "project.stopped_owner_disabled",
} as const;

/** running → snapshotting → stopped, by a user. */
export async function stopProject(deps: ProjectDeps, actor: Actor, id: string) {
  await getOwnedProject(deps.sql, actor.userId, id);
  const row = await applyStep(deps.sql, id, "stopRequested", {
    userId: actor.userId,
    changes: { workerId: deps.instanceId },
  });
  return await snapshotAndStop(deps, row, { by: "api", actor });
}

/**
 * For a row already in `snapshotting`: backs the workspace up, commits and pushes the
 * container, and only then stops and removes it. If the snapshot fails the container is
 * left as it was, the previous snapshot stays current, and the project goes to error.
 */
export async function snapshotAndStop(
  deps: ProjectDeps,
  row: ProjectRow,
  cause: StopCause,
): Promise<ProjectRow> {
  const audit = cause.by === "api" ? auditOf(cause.actor) : { userId: row.userId };
  try {
    if (!row.containerId) throw new Error("the project has no container");
    // The workspace backup and the snapshot read different things (the volume, the
    // container's own layer), so they run side by side; the stop waits for both.
    const [, snapshot] = await Promise.all([
      backupWorkspace(deps, row).catch((err) =>
        // The volume outlives the stop, so a failed backup loses nothing; it is retried later.
        deps.log.warn("backup before stop failed", { project_id: row.id, error: reasonOf(err) })
      ),
      takeSnapshot(deps, row),
    ]);
    // Recorded before the container goes: a crash from here on leaves a usable snapshot
    // that the reconciler finds, instead of a stopped project pointing at an older one.
    await deps.sql`
      UPDATE projects SET snapshot_image = ${snapshot.image}, last_snapshot_at = ${snapshot.at},
        snapshot_size_bytes = ${snapshot.size}
      WHERE id = ${row.id} AND status = 'snapshotting'`;
    await deps.engine.stopContainer(row.containerId, { timeoutSeconds: 10 });
    await deps.engine.removeContainer(row.containerId, { force: true });
    // A stopped project holds no loop device; its workspace image stays for the next start.
    await unmountWorkspace(deps.isolation.workspaces, row.id);
    const stopped = await applyStep(deps.sql, row.id, "stopped", {
      changes: {
        containerId: null,
        sshHostPort: null,
        snapshotImage: snapshot.image,
        snapshotSizeBytes: snapshot.size === null ? null : String(snapshot.size),
        lastSnapshotAt: snapshot.at,
      },
      reason: cause.by === "api" ? null : cause.reason,
    });
    await recordAudit(deps.sql, {
      event: stopEvents[cause.by],
      ...audit,
      projectId: row.id,
      details: { image: snapshot.image, ...(cause.by === "api" ? {} : { reason: cause.reason }) },
    });
    await pruneSnapshots(deps, row.id).catch((err) =>
      deps.log.warn("pruning old snapshots failed", { project_id: row.id, error: reasonOf(err) })
    );
    return stopped;
  } catch (err) {
    const reason = `snapshot failed: ${reasonOf(err)}`;
    deps.log.warn("snapshot failed", { project_id: row.id, reason });
    await applyStep(deps.sql, row.id, "failed", { reason, onlyFrom: ["snapshotting"] })
      .catch(() => {});
    await recordAudit(deps.sql, {
      event: "project.snapshot_failed",
      ...audit,
      projectId: row.id,
      details: { reason },
    });
    throw new AppError(
      "snapshot_failed",
      502,
      `The snapshot failed, nothing was lost: ${reasonOf(err)}`,
    );
  }
}

async function takeSnapshot(deps: ProjectDeps, row: ProjectRow) {
  const at = new Date();
  const repository = deps.snapshots.repository(row.id);
  const tag = `s${at.toISOString().replace(/[-:.TZ]/g, "").slice(0, 17)}`;
  const image = `${repository}:${tag}`;
  await deps.engine.commitContainer(row.containerId!, {
    repo: repository,
    tag,
    comment: `pomodex snapshot of ${row.id}`,
  });
  try {
    const registry = deps.snapshots.registry;
    if (registry) await deps.engine.pushImage(image, { auth: await registry.auth() });
    await deps.engine.tagImage(image, repository, "latest");
    if (registry) {
      await deps.engine.pushImage(`${repository}:latest`, { auth: await registry.auth() });
    }
  } catch (err) {
    // The new image never became the current snapshot: drop it, keep the old one.
    await deps.engine.removeImage(image, { force: true }).catch(() => {});
    throw err;
  }
  const size = (await deps.engine.inspectImage(image))?.Size ?? null;
  return { image, at, size };
}

async function pruneSnapshots(deps: ProjectDeps, projectId: string) {
  const repository = deps.snapshots.repository(projectId);
  const local = (await deps.engine.listImages(repository))
    .flatMap((i) => i.RepoTags ?? [])
    .filter((ref) => ref.startsWith(`${repository}:s`))
    .sort();
  for (const ref of local.slice(0, Math.max(0, local.length - SNAPSHOTS_KEPT))) {
    await deps.engine.removeImage(ref).catch(() => {});
  }
  const registry = deps.snapshots.registry;
  if (!registry) return;
  const path = registry.pathOf(repository);
  const tags = (await registry.client.listTags(path)).filter((t) => t.startsWith("s")).sort();
  for (const tag of tags.slice(0, Math.max(0, tags.length - SNAPSHOTS_KEPT))) {
    await registry.client.deleteTag(path, tag);
  }
}

/** stopped (or error) → restoring → running, by a user, when the host has room. */
export async function startProject(deps: ProjectDeps, actor: Actor, id: string) {
  await getOwnedProject(deps.sql, actor.userId, id);
  await assertIsolationReady(deps);
  const row = await transaction(deps.sql, async (tx) => {
    await claimCapacity(tx, deps.config);
    return await applyStep(tx, id, "startRequested", {
      userId: actor.userId,
      changes: { workerId: deps.instanceId },
    });
  });
  let made = false;
  try {
    const existing = await deps.engine.inspectContainer(containerNameOf(id));
    const volumeKept = await workspaceExists(deps.isolation.workspaces, id);
    let sandbox: RunningSandbox;
    if (existing && volumeKept) {
      // Left by a failed snapshot: its filesystem is newer than any snapshot, so keep it.
      sandbox = await resumeContainer(deps, row, existing.Id);
    } else {
      if (existing) await deps.engine.removeContainer(existing.Id, { force: true });
      const image = await ensureImage(deps, row.snapshotImage ?? deps.config.engine.sandboxImage);
      made = true;
      sandbox = await startSandbox(deps, {
        projectId: id,
        userId: row.userId,
        image,
        sshPublicKey: row.sshPublicKey,
        env: cloudEnv(deps, id),
        directEgress: effectivePolicy(row, deps.config.egress) === "open",
      });
      // A snapshot keeps the key; a start from the base image needs it again.
      const cloudKey = await openCloudKey(deps, row);
      if (cloudKey) {
        await deliverCloudKey(deps.engine, sandbox.containerId, cloudKey, cloudEnv(deps, id));
      }
      if (!volumeKept) {
        const restored = await restoreLatestBackup(deps, row, sandbox.containerId);
        await recordAudit(deps.sql, {
          event: "project.workspace_restored",
          userId: row.userId,
          projectId: id,
          details: { backup: restored?.key ?? null },
        });
      }
    }
    await waitForSsh(deps.config.engine.hostIp, sandbox.sshHostPort);
    // A start is activity: the idle clock of a project stopped long ago starts now.
    const started = await applyStep(deps.sql, id, "started", {
      changes: { ...sandbox, lastActiveAt: new Date(), lastActivitySource: "api" },
    });
    await recordAudit(deps.sql, {
      event: "project.started",
      ...auditOf(actor),
      projectId: id,
      details: { image: row.snapshotImage },
    });
    return started;
  } catch (err) {
    const reason = `start failed: ${reasonOf(err)}`;
    deps.log.warn("start failed", { project_id: id, reason });
    if (made) await removeSandbox(deps, id, { keepVolume: true }).catch(() => {});
    await applyStep(deps.sql, id, "failed", { reason, onlyFrom: ["restoring"] }).catch(() => {});
    throw new AppError("restore_failed", 502, `Could not start the project: ${reasonOf(err)}`);
  }
}

async function resumeContainer(
  deps: ProjectDeps,
  row: ProjectRow,
  containerId: string,
): Promise<RunningSandbox> {
  // Its workspace was unmounted when the snapshot failed part-way, or by a host restart.
  const { agentHostUid } = await usernsFor(deps);
  await ensureWorkspace(deps.isolation.workspaces, row.id, agentHostUid);
  await deps.engine.startContainer(containerId);
  const info = await deps.engine.inspectContainer(containerId);
  const sshHostPort = deps.engine.hostPortOf(info, "22/tcp");
  if (!info?.State.Running || !sshHostPort) throw new Error("the container did not start");
  return { containerId, sshHostPort };
}

/** The image in the engine, pulled from the snapshot registry when the engine lacks it. */
async function ensureImage(deps: ProjectDeps, image: string): Promise<string> {
  if (await deps.engine.inspectImage(image)) return image;
  const registry = deps.snapshots.registry;
  if (!registry || !image.startsWith(`${registry.address}/`)) {
    throw new Error(`the image ${image} is not in the engine`);
  }
  await deps.engine.pullImage(image, { auth: await registry.auth() });
  return image;
}

/** Every snapshot image of the project, in the engine and in the registry. */
/** The project's snapshot images the engine holds (pulled or committed here). */
export async function removeSnapshotImages(deps: ProjectDeps, projectId: string) {
  const repository = deps.snapshots.repository(projectId);
  for (const image of await deps.engine.listImages(repository)) {
    for (const ref of image.RepoTags ?? []) await deps.engine.removeImage(ref, { force: true });
  }
}

/** The project's repository in the registry, every tag of it (nothing without a registry). */
export async function deleteSnapshotRepository(deps: ProjectDeps, projectId: string) {
  const registry = deps.snapshots.registry;
  if (!registry) return;
  await registry.client.deleteRepository(registry.pathOf(deps.snapshots.repository(projectId)));
}

/**
 * Stops every running project of a user who was disabled: their SSH keys would otherwise
 * keep working, and an open SSH session would keep the project from ever auto-stopping.
 */
export async function stopAllProjectsOf(deps: ProjectDeps, userId: string, reason: string) {
  const running = await deps.sql<{ id: string }[]>`
    SELECT id FROM projects WHERE user_id = ${userId} AND status = 'running'`;
  const stopped: string[] = [];
  for (const { id } of running) {
    const row = await applyStep(deps.sql, id, "stopRequested", {
      reason,
      changes: { workerId: deps.instanceId },
      orNull: true,
    }) as ProjectRow | null;
    if (!row) continue; // moved on meanwhile
    await snapshotAndStop(deps, row, { by: "owner_disabled", reason })
      .then(() => stopped.push(id))
      .catch(() => {}); // snapshotAndStop logged it and left the project in error
  }
  return stopped;
}
