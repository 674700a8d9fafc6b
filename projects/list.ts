import type { Sql } from "@/infra/db/database.ts";
import {
  afterCursor,
  containsPattern,
  cursorColumn,
  type Page,
  toPage,
} from "@/infra/db/paging.ts";
import type { ProjectRow } from "./rows.ts";
import type { Status } from "@/shared/status.ts";

export interface ListQuery {
  status?: Status;
  q?: string;
  limit: number;
  cursor?: string;
}

/** A user's projects, newest first, keyset-paged. */
export async function listProjects(
  sql: Sql,
  userId: string,
  query: ListQuery,
): Promise<Page<ProjectRow>> {
  const rows = await sql<(ProjectRow & { cursorUs: string })[]>`
    SELECT *, ${cursorColumn(sql)}
    FROM projects
    WHERE user_id = ${userId}
      ${query.status ? sql`AND status = ${query.status}` : sql``}
      ${query.q ? sql`AND name ILIKE ${containsPattern(query.q)}` : sql``}
      ${afterCursor(sql, query.cursor)}
    ORDER BY created_at DESC, id DESC
    LIMIT ${query.limit + 1}`;
  return toPage(rows, query.limit, (row) => row);
}
