import { recordAudit } from "@/infra/audit.ts";
import { AppError } from "@/core/errors.ts";
import { backupPrefix } from "../backups.ts";
import { deprovisionCloudIdentity } from "../cloud-identity.ts";
import type { ProjectRow } from "../rows.ts";
import { removeSandbox } from "../sandbox.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import { reasonOf } from "@/core/errors.ts";
import type { ProjectDeps } from "../deps.ts";
import { deleteProjectRow, releaseFailedDelete } from "../queries.ts";
import { deleteSnapshotRepository, removeSnapshotImages } from "../snapshot-images.ts";
import { applyStep } from "../states.ts";
import type { Sql } from "@/infra/db/database.ts";
import { transaction } from "@/infra/db/transaction.ts";

/**
 * Marks the project deleting (one winner among racing deletes), then removes its
 * resources and the row. Every step tolerates "already gone", so the reconciler can
 * finish a delete that a crash interrupted.
 */
export async function deleteProject(
  deps: ProjectDeps,
  actor: Actor,
  project: ProjectRow,
): Promise<void> {
  const id = project.id;
  const row = await applyStep(deps.sql, id, "deleteRequested", {
    userId: actor.userId,
    changes: { workerId: deps.instanceId },
    // A delete in progress is not started twice; one that failed (no worker) may be retried.
    andWhere: deps.sql`(status <> 'deleting' OR worker_id IS NULL)`,
  });
  await recordAudit(deps.sql, { event: "project.delete", ...auditOf(actor), projectId: id });
  try {
    await finishDelete(deps, row);
  } catch (err) {
    // Left deleting with no worker: the reconciler takes it up on its next pass, and a
    // DELETE may try again at once.
    const reason = reasonOf(err);
    await releaseFailedDelete(deps.sql, id, `delete interrupted: ${reason}`);
    const when = deps.config.cron
      ? "the reconciler retries it on its next pass; DELETE it again to try now"
      : "DELETE it again to retry";
    throw new AppError(
      "delete_failed",
      502,
      `The project could not be deleted yet (${reason}); ${when}`,
    );
  }
}

/** `record` runs in the transaction that deletes the row (the reconciler's audit record). */
export async function finishDelete(
  deps: ProjectDeps,
  row: ProjectRow,
  record?: (tx: Sql) => Promise<unknown>,
): Promise<void> {
  await removeProjectResources(deps, row);
  await transaction(deps.sql, async (tx) => {
    await deleteProjectRow(tx, row.id);
    await record?.(tx);
  });
}

/**
 * Container, volume, snapshot images and repository, backups and cloud identity: all of it,
 * idempotently, each part tried even when another fails.
 */
export async function removeProjectResources(
  deps: ProjectDeps,
  row: Pick<ProjectRow, "id" | "gcsPrefix">,
): Promise<void> {
  await attemptAll(deps, row.id, [
    () => removeSandbox(deps, row.id),
    () => removeSnapshotImages(deps, row.id),
    () => deleteSnapshotRepository(deps, row.id),
    () => deps.backups.deletePrefix(backupPrefix(row)),
    () => deprovisionCloudIdentity(deps, row.id),
  ]);
}

/**
 * Runs every cleanup step even when an earlier one fails, so one unreachable back end (the
 * engine down during a failed create, say) does not leave the others' resources behind.
 * Later failures are logged; the first is rethrown, so the caller still sees the failure.
 */
export async function attemptAll(
  deps: Pick<ProjectDeps, "log">,
  projectId: string,
  steps: (() => Promise<unknown>)[],
): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) await step().catch((err) => failures.push(err));
  for (const err of failures.slice(1)) {
    deps.log.warn("cleanup step failed", { project_id: projectId, error: reasonOf(err) });
  }
  if (failures.length > 0) throw failures[0];
}
