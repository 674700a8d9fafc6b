import type { MiddlewareHandler } from "hono";
import type { Config } from "@/core/config.ts";
import { AppError, forbidden, unauthorized } from "@/core/errors.ts";
import type { Actor } from "@/core/actor.ts";
import type { AppContext, AppEnv } from "./types.ts";
import { authenticate } from "@/auth/authenticate.ts";
import type { Scope } from "@/auth/scopes.ts";
import type { AuthService } from "@/auth/service.ts";

/*
 * How route modules use this file:
 *
 *   const app = createRouter();
 *   app.use("*", requireUser(deps));             // 401 unless a live credential
 *   app.post("/x", requireScope("projects:write"), handler);
 *   ... in a handler: c.var.actor.userId
 *
 * requireUser accepts, in `Authorization: Bearer <...>`, an access token of a live login
 * session, a personal API key ("pdx_..."), or an M2M client's access token. Each request
 * costs one indexed query to check the credential is still alive (logout, disable,
 * revoke and client disable all take effect on the next request).
 */

/** Sets c.var.actor, or answers 401 with WWW-Authenticate: Bearer. */
export function requireUser(deps: { auth: AuthService }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!c.var.actor) {
      const principal = await authenticate(deps.auth, c.req.header("authorization"));
      c.set("actor", { ...principal, ...c.var.request });
    }
    await next();
  };
}

/**
 * Administrators, and only through a login session: an admin's API key or a client
 * acting for an admin carries project scopes, not the admin role.
 */
export function requireAdmin(deps: { auth: AuthService }): MiddlewareHandler<AppEnv> {
  const user = requireUser(deps);
  return (c, next) =>
    user(c, async () => {
      const p = actorOf(c);
      if (p.role !== "admin" || p.via !== "session") throw forbidden("Administrators only");
      await next();
    });
}

/** After requireUser: API keys and clients need the scope; login sessions have them all. */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const p = actorOf(c);
    if (p.scopes && !p.scopes.includes(scope)) {
      throw new AppError("insufficient_scope", 403, `This credential lacks the ${scope} scope`);
    }
    await next();
  };
}

/**
 * After requireUser: only a login session may manage credentials (a leaked read-only key
 * must not mint a read-write one) or log out everywhere.
 */
export const requireLoginSession: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (actorOf(c).via !== "session") {
    throw forbidden("This needs a login session, not an API key or client token");
  }
  await next();
};

/** The actor, for the checks that follow requireUser; without one, 401 rather than a crash. */
function actorOf(c: AppContext): Actor {
  const actor = c.var.actor;
  if (!actor) throw unauthorized();
  return actor;
}

/**
 * CSRF defence for cookie-authenticated, state-changing requests (the dashboard): the
 * browser must say the request comes from our own origin, by Origin (compared with
 * PUBLIC_URL's origin) or by Sec-Fetch-Site: same-origin. Neither header can be set by a
 * cross-site page; a request with neither is refused.
 */
export function requireSameOrigin(config: Pick<Config, "publicUrl">): MiddlewareHandler<AppEnv> {
  const ownOrigin = new URL(config.publicUrl).origin;
  return async (c, next) => {
    if (!["GET", "HEAD", "OPTIONS"].includes(c.req.method)) {
      const origin = c.req.header("origin");
      const site = c.req.header("sec-fetch-site");
      if (origin !== ownOrigin && site !== "same-origin") {
        throw new AppError("csrf_failed", 403, "Cross-site request refused");
      }
    }
    await next();
  };
}
