import { recordAudit } from "@/infra/audit.ts";
import type { Sql } from "@/infra/db/database.ts";
import {
  afterCursor,
  containsPattern,
  cursorColumn,
  type Page,
  toPage,
} from "@/infra/db/paging.ts";
import { notFound } from "@/core/errors.ts";
import type { AuthService } from "./service.ts";
import type { Actor } from "@/core/actor.ts";
import { adminUserView, type UserRow } from "./users.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { type AdminProjectRow, listEveryonesProjects } from "@/projects/queries.ts";
import { projectSummary } from "@/projects/view.ts";
import type { AdminProjectSummary } from "@/shared/project.ts";

type AdminUserRow = UserRow & { projectQuota: number | null };

export type { Page };

export async function listUsers(
  sql: Sql,
  query: { q?: string; limit: number; cursor?: string },
): Promise<Page<ReturnType<typeof adminUserView>>> {
  const rows = await sql<(AdminUserRow & { cursorUs: string })[]>`
    SELECT id, email, role, created_at, disabled_at, project_quota, ${cursorColumn(sql)}
    FROM users
    WHERE TRUE
      ${query.q ? sql`AND email ILIKE ${containsPattern(query.q)}` : sql``}
      ${afterCursor(sql, query.cursor)}
    ORDER BY created_at DESC, id DESC
    LIMIT ${query.limit + 1}`;
  return toPage(rows, query.limit, adminUserView);
}

/**
 * Sets how many projects a user may have (null: the default, DEFAULT_PROJECT_QUOTA). A
 * lower quota than their count removes nothing; it only refuses new creates.
 */
export async function setProjectQuota(
  auth: AuthService,
  userId: string,
  quota: number | null,
  actor: Actor,
): Promise<ReturnType<typeof adminUserView>> {
  return await transaction(auth.sql, async (tx) => {
    const [user] = await tx<AdminUserRow[]>`
      UPDATE users SET project_quota = ${quota}, updated_at = ${auth.clock()}
      WHERE id = ${userId}
      RETURNING id, email, role, created_at, disabled_at, project_quota`;
    if (!user) throw notFound("No such user");
    await recordAudit(tx, {
      event: "admin.user_quota_changed",
      userId,
      actorId: actor.userId,
      ip: actor.ip,
      requestId: actor.requestId,
      details: { project_quota: quota },
    });
    return adminUserView(user);
  });
}

export type { AdminProjectRow };

export function adminProjectView(p: AdminProjectRow): AdminProjectSummary {
  return { ...projectSummary(p), user_id: p.userId, owner_email: p.ownerEmail };
}

/** Everyone's projects, newest first, with their owner. */
export async function listAllProjects(
  sql: Sql,
  query: { status?: string; userId?: string; limit: number; cursor?: string },
): Promise<Page<AdminProjectSummary>> {
  const page = await listEveryonesProjects(sql, query);
  return { ...page, rows: page.rows.map(adminProjectView) };
}
