import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "@/web/deps.ts";
import { API_KEY_LIFETIMES, createApiKey, listApiKeys, revokeApiKey } from "@/auth/api-keys.ts";
import { requireLoginSession, requireUser } from "@/web/http/auth.ts";
import { SCOPES } from "@/auth/scopes.ts";
import { createRouter, errorResponses } from "@/web/http/router.ts";

const ApiKey = z.object({
  id: z.uuid(),
  name: z.string(),
  scopes: z.array(z.enum(SCOPES)),
  created_at: z.string(),
  expires_at: z.string(),
  last_used_at: z.string().nullable(),
}).openapi("ApiKey");

const NewApiKey = z.object({
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  name: z.string().trim().min(1).max(100).regex(/^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/, {
    message: "must not contain control characters",
  }),
  lifetime: z.enum(Object.keys(API_KEY_LIFETIMES) as [keyof typeof API_KEY_LIFETIMES]),
  scopes: z.array(z.enum(SCOPES)).min(1).optional(),
});

const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
const bearer = [{ bearerAuth: [] }];

/**
 * /auth/api-keys: personal, time-limited API keys, used as `Authorization: Bearer pdx_...`.
 * Managed only from a login session, so a leaked key cannot mint more keys.
 */
export function apiKeyRoutes(deps: AppDeps) {
  const { auth } = deps;
  const app = createRouter();
  app.use("*", requireUser(deps), requireLoginSession);

  app.openapi(
    createRoute({
      method: "post",
      path: "/",
      tags: ["api-keys"],
      security: bearer,
      request: { body: { required: true, content: { "application/json": { schema: NewApiKey } } } },
      responses: {
        201: {
          description: "The key, shown this once",
          content: { "application/json": { schema: ApiKey.extend({ key: z.string() }) } },
        },
        401: errorResponses[401],
        422: errorResponses[422],
      },
    }),
    async (c) => {
      const created = await createApiKey(
        auth,
        c.var.actor.userId,
        c.req.valid("json"),
        c.var.request,
      );
      c.header("Cache-Control", "no-store");
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["api-keys"],
      security: bearer,
      responses: {
        200: {
          description: "The caller's live keys, newest first (never the keys themselves)",
          content: { "application/json": { schema: z.array(ApiKey) } },
        },
        401: errorResponses[401],
      },
    }),
    async (c) => c.json(await listApiKeys(auth, c.var.actor.userId), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      tags: ["api-keys"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        204: { description: "Revoked: it fails from the next request on" },
        401: errorResponses[401],
        404: errorResponses[404],
      },
    }),
    async (c) => {
      await revokeApiKey(auth, c.var.actor.userId, c.req.valid("param").id, c.var.request);
      return c.body(null, 204);
    },
  );

  return app;
}
