import type { AuthService } from "@/auth/service.ts";
import { authenticate } from "@/auth/authenticate.ts";
import { findLiveSession } from "@/auth/sessions.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError } from "@/core/errors.ts";
import type { Status } from "@/shared/status.ts";
import { looksLikeTicket, redeemTerminalTicket } from "./tickets.ts";
import { isUuid } from "@/core/ids.ts";
import { stampTerminalConnection, touchTerminalActivity } from "@/projects/queries.ts";

export interface TerminalAccess {
  userId: string;
  containerId: string | null;
  status: Status;
}

export interface AccessDeps {
  sql: Sql;
  auth: AuthService;
}

/**
 * Whether `token` (a terminal ticket or an access token) lets its user into `projectId`'s
 * terminal: the credential is valid, its session (if any) and user are alive, and the user
 * owns the project. A yes stamps the connection (and, for a running project, activity).
 * Every no is the same null: the caller must not learn which check failed.
 */
export async function checkTerminalAccess(
  deps: AccessDeps,
  token: string,
  projectId: string,
): Promise<TerminalAccess | null> {
  if (!isUuid(projectId) || token.length === 0) return null;
  const userId = looksLikeTicket(token)
    ? await userOfTicket(deps, token, projectId)
    : await userOfAccessToken(deps, token);
  if (!userId) return null;
  // Ownership, a live user and the stamp in one statement: nothing can change in between.
  const row = await stampTerminalConnection(deps.sql, projectId, userId);
  return row ? { userId, containerId: row.containerId, status: row.status } : null;
}

async function userOfTicket(deps: AccessDeps, ticket: string, projectId: string) {
  const t = await redeemTerminalTicket(deps.sql, ticket, projectId);
  if (!t) return null;
  // A ticket dies with the login that asked for it (logout, logout-all, reuse detection).
  if (t.sessionId && !(await findLiveSession(deps.sql, t.sessionId, t.userId, deps.auth.clock()))) {
    return null;
  }
  return t.userId;
}

/**
 * The auth service's own check (signature, claims, live session or client, user not
 * disabled). Personal API keys are refused here: they are long-lived and would end up in
 * URLs and logs; their holders ask for a ticket instead. A client token needs write scope.
 */
async function userOfAccessToken(deps: AccessDeps, token: string): Promise<string | null> {
  try {
    const principal = await authenticate(deps.auth, `Bearer ${token}`);
    if (principal.via === "api_key") return null;
    if (principal.scopes && !principal.scopes.includes("projects:write")) return null;
    return principal.userId;
  } catch (err) {
    if (err instanceof AppError && err.status === 401) return null;
    throw err;
  }
}

/**
 * Terminal traffic keeps a running project from auto-stop. False when the project is not
 * running, or (with `userId`) no longer that user's or the user is disabled: the proxy then
 * ends the connection.
 */
export async function recordTerminalActivity(
  sql: Sql,
  input: { projectId: string; userId?: string; source: string },
): Promise<boolean> {
  if (!isUuid(input.projectId) || (input.userId && !isUuid(input.userId))) return false;
  return await touchTerminalActivity(sql, input);
}
