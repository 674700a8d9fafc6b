import { recordAudit } from "@/infra/audit.ts";
import type { Sql } from "@/infra/db/database.ts";
import { containerNameOf, installationLabel, projectLabel, type ProjectRow } from "./rows.ts";
import { deprovisionCloudIdentity } from "./cloud-identity.ts";
import { removeSandbox } from "./sandbox.ts";
import { ensureWorkspace, listWorkspaces } from "@/infra/host/workspace.ts";
import { usernsFor } from "./isolation.ts";
import { reasonOf } from "@/core/errors.ts";
import type { ProjectDeps } from "./deps.ts";
import { attemptAll, finishDelete } from "./lifecycle/delete.ts";
import type { Status } from "@/shared/status.ts";
import { applyStep } from "./states.ts";
import {
  claimStuckProject,
  existingProjectIds,
  recordSshPort,
  runningProjects,
  statusOf,
  stuckProjects,
} from "./queries.ts";
import type { Step, StepOptions } from "./states.ts";
import { transaction } from "@/infra/db/transaction.ts";

/** How long a project may sit in a transitional state before the reconciler acts. */
export const stuckAfterSeconds: Partial<Record<Status, number>> = {
  creating: 180,
  snapshotting: 30 * 60,
  restoring: 10 * 60,
  deleting: 60,
};

export interface ReconcileReport {
  orphansRemoved: string[];
  markedError: string[];
  deletesFinished: string[];
  resumed: string[];
}

/**
 * Compares the database with the engine and mends what a crash or an outside hand left:
 * containers and volumes of no project, running rows without a running container, rows
 * stuck in a transitional state. Safe to run on several instances at once.
 */
export async function reconcile(
  deps: ProjectDeps,
  now: Date = new Date(),
): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    orphansRemoved: [],
    markedError: [],
    deletesFinished: [],
    resumed: [],
  };
  await finishStuck(deps, now, report);
  await removeOrphans(deps, report);
  await failVanishedContainers(deps, report);
  for (const [kind, ids] of Object.entries(report)) {
    if (ids.length > 0) deps.log.info(`reconciler: ${kind}`, { projects: ids });
  }
  return report;
}

async function removeOrphans(deps: ProjectDeps, report: ReconcileReport) {
  const ours = { [installationLabel]: deps.installationId };
  // Filtered again here: Podman ORs several label filters on volumes.
  const mine = (labels: Record<string, string> | null) =>
    labels?.[installationLabel] === deps.installationId ? labels[projectLabel] : undefined;
  const containers = await deps.engine.listContainers({ all: true, labels: ours });
  const networks = await deps.engine.listNetworks({ labels: ours });
  const claimed = new Set([
    ...containers.map((c) => mine(c.Labels)),
    ...networks.map((n) => mine(n.Labels ?? null)),
    // WORKSPACE_DIR is this installation's own: every image in it is one of ours.
    ...await listWorkspaces(deps.isolation.workspaces),
  ].filter((id): id is string => !!id && /^[0-9a-f-]{36}$/.test(id)));
  if (claimed.size === 0) return;
  const known = await existingProjectIds(deps.sql, [...claimed]);
  for (const id of claimed) {
    if (known.has(id)) continue;
    await removeSandbox(deps, id);
    await audit(deps.sql, "project.orphan_removed", id, {});
    report.orphansRemoved.push(id);
  }
}

async function failVanishedContainers(deps: ProjectDeps, report: ReconcileReport) {
  const running = await runningProjects(deps.sql);
  for (const row of running) {
    const info = row.containerId ? await deps.engine.inspectContainer(row.containerId) : null;
    if (info?.State.Running) continue;
    // A stop may have begun since the list was read: its container is meant to go down.
    if ((await statusOf(deps.sql, row.id)) !== "running") continue;
    if (info) {
      // Stopped behind our back (engine restart, OOM): bring it back once before giving up.
      // After a host restart its workspace is not mounted yet.
      const restarted = await remountWorkspace(deps, row)
        .then(() => deps.engine.startContainer(info.Id))
        .then(() => true, () => false);
      if (restarted) {
        await recordRestartedPort(deps, row, info.Id);
        report.resumed.push(row.id);
        continue;
      }
    }
    const reason = info ? `container stopped (${info.State.Status})` : "container disappeared";
    await markError(deps, row.id, reason, report, "running");
  }
}

/**
 * An ephemeral host port may change on restart (Docker gives a new one; Podman keeps it):
 * the API must show the one SSH answers on now. Failing to read it leaves the old one (the
 * container runs either way), and says so.
 */
async function recordRestartedPort(deps: ProjectDeps, row: ProjectRow, containerId: string) {
  try {
    const port = deps.engine.hostPortOf(await deps.engine.inspectContainer(containerId), "22/tcp");
    if (port !== null && port !== row.sshHostPort) {
      await recordSshPort(deps.sql, row.id, port);
    }
  } catch (err) {
    deps.log.warn("reconciler: the SSH port of a restarted container is unknown", {
      project_id: row.id,
      error: reasonOf(err),
    });
  }
}

async function remountWorkspace(deps: ProjectDeps, row: ProjectRow) {
  const { agentHostUid } = await usernsFor(deps);
  await ensureWorkspace(deps.isolation.workspaces, row.id, agentHostUid);
}

/** Live instances beat every few seconds; one silent this long is gone. */
export const HEARTBEAT_TIMEOUT_SECONDS = 15;

async function finishStuck(deps: ProjectDeps, now: Date, report: ReconcileReport) {
  const deadBefore = new Date(now.getTime() - HEARTBEAT_TIMEOUT_SECONDS * 1000);
  for (const [status, seconds] of Object.entries(stuckAfterSeconds)) {
    const cutoff = new Date(now.getTime() - seconds! * 1000);
    // Stuck: past the state's deadline, or its worker instance is no longer alive.
    const since = { cutoff, deadBefore };
    for (const row of await stuckProjects(deps.sql, status as Status, since)) {
      try {
        // Taken over before it is mended, so that of several instances' reconcilers exactly
        // one acts (two used to finish the same delete): the claim re-checks "stuck" on the
        // row as it is now, and makes it this instance's work with a fresh deadline. If the
        // mending fails, any live instance tries again once that deadline has passed.
        if (!(await claimStuckProject(deps.sql, row, deps.instanceId, since))) continue;
        await finishOne(deps, row, report);
      } catch (err) {
        deps.log.warn("reconciler could not mend a project", {
          project_id: row.id,
          error: reasonOf(err),
        });
      }
    }
  }
}

/** `row` as it was found (its status_changed_at from before the claim). */
async function finishOne(deps: ProjectDeps, row: ProjectRow, report: ReconcileReport) {
  const info = await deps.engine.inspectContainer(containerNameOf(row.id));
  switch (row.status) {
    case "deleting":
      await finishDelete(deps, row, (tx) => audit(tx, "project.delete_finished", row.id, {}));
      report.deletesFinished.push(row.id);
      return;
    case "creating":
      // A service account made before the crash would outlive the create otherwise.
      await attemptAll(deps, row.id, [
        () => removeSandbox(deps, row.id),
        () => deprovisionCloudIdentity(deps, row.id),
      ]);
      await markError(deps, row.id, "creation was interrupted", report, "creating");
      return;
    case "snapshotting": {
      const snapshotTaken = row.lastSnapshotAt !== null &&
        row.lastSnapshotAt >= row.statusChangedAt;
      if (info?.State.Running && !snapshotTaken) {
        await stepAndAudit(deps, row.id, "snapshotAbandoned", {
          reason: "a snapshot was interrupted; the project kept running",
        }, "project.snapshot_abandoned");
        report.resumed.push(row.id);
      } else if (snapshotTaken) {
        // The snapshot was recorded before the crash: finish the stop (the container may be
        // gone already, its workspace still mounted).
        await removeSandbox(deps, row.id, { keepVolume: true });
        await stepAndAudit(deps, row.id, "stopped", {
          changes: { containerId: null, sshHostPort: null },
        }, "project.stop_finished");
        report.resumed.push(row.id);
      } else {
        await markError(deps, row.id, "a snapshot was interrupted", report, "snapshotting");
      }
      return;
    }
    case "restoring": {
      const port = deps.engine.hostPortOf(info, "22/tcp");
      if (info?.State.Running && port) {
        await stepAndAudit(deps, row.id, "started", {
          changes: { containerId: info.Id, sshHostPort: port, lastActiveAt: new Date() },
        }, "project.start_finished");
        report.resumed.push(row.id);
      } else {
        await removeSandbox(deps, row.id, { keepVolume: true });
        await markError(deps, row.id, "a start was interrupted", report, "restoring");
      }
      return;
    }
  }
}

async function markError(
  deps: ProjectDeps,
  projectId: string,
  reason: string,
  report: ReconcileReport,
  expected: Status,
) {
  // Moved on meanwhile (a stop or delete won the race): nothing to mark, and the rest of
  // the pass goes on.
  const row = await stepAndAudit(
    deps,
    projectId,
    "failed",
    {
      reason,
      onlyFrom: [expected],
      orNull: true,
    },
    "project.error",
    { reason },
  );
  if (!row) return;
  report.markedError.push(projectId);
}

/**
 * A reconciler's step and its audit record, in one transaction: an instance killed between
 * the two would otherwise leave a mended project with no record of who mended it.
 */
async function stepAndAudit(
  deps: ProjectDeps,
  projectId: string,
  step: Step,
  opts: StepOptions,
  event: string,
  details: Record<string, unknown> = {},
): Promise<ProjectRow | null> {
  return await transaction(deps.sql, async (tx) => {
    const row = opts.orNull
      ? await applyStep(tx, projectId, step, { ...opts, orNull: true })
      : await applyStep(tx, projectId, step, { ...opts, orNull: false });
    if (row) await audit(tx, event, projectId, details);
    return row;
  });
}

function audit(sql: Sql, event: string, projectId: string, details: Record<string, unknown>) {
  return recordAudit(sql, { event, projectId, details: { by: "reconciler", ...details } });
}
