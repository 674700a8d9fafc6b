import { Hono } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import {
  type BackupSummary,
  type EgressForm,
  ProjectPage,
} from "@/web/dashboard/components/pages/ProjectPage.tsx";
import { measureDiskUse } from "@/projects/disk.ts";
import { setEgress } from "@/projects/egress.ts";
import { ProjectsPage } from "@/web/dashboard/components/pages/ProjectsPage.tsx";
import { recordAudit } from "@/infra/audit.ts";
import { settleWithin } from "@/web/dashboard/background.ts";
import { readForm } from "@/web/dashboard/csrf.ts";
import { type FlashCode, withFlash } from "@/web/dashboard/flash.ts";
import { actorOf, isAppError, pageRenderer, type PageRequest } from "@/web/dashboard/http.ts";
import { keyFileName, projectDetails, quotaOf, summaryOf } from "@/web/dashboard/projects.ts";
import { type PageEnv, type Viewer, viewerOf } from "@/web/dashboard/session.ts";
import { notFound } from "@/core/errors.ts";
import { listBackups } from "@/projects/backups.ts";
import { deleteProject } from "@/projects/lifecycle/delete.ts";
import { listProjects } from "@/projects/list.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import { createProject } from "@/projects/lifecycle/create.ts";
import { validateName } from "@/projects/names.ts";
import { getOwnedProject } from "@/projects/queries.ts";
import { startProject } from "@/projects/lifecycle/start.ts";
import { stopProject } from "@/projects/lifecycle/stop.ts";
import { sshKeyContext } from "@/projects/view.ts";

/** How long a form post waits for an action before the page takes over following it. */
const CREATE_WAIT_MS = 2_500;
const ACTION_WAIT_MS = 1_500;
const DELETE_WAIT_MS = 3_000;

const lifecycle = {
  stop: { run: stopProject, done: "stopped", busy: "stopping" },
  snapshot: { run: stopProject, done: "stopped", busy: "stopping" },
  start: { run: startProject, done: "started", busy: "starting" },
  restore: { run: startProject, done: "started", busy: "starting" },
} as const satisfies Record<string, { run: unknown; done: FlashCode; busy: FlashCode }>;

/** /dashboard: the projects list, the create form, a project's page and its actions. */
export function projectPages(deps: AppDeps) {
  const { sql, config, log } = deps;
  const render = pageRenderer(deps.dashboard);
  const app = new Hono<PageEnv>();
  const pageOf = (id: string) => `/dashboard/projects/${id}`;
  const lateFailure = (what: string, id?: string) => (err: unknown) =>
    log.warn(`dashboard: ${what} failed after the page moved on`, {
      project_id: id,
      error: err instanceof Error ? err.message : String(err),
    });

  const listPage = async (c: PageRequest, viewer: Viewer, status = 200, form?: {
    name?: string;
    nameError?: string;
    error?: string;
  }) => {
    const { rows } = await listProjects(sql, viewer.userId, { limit: 100 });
    const quota = await quotaOf(sql, viewer.userId, config.defaultProjectQuota);
    return render(
      c,
      <ProjectsPage projects={rows.map(summaryOf)} quota={quota} form={form} />,
      status,
    );
  };

  const projectPage = async (
    c: PageRequest,
    row: ProjectRow,
    status = 200,
    forms: { deleteForm?: { typed: string; error: string }; egressForm?: EgressForm } = {},
  ) =>
    render(
      c,
      <ProjectPage
        project={projectDetails(await measureDiskUse(deps, row), config)}
        backups={await backupSummary(deps, row)}
        backupIntervalMinutes={config.backupIntervalMinutes}
        deleteForm={forms.deleteForm}
        egressForm={forms.egressForm}
      />,
      status,
    );

  app.get("/", (c) => listPage(c, viewerOf(c)));

  app.post("/projects", async (c) => {
    const viewer = viewerOf(c);
    const name = (await readForm(c)).name ?? "";
    try {
      validateName(name);
    } catch (err) {
      if (!isAppError(err, "validation_error")) throw err;
      const problem = err.extra.errors?.[0]?.message ?? "is not valid";
      const nameError = name.trim() === "" ? "Give the project a name." : `The name ${problem}.`;
      return listPage(c, viewer, 422, { name, nameError });
    }
    const startedAt = new Date();
    try {
      const outcome = await settleWithin(
        createProject(deps, actorOf(c, viewer), { name }),
        CREATE_WAIT_MS,
        lateFailure("create"),
      );
      if (outcome.done) return c.redirect(withFlash(pageOf(outcome.value.id), "created"), 303);
    } catch (err) {
      if (!isAppError(err)) throw err;
      const error = err.status >= 500
        ? "The sandbox could not be started. The project is listed with the reason; try again."
        : err.message;
      return listPage(c, viewer, err.status >= 500 ? 502 : err.status, { name, error });
    }
    const id = await findNewProject(deps, viewer.userId, name.trim(), startedAt);
    return c.redirect(withFlash(id ? pageOf(id) : "/dashboard", "creating"), 303);
  });

  app.get("/projects/:id", async (c) => {
    const row = await getOwnedProject(sql, viewerOf(c).userId, c.req.param("id"));
    return projectPage(c, row);
  });

  app.post("/projects/:id/:verb{stop|snapshot|start|restore}", async (c) => {
    const viewer = viewerOf(c);
    const id = c.req.param("id");
    const verb = lifecycle[c.req.param("verb") as keyof typeof lifecycle];
    await getOwnedProject(sql, viewer.userId, id); // another user's project: the 404 page
    let flash: FlashCode;
    try {
      const outcome = await settleWithin(
        verb.run(deps, actorOf(c, viewer), id),
        ACTION_WAIT_MS,
        lateFailure(c.req.param("verb"), id),
      );
      flash = outcome.done ? verb.done : verb.busy;
    } catch (err) {
      if (isAppError(err, "not_found") || !isAppError(err)) throw err;
      flash = isAppError(err, "invalid_state") ? "invalid_state" : "action_failed";
    }
    return c.redirect(withFlash(pageOf(id), flash), 303);
  });

  app.post("/projects/:id/delete", async (c) => {
    const viewer = viewerOf(c);
    const row = await getOwnedProject(sql, viewer.userId, c.req.param("id"));
    const typed = ((await readForm(c)).confirm ?? "").trim();
    if (typed !== row.name) {
      const error = typed ? "That is not the project's name." : "Type the project's name.";
      return projectPage(c, row, 422, { deleteForm: { typed, error } });
    }
    try {
      const outcome = await settleWithin(
        deleteProject(deps, actorOf(c, viewer), row.id),
        DELETE_WAIT_MS,
        lateFailure("delete", row.id),
      );
      return c.redirect(withFlash("/dashboard", outcome.done ? "deleted" : "deleting"), 303);
    } catch (err) {
      if (isAppError(err, "invalid_state")) {
        return c.redirect(withFlash(pageOf(row.id), "invalid_state"), 303);
      }
      throw err;
    }
  });

  app.post("/projects/:id/egress", async (c) => {
    const viewer = viewerOf(c);
    const row = await getOwnedProject(sql, viewer.userId, c.req.param("id"));
    const form = await readForm(c);
    const typed = form.allowlist ?? "";
    const input = {
      policy: form.policy,
      allowlist: typed.split(/[\s,]+/).filter(Boolean),
    };
    try {
      await setEgress(deps, row, input, actorOf(c, viewer));
    } catch (err) {
      if (!isAppError(err, "validation_error") && !isAppError(err, "egress_open_forbidden")) {
        throw err;
      }
      const problem = err.extra.errors?.[0];
      const error = problem ? `${problem.message}.` : err.message;
      return projectPage(c, row, err.status, {
        egressForm: { policy: String(form.policy ?? ""), allowlist: typed, error },
      });
    }
    return c.redirect(withFlash(pageOf(row.id), "egress_saved"), 303);
  });

  // The one way the private key reaches a browser: a download the owner asks for.
  app.get("/projects/:id/key", async (c) => {
    const viewer = viewerOf(c);
    const row = await getOwnedProject(sql, viewer.userId, c.req.param("id"));
    if (!row.sshPrivateKeyEncrypted) throw notFound("This project has no private key to download");
    const key = await deps.secrets.open(row.sshPrivateKeyEncrypted, sshKeyContext(row.id));
    await recordAudit(sql, {
      event: "project.private_key_downloaded",
      userId: viewer.userId,
      actorId: viewer.userId,
      projectId: row.id,
      ip: c.get("clientIp"),
      requestId: c.get("requestId"),
    });
    return new Response(key, {
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": `attachment; filename="${keyFileName(row.id)}"`,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
      },
    });
  });

  return app;
}

/** The count of backups kept, or "unavailable" if the store does not answer in time. */
async function backupSummary(deps: AppDeps, row: ProjectRow): Promise<BackupSummary> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const backups = await Promise.race([
      listBackups(deps, row),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), 2_000);
      }),
    ]);
    return { count: backups.length, available: true };
  } catch {
    return { count: 0, available: false };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The id of the project a create has just inserted (createProject makes it up and tells
 * only when done), so the browser can follow it while it is still being created.
 */
async function findNewProject(
  deps: AppDeps,
  userId: string,
  name: string,
  since: Date,
): Promise<string | null> {
  const deadline = Date.now() + 3_000;
  while (true) {
    const [row] = await deps.sql<{ id: string }[]>`
      SELECT id FROM projects
      WHERE user_id = ${userId} AND name = ${name}
        AND created_at >= ${new Date(since.getTime() - 5_000)}
      ORDER BY created_at DESC LIMIT 1`;
    if (row || Date.now() > deadline) return row?.id ?? null;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
