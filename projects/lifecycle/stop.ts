import { recordAudit } from "@/infra/audit.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import { AppError, reasonOf } from "@/core/errors.ts";
import { unmountWorkspace } from "@/infra/host/workspace.ts";
import { backupWorkspace } from "../backups.ts";
import type { ProjectDeps } from "../deps.ts";
import { recordSnapshot, runningProjectIdsOf } from "../queries.ts";
import type { ProjectRow } from "../rows.ts";
import { pruneSnapshots, takeSnapshot } from "../snapshot-images.ts";
import { applyStep } from "../states.ts";

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

/**
 * running → snapshotting → stopped, by a user, of their project as loaded by the request
 * (the step itself checks the owner again, and the state).
 */
export async function stopProject(deps: ProjectDeps, actor: Actor, project: ProjectRow) {
  const row = await applyStep(deps.sql, project.id, "stopRequested", {
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
    await recordSnapshot(deps.sql, row.id, snapshot);
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

/**
 * Stops every running project of a user who was disabled: their SSH keys would otherwise
 * keep working, and an open SSH session would keep the project from ever auto-stopping.
 */
export async function stopAllProjectsOf(deps: ProjectDeps, userId: string, reason: string) {
  const running = await runningProjectIdsOf(deps.sql, userId);
  const stopped: string[] = [];
  for (const id of running) {
    const row = await applyStep(deps.sql, id, "stopRequested", {
      reason,
      changes: { workerId: deps.instanceId },
      orNull: true,
    });
    if (!row) continue; // moved on meanwhile
    await snapshotAndStop(deps, row, { by: "owner_disabled", reason })
      .then(() => stopped.push(id))
      .catch(() => {}); // snapshotAndStop logged it and left the project in error
  }
  return stopped;
}
