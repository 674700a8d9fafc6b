import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "@/web/deps.ts";
import { listAllProjects, listUsers, setProjectQuota } from "@/auth/admin.ts";
import { MAX_PROJECT_QUOTA } from "@/core/config.ts";
import { createClient, disableClient, listClients } from "@/auth/clients.ts";
import {
  createInvite,
  INVITE_DEFAULT_DAYS,
  INVITE_MAX_DAYS,
  INVITE_MIN_DAYS,
  INVITE_NOTE_MAX_LENGTH,
  INVITE_STATUSES,
  inviteNoteProblem,
  listInvites,
  revokeInvite,
} from "@/auth/invites.ts";
import { requireAdmin } from "@/web/http/auth.ts";
import { SCOPES } from "@/auth/scopes.ts";
import { isUuid } from "@/core/ids.ts";
import { setUserDisabled } from "@/auth/users.ts";
import { messageOf, notFound } from "@/core/errors.ts";
import { stopAllProjectsOf } from "@/projects/lifecycle/stop.ts";
import { statuses } from "@/shared/status.ts";
import { createRouter, errorResponses } from "@/web/http/router.ts";
import type { AppContext } from "@/web/http/types.ts";

const AdminUser = z.object({
  id: z.uuid(),
  email: z.string(),
  role: z.enum(["user", "admin"]),
  created_at: z.string(),
  disabled_at: z.string().nullable(),
  project_quota: z.number().int().nullable().openapi({
    description: "How many projects the user may have; null: the default (DEFAULT_PROJECT_QUOTA)",
  }),
}).openapi("AdminUser");

const UserChanges = z.object({
  project_quota: z.number().int().min(0).max(MAX_PROJECT_QUOTA).nullable(),
});

const AdminProject = z.object({
  id: z.uuid(),
  name: z.string(),
  status: z.enum(statuses),
  created_at: z.string(),
  last_active_at: z.string(),
  user_id: z.uuid(),
  owner_email: z.string(),
}).openapi("AdminProject");

const Client = z.object({
  client_id: z.uuid(),
  name: z.string(),
  user_id: z.uuid(),
  scopes: z.array(z.enum(SCOPES)),
  created_by: z.uuid().nullable(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
  disabled_at: z.string().nullable(),
}).openapi("Client");

const NewClient = z.object({
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  name: z.string().trim().min(1).max(100).regex(/^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/, {
    message: "must not contain control characters",
  }),
  scopes: z.array(z.enum(SCOPES)).min(1),
  user_id: z.uuid().optional(),
});

const Invite = z.object({
  id: z.uuid(),
  status: z.enum(INVITE_STATUSES).openapi({
    description: "active (usable now), used, expired or revoked",
  }),
  note: z.string().nullable(),
  created_by: z.uuid().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  used_by: z.uuid().nullable().openapi({ description: "Who signed up with it" }),
  used_by_email: z.string().nullable(),
  used_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
}).openapi("Invite");

const NewInvite = z.object({
  expires_in_days: z.number().int().min(INVITE_MIN_DAYS).max(INVITE_MAX_DAYS).optional()
    .openapi({ description: `Lifetime in days (default ${INVITE_DEFAULT_DAYS})` }),
  note: z.string().max(1000).superRefine((value, ctx) => {
    const problem = inviteNoteProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).nullable().optional().openapi({
    maxLength: INVITE_NOTE_MAX_LENGTH,
    description: "For the admins' own use (whom it is for); no control or format characters",
  }),
});

const Paging = {
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional(),
};
const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
const bearer = [{ bearerAuth: [] }];
const forbiddenResponse = { description: "Not an administrator (or not a login session)" };
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const pagedHeaders = (c: AppContext, next: string | null) => {
  if (next) c.header("X-Next-Cursor", next);
};

/**
 * /admin: users, everyone's projects, M2M clients, invites. Administrators with a login
 * session only.
 */
export function adminRoutes(deps: AppDeps) {
  const { auth } = deps;
  const app = createRouter();
  app.use("*", requireAdmin(deps));

  app.openapi(
    createRoute({
      method: "get",
      path: "/users",
      tags: ["admin"],
      security: bearer,
      request: { query: z.object({ q: z.string().max(254).optional(), ...Paging }) },
      responses: {
        200: json(z.array(AdminUser), "Users, newest first (X-Next-Cursor for the next page)"),
        401: errorResponses[401],
        403: forbiddenResponse,
      },
    }),
    async (c) => {
      const page = await listUsers(auth.sql, c.req.valid("query"));
      pagedHeaders(c, page.nextCursor);
      return c.json(page.rows, 200);
    },
  );

  for (const action of ["disable", "enable"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/users/{id}/${action}`,
        tags: ["admin"],
        security: bearer,
        description: action === "disable"
          ? "Disables the user: every session, access token and API key of theirs dies at once, and their running projects are snapshotted and stopped (in the background)"
          : "Re-enables the user (they log in again; revoked keys stay revoked)",
        request: { params: IdParam },
        responses: {
          200: json(AdminUser, "The user"),
          401: errorResponses[401],
          403: forbiddenResponse,
          404: errorResponses[404],
          409: { description: "invalid_state: an administrator cannot disable themself" },
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        if (!isUuid(id)) throw notFound("No such user");
        const user = await setUserDisabled(auth, id, action === "disable", c.var.actor);
        if (action === "disable") {
          // In the background: a few snapshots can take a while; the checker and the
          // reconciler pick up what a crash would leave.
          stopAllProjectsOf(deps, id, "the owner's account was disabled").catch((err) =>
            deps.log.error("stopping a disabled user's projects failed", {
              user_id: id,
              error: messageOf(err),
            })
          );
        }
        return c.json(user, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "patch",
      path: "/users/{id}",
      tags: ["admin"],
      security: bearer,
      description:
        `Sets the user's project quota (0-${MAX_PROJECT_QUOTA}, or null for the default). A quota below their count removes nothing; it refuses new creates`,
      request: {
        params: IdParam,
        body: { required: true, content: { "application/json": { schema: UserChanges } } },
      },
      responses: {
        200: json(AdminUser, "The user"),
        401: errorResponses[401],
        403: forbiddenResponse,
        404: errorResponses[404],
        422: errorResponses[422],
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!isUuid(id)) throw notFound("No such user");
      const { project_quota } = c.req.valid("json");
      return c.json(await setProjectQuota(auth, id, project_quota, c.var.actor), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/projects",
      tags: ["admin"],
      security: bearer,
      request: {
        query: z.object({
          status: z.enum(statuses).optional(),
          user_id: z.uuid().optional(),
          ...Paging,
        }),
      },
      responses: {
        200: json(z.array(AdminProject), "Everyone's projects, newest first, with their owner"),
        401: errorResponses[401],
        403: forbiddenResponse,
      },
    }),
    async (c) => {
      const { user_id, ...query } = c.req.valid("query");
      const page = await listAllProjects(auth.sql, { ...query, userId: user_id });
      pagedHeaders(c, page.nextCursor);
      return c.json(page.rows as z.infer<typeof AdminProject>[], 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/clients",
      tags: ["admin", "clients"],
      security: bearer,
      description: "An M2M client acting for user_id (default: the calling admin)",
      request: { body: { required: true, content: { "application/json": { schema: NewClient } } } },
      responses: {
        201: json(Client.extend({ client_secret: z.string() }), "The secret, shown this once"),
        401: errorResponses[401],
        403: forbiddenResponse,
        422: errorResponses[422],
      },
    }),
    async (c) => {
      const { user_id, ...input } = c.req.valid("json");
      const created = await createClient(auth, c.var.actor, { ...input, userId: user_id });
      c.header("Cache-Control", "no-store");
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/clients",
      tags: ["admin", "clients"],
      security: bearer,
      responses: {
        200: json(z.array(Client), "Every client, newest first (never a secret)"),
        401: errorResponses[401],
        403: forbiddenResponse,
      },
    }),
    async (c) => c.json(await listClients(auth), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/clients/{id}/disable",
      tags: ["admin", "clients"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(Client, "Disabled: its tokens fail from the next request on"),
        401: errorResponses[401],
        403: forbiddenResponse,
        404: errorResponses[404],
      },
    }),
    async (c) => c.json(await disableClient(auth, c.req.valid("param").id, c.var.actor), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/invites",
      tags: ["admin", "invites"],
      security: bearer,
      description: "An invite code for REGISTRATION=invite: one sign-up, before it expires. " +
        "The code is in this answer only (the server keeps its hash)",
      request: {
        body: { required: false, content: { "application/json": { schema: NewInvite } } },
      },
      responses: {
        201: json(
          Invite.extend({
            code: z.string().openapi({ example: "pdxinv_..." }),
            signup_url: z.string().openapi({ description: "PUBLIC_URL/signup?invite=<code>" }),
          }),
          "The invite with its code, shown this once",
        ),
        401: errorResponses[401],
        403: forbiddenResponse,
        422: errorResponses[422],
      },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const created = await createInvite(auth, c.var.actor, {
        expiresInDays: body.expires_in_days,
        note: body.note,
      });
      c.header("Cache-Control", "no-store");
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/invites",
      tags: ["admin", "invites"],
      security: bearer,
      request: { query: z.object({ status: z.enum(INVITE_STATUSES).optional(), ...Paging }) },
      responses: {
        200: json(
          z.array(Invite),
          "Invites, newest first, with their status and never their code (X-Next-Cursor for the next page)",
        ),
        401: errorResponses[401],
        403: forbiddenResponse,
        422: errorResponses[422],
      },
    }),
    async (c) => {
      const page = await listInvites(auth, c.req.valid("query"));
      pagedHeaders(c, page.nextCursor);
      return c.json(page.rows, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/invites/{id}",
      tags: ["admin", "invites"],
      security: bearer,
      description: "Revokes an unused invite (again: no change); its code stops working at once",
      request: { params: IdParam },
      responses: {
        200: json(Invite, "The invite, now revoked"),
        401: errorResponses[401],
        403: forbiddenResponse,
        404: errorResponses[404],
        409: { description: "invite_used: someone signed up with it; it cannot be revoked" },
      },
    }),
    async (c) => c.json(await revokeInvite(auth, c.req.valid("param").id, c.var.actor), 200),
  );

  return app;
}
