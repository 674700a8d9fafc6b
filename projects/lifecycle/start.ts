import { recordAudit } from "@/infra/audit.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import { AppError, reasonOf } from "@/core/errors.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { ensureWorkspace, workspaceExists } from "@/infra/host/workspace.ts";
import { restoreLatestBackup } from "../backups.ts";
import { claimCapacity } from "../queries.ts";
import { cloudEnv, deliverCloudKey, openCloudKey } from "../cloud-identity.ts";
import type { ProjectDeps } from "../deps.ts";
import { effectivePolicy } from "../egress.ts";
import { assertIsolationReady, usernsFor } from "../isolation.ts";
import { containerNameOf, type ProjectRow } from "../rows.ts";
import { removeSandbox, type RunningSandbox, startSandbox, waitForSsh } from "../sandbox.ts";
import { ensureImage } from "../snapshot-images.ts";
import { applyStep } from "../states.ts";

/**
 * stopped (or error) → restoring → running, by a user, when the host has room; of their
 * project as loaded by the request (the step checks the owner again, and the state).
 */
export async function startProject(deps: ProjectDeps, actor: Actor, project: ProjectRow) {
  const id = project.id;
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
