import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AuthService } from "@/auth/service.ts";
import type { Sql } from "@/infra/db/database.ts";
import { notFound, unauthorized } from "@/core/errors.ts";
import { isLoopback } from "@/web/http/client-ip.ts";
import { createRouter } from "@/web/http/router.ts";
import type { AppEnv } from "@/web/http/types.ts";
import { statuses } from "@/shared/status.ts";
import { checkTerminalAccess, recordTerminalActivity } from "@/terminal/access.ts";
import type { Config } from "@/core/config.ts";
import type { Isolation } from "@/projects/isolation.ts";
import { aclOf, egressDecision } from "@/projects/egress.ts";

const FORWARDING_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip"];

/**
 * /internal/* exists only for the terminal proxy on this host. Anyone else — a peer that is
 * not loopback, or any request that passed through a proxy (it carries a forwarding header,
 * even from loopback) — gets the same 404 as an unknown route, for every /internal path.
 * Only the socket peer counts: TRUSTED_PROXIES deliberately plays no part here.
 */
export const internalOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  const peer = c.env?.remoteAddr;
  const local = peer?.transport === "tcp" && isLoopback(peer.hostname);
  if (!local || FORWARDING_HEADERS.some((h) => c.req.raw.headers.has(h))) {
    throw notFound("No such route");
  }
  await next();
};

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** A uniform "no": the proxy (and anyone probing) cannot tell which check failed. */
const denied = () => unauthorized("Invalid credentials for this project");

/**
 * The API side of the terminal proxy. Logic lives in terminal/access.ts. The routes are
 * hidden from /openapi.json: they are no part of the public API (docs/TERMINAL.md has them).
 */
export function internalRoutes(
  deps: { sql: Sql; auth: AuthService; config: Config; isolation: Isolation },
) {
  const app = createRouter();
  app.use("*", internalOnly);

  app.openapi(
    createRoute({
      method: "post",
      path: "/validate",
      tags: ["internal"],
      hide: true,
      description: "Loopback only. Checks a terminal ticket or access token against a project.",
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({ token: z.string().max(8192), project_id: z.string().max(64) }),
            },
          },
        },
      },
      responses: {
        200: json(
          z.object({
            user_id: z.uuid(),
            project_id: z.uuid(),
            container_id: z.string().nullable(),
            status: z.enum(statuses),
          }),
          "Valid: the user owns the project; last_connection_at is stamped",
        ),
        401: { description: "Not valid (one answer whatever failed)" },
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const access = await checkTerminalAccess(deps, body.token, body.project_id);
      if (!access) throw denied();
      return c.json({
        user_id: access.userId,
        project_id: body.project_id.toLowerCase(),
        container_id: access.containerId,
        status: access.status,
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/activity",
      tags: ["internal"],
      hide: true,
      description: "Loopback only. Terminal traffic: keeps a running project from auto-stop.",
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({
                project_id: z.string().max(64),
                user_id: z.string().max(64).optional(),
                source: z.enum(["terminal", "ssh"]).default("terminal"),
              }),
            },
          },
        },
      },
      responses: {
        204: { description: "Stamped" },
        404: { description: "No running project (of that user)" },
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const ok = await recordTerminalActivity(deps.sql, {
        projectId: body.project_id,
        userId: body.user_id,
        source: body.source,
      });
      if (!ok) throw notFound("Project not found or not running");
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/acl/{project_id}",
      tags: ["internal"],
      hide: true,
      description: "Loopback only. The project's network egress policy.",
      request: {
        params: z.object({
          project_id: z.string().openapi({ param: { name: "project_id", in: "path" } }),
        }),
      },
      responses: {
        200: json(
          z.object({
            project_id: z.uuid(),
            egress: z.enum(["allow-all", "allow-list", "deny-all"]),
            policy: z.enum(["open", "allowlist", "none"]),
            allowed_hosts: z.array(z.string()),
          }),
          "The policy",
        ),
        404: { description: "No such project" },
      },
    }),
    async (c) => {
      const policy = await aclOf(deps, c.req.valid("param").project_id);
      if (!policy) throw notFound("Project not found");
      return c.json(policy, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/egress/decide",
      tags: ["internal"],
      hide: true,
      description:
        "Loopback only. The egress proxy's question: may the sandbox at `src` open `method` " +
        "to host:port? Asked through its ACL helper (infra/network/egress-acl-helper.sh).",
      request: {
        query: z.object({
          src: z.string().max(64),
          host: z.string().max(300),
          port: z.coerce.number().int().min(0).max(65535),
          method: z.string().max(32),
        }),
      },
      responses: {
        204: { description: "Allowed" },
        403: { description: "Refused" },
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const allowed = await egressDecision(deps, q.src, {
        host: q.host,
        port: q.port,
        method: q.method,
      });
      return c.body(null, allowed ? 204 : 403);
    },
  );

  return app;
}
