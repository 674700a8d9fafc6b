import type { MiddlewareHandler } from "hono";
import type { Sql } from "@/infra/db/database.ts";
import { getOwnedProject } from "@/projects/queries.ts";
import type { AppEnv } from "./types.ts";

/**
 * For /projects/:id routes, after the actor is known: sets c.var.project to the caller's
 * project, loaded once for the whole request. Another user's project is a 404, exactly as
 * a missing one. The lifecycle functions take this row and still name the owner in their
 * own UPDATEs, so a row that changed since it was loaded cannot be misused.
 */
export function loadOwnedProject(sql: Sql): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("project", await getOwnedProject(sql, c.var.actor.userId, c.req.param("id") ?? ""));
    await next();
  };
}
