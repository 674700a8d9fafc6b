import { recordAudit } from "@/infra/audit.ts";
import type { Sql } from "@/infra/db/database.ts";
import { forbidden, notFound, validationError } from "@/core/errors.ts";
import { updateSettings } from "./queries.ts";
import { type ProjectRow, SHORTEST_IDLE_TIMEOUT_MINUTES } from "./rows.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import { validateName } from "./names.ts";

export interface ProjectSettings {
  name?: string;
  /** undefined: unchanged; null: the default; 0: never auto-stop (admins only). */
  idleTimeoutMinutes?: number | null;
  isAdmin: boolean;
}

/** Renames a project or sets its idle timeout; `project` is the owner's, as the request loaded it. */
export async function updateProject(
  sql: Sql,
  actor: Actor,
  project: ProjectRow,
  settings: ProjectSettings,
): Promise<ProjectRow> {
  const id = project.id;
  const changes: Record<string, unknown> = {};
  if (settings.name !== undefined) changes.name = validateName(settings.name);
  const minutes = settings.idleTimeoutMinutes;
  if (minutes !== undefined) {
    if (minutes === 0 && !settings.isAdmin) {
      throw forbidden("Only administrators can turn auto-stop off");
    }
    const shortest = SHORTEST_IDLE_TIMEOUT_MINUTES;
    if (minutes !== null && minutes !== 0 && (minutes < shortest || minutes > 480)) {
      throw validationError([
        {
          path: "idle_timeout_minutes",
          message: `must be ${shortest}-480, null for the default, or 0 for off`,
        },
      ]);
    }
    changes.idleTimeoutMinutes = minutes;
  }
  if (Object.keys(changes).length === 0) return project;
  // Changing the settings is itself activity: the new timeout counts from now.
  const row = await updateSettings(sql, id, actor.userId, changes);
  if (!row) throw notFound("Project not found"); // deleted since the request loaded it
  await recordAudit(sql, {
    event: "project.updated",
    ...auditOf(actor),
    projectId: id,
    details: { fields: Object.keys(changes) },
  });
  return row;
}
