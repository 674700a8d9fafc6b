import { AppError, notFound } from "@/core/errors.ts";
import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { isUuid } from "@/core/ids.ts";
import { claimCapacity } from "./capacity.ts";
import type { ProjectRow } from "./rows.ts";

/** The caller's project, or 404: another user's project is answered exactly as a missing one. */
export async function getOwnedProject(sql: Sql, userId: string, id: string): Promise<ProjectRow> {
  if (!isUuid(id)) throw notFound("Project not found");
  const [row] = await sql<ProjectRow[]>`
    SELECT * FROM projects WHERE id = ${id} AND user_id = ${userId}`;
  if (!row) throw notFound("Project not found");
  return row;
}

/** Inserts a project unless the user is at their quota or the host at its capacity. */
export async function insertProjectWithinQuota(
  deps: { sql: Sql; config: Config },
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
