import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import { clearRefreshCookie, readRefreshCookie, setRefreshCookie } from "@/web/http/cookies.ts";
import { issueClientToken, oauthError } from "@/auth/clients.ts";
import { registrationClosed } from "@/auth/invites.ts";
import { login, logout, logoutEverywhere, refreshSession, type TokenPair } from "@/auth/login.ts";
import { requireLoginSession, requireSameOrigin, requireUser } from "@/web/http/auth.ts";
import { PASSWORD_MAX_LENGTH, passwordLengthProblem } from "@/auth/passwords.ts";
import { findUserById, registerUser } from "@/auth/users.ts";
import { AppError, unauthorized, validationError } from "@/core/errors.ts";
import { createRouter, errorResponses } from "@/web/http/router.ts";
import type { AppContext, AppEnv } from "@/web/http/types.ts";

const Email = z.email().max(254).openapi({ example: "ada@example.com" });
const NewPassword = z.string().superRefine((value, ctx) => {
  const problem = passwordLengthProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
}).openapi({ minLength: 8, maxLength: PASSWORD_MAX_LENGTH });
// Login takes any password up to a bound: policy applies when one is chosen, not when typed.
const AnyPassword = z.string().min(1).max(1024);
const Credentials = z.object({ email: Email, password: AnyPassword });
const RefreshBody = z.object({ refresh_token: z.string().min(1).max(512) });

const TokenPairSchema = z.object({
  access_token: z.string(),
  refresh_token: z.string(),
  token_type: z.literal("bearer"),
  expires_in: z.number().int(),
}).openapi("TokenPair");
const AccessOnly = z.object({
  access_token: z.string(),
  token_type: z.literal("bearer"),
  expires_in: z.number().int(),
}).openapi("BrowserAccessToken");
const Me = z.object({
  id: z.uuid(),
  email: z.string(),
  role: z.enum(["user", "admin"]),
  created_at: z.string(),
}).openapi("Me");

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const jsonOrForm = <T extends z.ZodType>(schema: T) => ({
  content: {
    "application/json": { schema },
    "application/x-www-form-urlencoded": { schema },
  },
});
const noContent = { description: "Done" };
const rateLimitedResponse = { description: "Rate limited (Retry-After says when to retry)" };
export const bearer = [{ bearerAuth: [] }];

/** REGISTRATION=closed: 403 registration_closed, whatever the request. */
function refuseWhenClosed(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (_c, next) => {
    if (deps.config.registration === "closed") throw registrationClosed();
    await next();
  };
}

/** Token answers must never be cached (RFC 6749 §5.1). */
function noStore(c: AppContext) {
  c.header("Cache-Control", "no-store");
  c.header("Pragma", "no-cache");
}

const pairBody = (p: TokenPair) => ({
  access_token: p.accessToken,
  refresh_token: p.refreshToken,
  token_type: "bearer" as const,
  expires_in: p.expiresIn,
});

/** /auth: the JSON API of accounts and sessions. */
export function authRoutes(deps: AppDeps) {
  const { auth } = deps;
  const app = createRouter();
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "An access token (JWT), a personal API key (pdx_...) or a client token",
  });

  app.openapi(
    createRoute({
      method: "post",
      path: "/register",
      tags: ["auth"],
      description: "Sign up, as REGISTRATION allows: open (anyone; invite_code is ignored), " +
        "invite (with an unused, unexpired, unrevoked invite code, which this uses up) or " +
        "closed (nobody)",
      // Closed is closed whatever the body says: checked before the body is validated.
      middleware: [refuseWhenClosed(deps)] as const,
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({
                email: Email,
                password: NewPassword,
                invite_code: z.string().max(256).optional().openapi({
                  description: "An invite code (pdxinv_...), needed when REGISTRATION=invite",
                }),
              }),
            },
          },
        },
      },
      responses: {
        201: json(z.object({ user_id: z.uuid() }), "Registered"),
        403: {
          description: "registration_closed; invite_required (no code given); invite_invalid " +
            "(the code is unknown, used, expired or revoked: one answer for all)",
        },
        409: { description: "email_taken" },
        422: errorResponses[422],
        429: rateLimitedResponse,
      },
    }),
    async (c) => {
      const { invite_code, ...credentials } = c.req.valid("json");
      const { userId } = await registerUser(
        auth,
        { ...credentials, inviteCode: invite_code },
        c.var.request,
      );
      return c.json({ user_id: userId }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/login",
      tags: ["auth"],
      request: {
        body: { required: true, content: { "application/json": { schema: Credentials } } },
      },
      responses: {
        200: json(TokenPairSchema, "A new session"),
        401: {
          description: "invalid_credentials, for a wrong password and an unknown email alike",
        },
        422: errorResponses[422],
        429: rateLimitedResponse,
      },
    }),
    async (c) => {
      const pair = await login(auth, c.req.valid("json"), c.var.request);
      noStore(c);
      return c.json(pairBody(pair), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/refresh",
      tags: ["auth"],
      request: {
        body: { required: true, content: { "application/json": { schema: RefreshBody } } },
      },
      responses: {
        200: json(TokenPairSchema, "A new pair; the presented refresh token is now dead"),
        401: {
          description: "Unknown, expired, revoked or reused. A rotated token presented again " +
            "after REFRESH_TOKEN_REUSE_GRACE_SECONDS (10) revokes the whole session (a stolen " +
            "token); within that window the session is kept (a client's retry of a lost answer)",
        },
        429: rateLimitedResponse,
      },
    }),
    async (c) => {
      const { refresh_token } = c.req.valid("json");
      const pair = await refreshSession(auth, refresh_token, c.var.request);
      noStore(c);
      return c.json(pairBody(pair), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/logout",
      tags: ["auth"],
      request: {
        body: { required: true, content: { "application/json": { schema: RefreshBody } } },
      },
      responses: { 204: { description: "The session is revoked, its access tokens with it" } },
    }),
    async (c) => {
      await logout(auth, c.req.valid("json").refresh_token, c.var.request);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/logout-all",
      tags: ["auth"],
      security: bearer,
      middleware: [requireUser(deps), requireLoginSession] as const,
      responses: {
        204: { description: "Every session of the user is revoked" },
        401: errorResponses[401],
      },
    }),
    async (c) => {
      await logoutEverywhere(auth, c.var.actor.userId, c.var.request);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/me",
      tags: ["auth"],
      security: bearer,
      middleware: [requireUser(deps)] as const,
      responses: { 200: json(Me, "The caller"), 401: errorResponses[401] },
    }),
    async (c) => {
      const user = await findUserById(auth.sql, c.var.actor.userId);
      if (!user) throw unauthorized();
      return c.json({
        id: user.id,
        email: user.email,
        role: user.role,
        created_at: user.createdAt.toISOString(),
      }, 200);
    },
  );

  return app;
}

/**
 * Routes that take HTML-form bodies as well as JSON: the dashboard's cookie sessions and
 * the OAuth client_credentials grant. The app's JSON-only rule exempts exactly these
 * (jsonBodiesExcept in web/http/middleware.ts).
 */
export function authFormRoutes(deps: AppDeps) {
  const { auth, config } = deps;
  const app = createRouter();
  const sameOrigin = requireSameOrigin(config);

  app.openapi(
    createRoute({
      method: "post",
      path: "/browser/login",
      tags: ["auth", "browser"],
      description:
        "Dashboard login: the refresh token goes into an HttpOnly cookie, never the body",
      middleware: [sameOrigin, jsonOrFormBody] as const,
      request: { body: jsonOrForm(Credentials) },
      responses: {
        200: json(AccessOnly, "Logged in; Set-Cookie carries the refresh token"),
        401: { description: "invalid_credentials" },
        403: { description: "csrf_failed: not a same-origin request" },
        429: rateLimitedResponse,
      },
    }),
    async (c) => {
      const credentials = bodyOf(c, c.req.valid("json"), c.req.valid("form"));
      const pair = await login(auth, credentials, c.var.request, "browser");
      setRefreshCookie(c, pair.refreshToken, pair.sessionExpiresAt, auth.clock());
      noStore(c);
      return c.json(accessOnly(pair), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/browser/refresh",
      tags: ["auth", "browser"],
      middleware: [sameOrigin] as const,
      responses: {
        200: json(AccessOnly, "A new access token; Set-Cookie carries the rotated refresh token"),
        401: { description: "No cookie, or its token is unknown, expired, revoked or reused" },
        403: { description: "csrf_failed" },
      },
    }),
    async (c) => {
      const token = readRefreshCookie(c);
      if (!token) throw unauthorized("No session cookie");
      const pair = await refreshSession(auth, token, c.var.request);
      setRefreshCookie(c, pair.refreshToken, pair.sessionExpiresAt, auth.clock());
      noStore(c);
      return c.json(accessOnly(pair), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/browser/logout",
      tags: ["auth", "browser"],
      middleware: [sameOrigin] as const,
      responses: { 204: noContent, 403: { description: "csrf_failed" } },
    }),
    async (c) => {
      const token = readRefreshCookie(c);
      if (token) await logout(auth, token, c.var.request);
      clearRefreshCookie(c);
      return c.body(null, 204);
    },
  );

  const TokenRequest = z.object({
    grant_type: z.string().max(64),
    client_id: z.string().max(64).optional(),
    client_secret: z.string().max(256).optional(),
    scope: z.string().max(256).optional(),
  });
  app.openapi(
    createRoute({
      method: "post",
      path: "/token",
      tags: ["auth", "clients"],
      description: "OAuth 2.0 client_credentials grant (RFC 6749 §4.4); client authentication " +
        "by HTTP Basic or client_id/client_secret in the body",
      middleware: [jsonOrFormBody] as const,
      request: { body: jsonOrForm(TokenRequest) },
      responses: {
        200: json(
          z.object({
            access_token: z.string(),
            token_type: z.literal("bearer"),
            expires_in: z.number().int(),
            scope: z.string(),
          }),
          "A short-lived access token (no refresh token)",
        ),
        400: { description: "unsupported_grant_type, invalid_request or invalid_scope" },
        401: { description: "invalid_client" },
        429: rateLimitedResponse,
      },
    }),
    async (c) => {
      const body = bodyOf(c, c.req.valid("json"), c.req.valid("form"));
      if (body.grant_type !== "client_credentials") {
        throw oauthError("unsupported_grant_type", 400, "Only client_credentials is supported");
      }
      const client = clientCredentials(c.req.header("authorization"), body);
      const issued = await issueClientToken(
        auth,
        { ...client, scope: body.scope },
        c.var.request,
      );
      noStore(c);
      return c.json({
        access_token: issued.accessToken,
        token_type: "bearer" as const,
        expires_in: issued.expiresIn,
        scope: issued.scope,
      }, 200);
    },
  );

  return app;
}

/** GET /.well-known/jwks.json: what verifies our access tokens offline. */
export function wellKnownRoutes(deps: AppDeps) {
  const app = createRouter();
  app.openapi(
    createRoute({
      method: "get",
      path: "/.well-known/jwks.json",
      tags: ["auth"],
      responses: {
        200: json(
          z.object({ keys: z.array(z.record(z.string(), z.string())) }),
          "The active signing key and retired ones whose tokens may still be valid",
        ),
      },
    }),
    async (c) => {
      // Short cache: after a rotation, verifiers should see the new key within a minute.
      c.header("Cache-Control", "public, max-age=60");
      return c.json((await deps.auth.keys.jwks()) as { keys: Record<string, string>[] }, 200);
    },
  );
  return app;
}

const accessOnly = (p: TokenPair) => ({
  access_token: p.accessToken,
  token_type: "bearer" as const,
  expires_in: p.expiresIn,
});

/** JSON or an HTML form; anything else is 415 in our error shape. */
const jsonOrFormBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (!["application/json", "application/x-www-form-urlencoded"].includes(type)) {
    throw new AppError(
      "unsupported_media_type",
      415,
      "Send the body as application/json or application/x-www-form-urlencoded",
    );
  }
  await next();
};

/** The validated body, from whichever of JSON or form the request used. */
function bodyOf<T>(c: AppContext, fromJson: T | Record<string, never>, fromForm: T): T {
  const isForm = (c.req.header("content-type") ?? "").toLowerCase().startsWith(
    "application/x-www-form-urlencoded",
  );
  const body = isForm ? fromForm : fromJson;
  if (!body || Object.keys(body).length === 0) {
    throw validationError([{ path: "(body)", message: "a body is required" }]);
  }
  return body as T;
}

/** RFC 6749 §2.3.1: HTTP Basic (form-encoded id and secret) or the body, not both. */
function clientCredentials(
  authorization: string | undefined,
  body: { client_id?: string; client_secret?: string },
): { clientId: string; clientSecret: string } {
  const basic = authorization?.match(/^Basic +([A-Za-z0-9+/]+=*) *$/i)?.[1];
  if (basic) {
    if (body.client_secret) {
      throw oauthError("invalid_request", 400, "Authenticate the client one way, not two");
    }
    let decoded: string;
    try {
      decoded = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(basic), (ch) => ch.charCodeAt(0)),
      );
    } catch {
      throw oauthError("invalid_client", 401, "Client authentication failed");
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) throw oauthError("invalid_client", 401, "Client authentication failed");
    try {
      return {
        clientId: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " ")),
        clientSecret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " ")),
      };
    } catch {
      throw oauthError("invalid_client", 401, "Client authentication failed");
    }
  }
  if (!body.client_id || !body.client_secret) {
    throw oauthError("invalid_client", 401, "Client authentication failed");
  }
  return { clientId: body.client_id, clientSecret: body.client_secret };
}
