import type { MiddlewareHandler } from "hono";
import { readRefreshCookie } from "@/web/http/cookies.ts";
import type { AuthService } from "@/auth/service.ts";
import { hashToken } from "@/auth/tokens.ts";
import type { AppEnv, Viewer } from "@/web/http/types.ts";
import { safeNext } from "./next.ts";

export type { Viewer };

/**
 * The refresh cookie's session, read without rotating it: pages are plain GETs that a
 * browser may send in parallel and repeat, and only the JSON refresh endpoint rotates.
 * A token rotated within the reuse grace window still counts, because a navigation can
 * carry the old cookie while an island's refresh is in flight. Anything else (unknown,
 * expired, rotated long ago, revoked, user disabled) is no session.
 */
export async function findPageSession(
  auth: AuthService,
  refreshToken: string | undefined,
): Promise<Viewer | null> {
  if (!refreshToken || refreshToken.length > 512) return null;
  const now = auth.clock();
  const graceStart = new Date(now.getTime() - auth.config.jwt.refreshReuseGraceSeconds * 1000);
  const [row] = await auth.sql<Viewer[]>`
    SELECT s.user_id, u.email, u.role, s.id AS session_id
    FROM refresh_tokens rt
      JOIN sessions s ON s.id = rt.session_id
      JOIN users u ON u.id = s.user_id
    WHERE rt.token_hash = ${await hashToken(refreshToken)}
      AND (rt.rotated_at IS NULL OR rt.rotated_at > ${graceStart})
      AND rt.expires_at > ${now} AND s.expires_at > ${now}
      AND s.revoked_at IS NULL AND u.disabled_at IS NULL`;
  return row ?? null;
}

/**
 * Sets c.var.viewer for every page route (null when logged out) and, for a logged-in
 * viewer, c.var.actor: the same actor the API's bearer check sets.
 */
export function loadViewer(auth: AuthService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const viewer = await findPageSession(auth, readRefreshCookie(c));
    c.set("viewer", viewer);
    if (viewer) {
      const { userId, role, sessionId } = viewer;
      c.set("actor", { userId, role, sessionId, via: "session", ...c.var.request });
    }
    await next();
  };
}

/**
 * Pages behind a login: without a session, 303 to /login?next=<where the user was>. For a
 * form post that is the page the form was on, not the action URL.
 */
export const requireViewer: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.var.viewer) return await next();
  const url = new URL(c.req.url);
  const back = c.req.method === "GET" || c.req.method === "HEAD"
    ? url.pathname + url.search
    : pageOfAction(url.pathname);
  return c.redirect(`/login?next=${encodeURIComponent(safeNext(back))}`, 303);
};

/** /dashboard/projects/<id>/stop → /dashboard/projects/<id>; /dashboard/admin/... → admin. */
function pageOfAction(path: string): string {
  const project = /^\/dashboard\/projects\/[^/]+(?=\/)/.exec(path);
  if (project) return project[0];
  if (path.startsWith("/dashboard/admin/")) return "/dashboard/admin";
  return "/dashboard";
}
