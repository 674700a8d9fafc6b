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
import { isAppError, pageRenderer } from "@/web/dashboard/http.ts";
import { keyFileName, projectDetails, quotaOf } from "@/web/dashboard/projects.ts";
import { projectSummary } from "@/projects/view.ts";
import { loadOwnedProject } from "@/web/http/owned-project.ts";
import type { AppContext, AppEnv } from "@/web/http/types.ts";
import { auditOf } from "@/core/actor.ts";
import { messageOf, notFound } from "@/core/errors.ts";
import { listBackups } from "@/projects/backups.ts";
import { deleteProject } from "@/projects/lifecycle/delete.ts";
import { listProjects } from "@/projects/queries.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import { createProjectRow, provisionProject } from "@/projects/lifecycle/create.ts";
import { validateName } from "@/projects/names.ts";
import { startProject } from "@/projects/lifecycle/start.ts";
import { stopProject } from "@/projects/lifecycle/stop.ts";
import { sshKeyContext } from "@/projects/view.ts";

/** How long a form post waits for an action before the page takes over following it. */
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
  const app = new Hono<AppEnv>();
  const pageOf = (id: string) => `/dashboard/projects/${id}`;
  const lateFailure = (what: string, id?: string) => (err: unknown) =>
    log.warn(`dashboard: ${what} failed after the page moved on`, {
      project_id: id,
      error: messageOf(err),
    });

  const listPage = async (c: AppContext, status = 200, form?: {
    name?: string;
    nameError?: string;
    error?: string;
  }) => {
    const { userId } = c.var.actor;
    const { rows } = await listProjects(sql, userId, { limit: 100 });
    const quota = await quotaOf(sql, userId, config.defaultProjectQuota);
    return render(
      c,
      <ProjectsPage projects={rows.map(projectSummary)} quota={quota} form={form} />,
      status,
    );
  };

  const projectPage = async (
    c: AppContext,
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

  app.get("/", (c) => listPage(c));

  // Returns as soon as the row exists: the project's page follows it while it is created.
  app.post("/projects", async (c) => {
    const name = (await readForm(c)).name ?? "";
    try {
      validateName(name);
    } catch (err) {
      if (!isAppError(err, "validation_error")) throw err;
      const problem = err.extra.errors?.[0]?.message ?? "is not valid";
      const nameError = name.trim() === "" ? "Give the project a name." : `The name ${problem}.`;
      return listPage(c, 422, { name, nameError });
    }
    let row: ProjectRow;
    try {
      row = await createProjectRow(deps, c.var.actor, { name });
    } catch (err) {
      if (!isAppError(err)) throw err;
      const error = err.status >= 500
        ? "The sandbox could not be started. The project is listed with the reason; try again."
        : err.message;
      return listPage(c, err.status >= 500 ? 502 : err.status, { name, error });
    }
    // A failure is on the project's page (error, with its reason) and in the log.
    provisionProject(deps, c.var.actor, row).catch(lateFailure("create", row.id));
    return c.redirect(withFlash(pageOf(row.id), "creating"), 303);
  });

  const ownProject = loadOwnedProject(sql);
  app.use("/projects/:id", ownProject);
  app.use("/projects/:id/*", ownProject);

  app.get("/projects/:id", (c) => projectPage(c, c.var.project));

  app.post("/projects/:id/:verb{stop|snapshot|start|restore}", async (c) => {
    const id = c.var.project.id;
    const verb = lifecycle[c.req.param("verb") as keyof typeof lifecycle];
    let flash: FlashCode;
    try {
      const outcome = await settleWithin(
        verb.run(deps, c.var.actor, c.var.project),
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
    const row = c.var.project;
    const typed = ((await readForm(c)).confirm ?? "").trim();
    if (typed !== row.name) {
      const error = typed ? "That is not the project's name." : "Type the project's name.";
      return projectPage(c, row, 422, { deleteForm: { typed, error } });
    }
    try {
      const outcome = await settleWithin(
        deleteProject(deps, c.var.actor, row),
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
    const row = c.var.project;
    const form = await readForm(c);
    const typed = form.allowlist ?? "";
    const input = {
      policy: form.policy,
      allowlist: typed.split(/[\s,]+/).filter(Boolean),
    };
    try {
      await setEgress(deps, c.var.actor, row, input);
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
    const row = c.var.project;
    if (!row.sshPrivateKeyEncrypted) throw notFound("This project has no private key to download");
    const key = await deps.secrets.open(row.sshPrivateKeyEncrypted, sshKeyContext(row.id));
    await recordAudit(sql, {
      event: "project.private_key_downloaded",
      ...auditOf(c.var.actor),
      projectId: row.id,
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
