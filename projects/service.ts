import { recordAudit } from "@/infra/audit.ts";
import type { Config } from "@/core/config.ts";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError, notFound, validationError } from "@/core/errors.ts";
import type { Logger } from "@/core/log.ts";
import type { ProjectBackends } from "./backends.ts";
import { cloudEnv, deliverCloudKey, provisionCloudIdentity } from "./cloud-identity.ts";
import { containerNameOf, type ProjectRow, volumeNameOf } from "./rows.ts";
import { startSandbox, waitForSsh } from "./sandbox.ts";
import { removeProjectResources } from "./delete.ts";
import { generateSshKeyPair, normalizePublicKey } from "./ssh-keys.ts";
import { applyStep } from "./states.ts";
import { sshKeyContext } from "./view.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { claimCapacity } from "./capacity.ts";
import { effectivePolicy } from "./egress.ts";
import { assertIsolationReady } from "./isolation.ts";

export interface ProjectDeps extends ProjectBackends {
  sql: Sql;
  config: Config;
  secrets: SecretBox;
  log: Logger;
}

/** Who asked, for the audit log. */
export interface Actor {
  userId: string;
  ip?: string;
  requestId?: string;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function validateName(raw: unknown): string {
  const name = typeof raw === "string" ? raw.trim() : "";
  if (name.length < 1 || name.length > 64) {
    throw validationError([{ path: "name", message: "must be 1-64 characters after trimming" }]);
  }
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) {
    throw validationError([{ path: "name", message: "must not contain control characters" }]);
  }
  // Format characters (Unicode Cf) are invisible, and some reorder the text around them
  // (U+202E RIGHT-TO-LEFT OVERRIDE): a name would not read as what it is.
  if (/\p{Cf}/u.test(name)) {
    throw validationError([{
      path: "name",
      message: "must not contain invisible format characters (Unicode Cf)",
    }]);
  }
  return name;
}

/** The caller's project, or 404: another user's project is answered exactly as a missing one. */
export async function getOwnedProject(sql: Sql, userId: string, id: string): Promise<ProjectRow> {
  if (!uuid.test(id)) throw notFound("Project not found");
  const [row] = await sql<ProjectRow[]>`
    SELECT * FROM projects WHERE id = ${id} AND user_id = ${userId}`;
  if (!row) throw notFound("Project not found");
  return row;
}

/**
 * Creates the row first (status creating, keys sealed), then the volume and container, then
 * waits for sshd. Any failure removes what was made and leaves the row in error.
 */
export async function createProject(
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
  const row = await insertWithinQuota(deps, actor.userId, {
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
    return await applyStep(deps.sql, id, "provisioned", { changes: sandbox });
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

async function insertWithinQuota(
  deps: ProjectDeps,
  userId: string,
  values: Record<string, unknown>,
): Promise<ProjectRow> {
  return await transaction(deps.sql, async (tx) => {
    // Locking the user row serializes this user's creates, so two at once cannot both
    // squeeze under the quota.
    const [user] = await tx<{ projectQuota: number | null }[]>`
      SELECT project_quota FROM users WHERE id = ${userId} FOR UPDATE`;
    if (!user) throw notFound("User not found");
    await claimCapacity(tx, deps.config);
    const quota = user.projectQuota ?? deps.config.defaultProjectQuota;
    const [{ count }] = await tx<{ count: number }[]>`
      SELECT count(*)::int AS count FROM projects WHERE user_id = ${userId} AND status <> 'deleting'`;
    if (count >= quota) {
      throw new AppError(
        "quota_exceeded",
        403,
        `You have ${count} of ${quota} projects; delete one to create another`,
      );
    }
    const [row] = await tx<ProjectRow[]>`INSERT INTO projects ${tx(values)} RETURNING *`;
    return row;
  }) as ProjectRow;
}

export function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.slice(0, 500);
}

export function auditOf(actor: Actor) {
  return { userId: actor.userId, actorId: actor.userId, ip: actor.ip, requestId: actor.requestId };
}
