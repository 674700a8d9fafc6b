import { recordAudit } from "@/infra/audit.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import { AppError, reasonOf } from "@/core/errors.ts";
import { cloudEnv, deliverCloudKey, provisionCloudIdentity } from "../cloud-identity.ts";
import type { ProjectDeps } from "../deps.ts";
import { effectivePolicy } from "../egress.ts";
import { assertIsolationReady } from "../isolation.ts";
import { validateName } from "../names.ts";
import { insertProjectWithinQuota } from "../queries.ts";
import { containerNameOf, type ProjectRow, volumeNameOf } from "../rows.ts";
import { startSandbox, waitForSsh } from "../sandbox.ts";
import { generateSshKeyPair, normalizePublicKey } from "../ssh-keys.ts";
import { applyStep } from "../states.ts";
import { sshKeyContext } from "../view.ts";
import { removeProjectResources } from "./delete.ts";

/** A new project, created, provisioned and reachable over SSH (the API's POST /projects). */
export async function createProject(
  deps: ProjectDeps,
  actor: Actor,
  input: { name: unknown; sshPublicKey?: unknown },
): Promise<ProjectRow> {
  return await provisionProject(deps, actor, await createProjectRow(deps, actor, input));
}

/**
 * The project's row (status creating, keys sealed), within the user's quota and the host's
 * capacity; what it runs comes next, from provisionProject.
 */
export async function createProjectRow(
  deps: ProjectDeps,
  actor: Actor,
  input: { name: unknown; sshPublicKey?: unknown },
): Promise<ProjectRow> {
  const name = validateName(input.name);
  await assertIsolationReady(deps);
  const ownKey = typeof input.sshPublicKey === "string" && input.sshPublicKey.trim() !== ""
    ? normalizePublicKey(input.sshPublicKey)
    : null;
  const id = crypto.randomUUID();
  const keys = ownKey ? null : await generateSshKeyPair(`pomodex-${id}`);
  const row = await insertProjectWithinQuota(deps, actor.userId, {
    id,
    userId: actor.userId,
    name,
    sshPublicKey: ownKey ?? keys!.publicKey,
    sshPrivateKeyEncrypted: keys
      ? await deps.secrets.seal(keys.privateKey, sshKeyContext(id))
      : null,
    containerName: containerNameOf(id),
    volumeName: volumeNameOf(id),
    gcsPrefix: `projects/${id}/`,
    workerId: deps.instanceId,
  });
  await recordAudit(deps.sql, { event: "project.create", ...auditOf(actor), projectId: id });
  return row;
}

/**
 * A creating project's volume and container, then sshd's answer: running. Any failure
 * removes what was made and leaves the row in error with the reason.
 */
export async function provisionProject(
  deps: ProjectDeps,
  actor: Actor,
  row: ProjectRow,
): Promise<ProjectRow> {
  const id = row.id;
  try {
    const cloudKey = await provisionCloudIdentity(deps, id);
    const sandbox = await startSandbox(deps, {
      projectId: id,
      userId: actor.userId,
      image: deps.config.engine.sandboxImage,
      sshPublicKey: row.sshPublicKey,
      env: cloudEnv(deps, id),
      directEgress: effectivePolicy(row, deps.config.egress) === "open",
    });
    if (cloudKey) {
      await deliverCloudKey(deps.engine, sandbox.containerId, cloudKey, cloudEnv(deps, id));
    }
    await waitForSsh(deps.config.engine.hostIp, sandbox.sshHostPort);
    return await applyStep(deps.sql, id, "provisioned", {
      userId: actor.userId,
      changes: sandbox,
    });
  } catch (err) {
    const reason = reasonOf(err);
    deps.log.warn("project create failed", { project_id: id, reason });
    await removeProjectResources(deps, { id, gcsPrefix: `projects/${id}/` }).catch((cleanupErr) =>
      deps.log.error("cleanup after failed create failed", {
        project_id: id,
        error: reasonOf(cleanupErr),
      })
    );
    await applyStep(deps.sql, id, "failed", { reason: `create failed: ${reason}` })
      .catch(() => {}); // deleted meanwhile: nothing left to mark
    await recordAudit(deps.sql, {
      event: "project.create_failed",
      ...auditOf(actor),
      projectId: id,
      details: { reason },
    });
    if (err instanceof AppError) throw err;
    throw new AppError("provision_failed", 502, `Could not start the sandbox: ${reason}`);
  }
}
