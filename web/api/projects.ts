import { createRoute, z } from "@hono/zod-openapi";
import { requireScope, requireUser } from "@/web/http/auth.ts";
import type { AppDeps } from "@/web/deps.ts";
import { createRouter } from "@/web/http/router.ts";
import type { AppContext } from "@/web/http/types.ts";
import { listProjects } from "@/projects/queries.ts";
import { createProject } from "@/projects/lifecycle/create.ts";
import { loadOwnedProject } from "@/web/http/owned-project.ts";
import { deleteProject } from "@/projects/lifecycle/delete.ts";
import { listBackups } from "@/projects/backups.ts";
import { startProject } from "@/projects/lifecycle/start.ts";
import { stopProject } from "@/projects/lifecycle/stop.ts";
import { recordActivity } from "@/projects/activity.ts";
import { updateProject } from "@/projects/settings.ts";
import { statuses } from "@/shared/status.ts";
import { projectSummary, projectView } from "@/projects/view.ts";
import { egressPolicies, egressView, setEgress } from "@/projects/egress.ts";
import { measureDiskUse } from "@/projects/disk.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import { invalidState } from "@/core/errors.ts";
import { issueTerminalTicket, terminalTicketRule } from "@/terminal/tickets.ts";

const ProjectSummary = z.object({
  id: z.uuid(),
  name: z.string(),
  status: z.enum(statuses),
  created_at: z.string(),
  last_active_at: z.string(),
}).openapi("ProjectSummary");

const Project = ProjectSummary.extend({
  status_reason: z.string().nullable(),
  terminal_url: z.string().nullable(),
  ssh_host: z.string().nullable(),
  ssh_port: z.number().int().nullable(),
  ssh_user: z.literal("agent"),
  ssh_public_key: z.string(),
  ssh_private_key: z.string().nullable(),
  last_backup_at: z.string().nullable(),
  last_snapshot_at: z.string().nullable(),
  last_connection_at: z.string().nullable(),
  last_activity_at: z.string(),
  last_activity_source: z.string(),
  idle_timeout_minutes: z.number().int().nullable().openapi({
    description: "Minutes of inactivity before auto-stop; null when auto-stop is off",
  }),
  auto_stop_at: z.string().nullable(),
  egress_policy: z.enum(egressPolicies),
  disk: z.object({
    workspace_used_bytes: z.number().nullable(),
    workspace_limit_bytes: z.number(),
    rootfs_used_bytes: z.number().nullable(),
    rootfs_limit_bytes: z.number(),
    measured_at: z.string().nullable(),
  }).openapi({ description: "Disk use as last measured, beside its bounds" }),
}).openapi("Project");

const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const bearer = [{ bearerAuth: [] }];

/** Login sessions and credentials that may change projects see the private key. */
const mayHoldKeys = (c: AppContext) => {
  const scopes = c.var.actor.scopes;
  return !scopes || scopes.includes("projects:write");
};

const EgressBody = z.object({
  policy: z.enum(egressPolicies),
  allowlist: z.array(z.string()).optional().openapi({
    description: "Domains (each also covers its subdomains); kept as they are when absent",
  }),
});

const Egress = z.object({
  policy: z.enum(egressPolicies),
  allowlist: z.array(z.string()),
  effective_policy: z.enum(egressPolicies).openapi({
    description: "What holds now: open degrades to allowlist where EGRESS_ALLOW_OPEN=false",
  }),
  default_policy: z.enum(egressPolicies),
  open_allowed: z.boolean(),
}).openapi("Egress");

/** /projects: the caller's sandboxes. Logic lives in projects; this maps HTTP to it. */
export function projectRoutes(deps: AppDeps) {
  const app = createRouter();
  const view = (c: AppContext, row: ProjectRow) =>
    projectView(row, deps.config, deps.secrets, { privateKey: mayHoldKeys(c) });
  app.use("*", requireUser(deps));
  // Keys and clients limited to projects:read may look, not change.
  const canRead = requireScope("projects:read"), canWrite = requireScope("projects:write");
  app.use("*", (c, next) => (["GET", "HEAD"].includes(c.req.method) ? canRead : canWrite)(c, next));
  const ownProject = loadOwnedProject(deps.sql);
  app.use("/:id", ownProject);
  app.use("/:id/*", ownProject);

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags: ["projects"],
      security: bearer,
      request: {
        query: z.object({
          status: z.enum(statuses).optional(),
          q: z.string().max(64).optional(),
          limit: z.coerce.number().int().min(1).max(100).default(50),
          cursor: z.string().max(200).optional(),
        }),
      },
      responses: { 200: json(z.array(ProjectSummary), "The caller's projects, newest first") },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const page = await listProjects(deps.sql, c.var.actor.userId, query);
      if (page.nextCursor) c.header("X-Next-Cursor", page.nextCursor);
      return c.json(page.rows.map(projectSummary), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/",
      tags: ["projects"],
      security: bearer,
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({
                name: z.string(),
                ssh_public_key: z.string().optional().openapi({
                  description: "Your own public key; then no private key is made or returned",
                }),
              }),
            },
          },
        },
      },
      responses: {
        201: json(Project, "Running, SSH reachable"),
        403: { description: "quota_exceeded" },
        502: { description: "provision_failed: nothing is left behind" },
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const row = await createProject(deps, c.var.actor, {
        name: body.name,
        sshPublicKey: body.ssh_public_key,
      });
      return c.json(await view(c, row), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: { 200: json(Project, "The project"), 404: { description: "not_found" } },
    }),
    async (c) => {
      return c.json(await view(c, await measureDiskUse(deps, c.var.project)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ status: z.literal("deleted") }), "Gone, with every resource"),
        404: { description: "not_found (also when already deleted)" },
        409: { description: "invalid_state: busy creating, snapshotting or restoring" },
      },
    }),
    async (c) => {
      await deleteProject(deps, c.var.actor, c.var.project);
      return c.json({ status: "deleted" as const }, 200);
    },
  );

  // stop and snapshot are one verb under two names, as are start and restore (API.md).
  const lifecycleVerbs = [
    {
      verb: "stop",
      run: stopProject,
      done: "Snapshot taken (committed, pushed), container stopped and removed",
      from: "running",
      failure: "snapshot_failed: the project is in error, nothing lost",
    },
    {
      verb: "snapshot",
      run: stopProject,
      done: "Same as stop",
      from: "running",
      failure: "snapshot_failed: the project is in error, nothing lost",
    },
    {
      verb: "start",
      run: startProject,
      done: "Back from the latest snapshot, same volume and key",
      from: "stopped or error",
      failure: "restore_failed: the project is in error",
    },
    {
      verb: "restore",
      run: startProject,
      done: "Same as start",
      from: "stopped or error",
      failure: "restore_failed: the project is in error",
    },
  ] as const;
  for (const { verb, run, done, from, failure } of lifecycleVerbs) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/{id}/${verb}`,
        tags: ["projects"],
        security: bearer,
        request: { params: IdParam },
        responses: {
          200: json(Project, done),
          404: { description: "not_found" },
          409: { description: `invalid_state: not ${from}` },
          502: { description: failure },
        },
      }),
      async (c) => {
        const row = await run(deps, c.var.actor, c.var.project);
        return c.json(await view(c, row), 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/backup-status",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(
          z.object({
            last_backup_at: z.string().nullable(),
            last_backup_size_bytes: z.number().nullable(),
            snapshot_image: z.string().nullable(),
            snapshot_size_bytes: z.number().nullable(),
            last_snapshot_at: z.string().nullable(),
            backups: z.array(
              z.object({ key: z.string(), size: z.number(), created_at: z.string() }),
            ),
          }),
          "Backups and the current snapshot",
        ),
        404: { description: "not_found" },
      },
    }),
    async (c) => {
      const row = c.var.project;
      const backups = await listBackups(deps, row);
      const num = (v: string | null) => (v === null ? null : Number(v));
      return c.json({
        last_backup_at: row.lastBackupAt?.toISOString() ?? null,
        last_backup_size_bytes: num(row.lastBackupSizeBytes),
        snapshot_image: row.snapshotImage,
        snapshot_size_bytes: num(row.snapshotSizeBytes),
        last_snapshot_at: row.lastSnapshotAt?.toISOString() ?? null,
        backups: backups.map((b) => ({
          key: b.key,
          size: b.size,
          created_at: b.createdAt.toISOString(),
        })),
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/{id}",
      tags: ["projects"],
      security: bearer,
      request: {
        params: IdParam,
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({
                name: z.string().optional(),
                idle_timeout_minutes: z.number().int().nullable().optional().openapi({
                  description:
                    "5-480; null for the default (IDLE_THRESHOLD_MINUTES); 0 turns auto-stop off (admins only)",
                }),
              }),
            },
          },
        },
      },
      responses: { 200: json(Project, "The updated project"), 404: { description: "not_found" } },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const row = await updateProject(deps.sql, c.var.actor, c.var.project, {
        name: body.name,
        idleTimeoutMinutes: body.idle_timeout_minutes,
        isAdmin: c.var.actor.role === "admin",
      });
      return c.json(await view(c, row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}/egress",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(Egress, "What the sandbox may reach"),
        404: { description: "not_found" },
      },
    }),
    (c) => {
      return c.json(egressView(c.var.project, deps.config.egress), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/{id}/egress",
      tags: ["projects"],
      security: bearer,
      description: "Takes effect on a running sandbox within seconds, without a restart.",
      request: {
        params: IdParam,
        body: { required: true, content: { "application/json": { schema: EgressBody } } },
      },
      responses: {
        200: json(Egress, "The new policy"),
        403: { description: "egress_open_forbidden: the operator does not allow open" },
        404: { description: "not_found" },
        422: { description: "validation_error: an unknown policy or a bad domain" },
      },
    }),
    async (c) => {
      const updated = await setEgress(deps, c.var.actor, c.var.project, c.req.valid("json"));
      return c.json(egressView(updated, deps.config.egress), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/activity",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        204: { description: "Counted as activity: the idle clock starts again" },
        404: { description: "not_found" },
      },
    }),
    async (c) => {
      await recordActivity(deps.sql, c.var.project.id, "api");
      return c.body(null, 204);
    },
  );

  // The terminal proxy's way in: a single-use, 60-second ticket instead of a long-lived
  // token in the WebSocket URL (terminal/tickets.ts, docs/TERMINAL.md).
  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/terminal-ticket",
      tags: ["projects"],
      security: bearer,
      request: { params: IdParam },
      responses: {
        200: json(
          z.object({ ticket: z.string(), expires_in: z.number().int(), terminal_url: z.string() }),
          "A single-use ticket for terminal_url (?ticket=...)",
        ),
        404: { description: "not_found" },
        409: { description: "invalid_state: the project is not running" },
        429: { description: "rate_limited" },
      },
    }),
    async (c) => {
      const principal = c.var.actor;
      await deps.auth.limiter.hit(terminalTicketRule(deps.config), principal.userId);
      const row = c.var.project;
      if (row.status !== "running") {
        throw invalidState(`The project is ${row.status}; start it to open a terminal`);
      }
      const { ticket, expiresIn } = await issueTerminalTicket(deps.sql, {
        userId: principal.userId,
        projectId: row.id,
        sessionId: principal.sessionId,
      });
      c.header("Cache-Control", "no-store");
      return c.json({
        ticket,
        expires_in: expiresIn,
        terminal_url: `${deps.config.terminal.publicUrl}/terminal/${row.id}`,
      }, 200);
    },
  );

  return app;
}
