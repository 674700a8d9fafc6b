import { Hono } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import { AdminPage, type AdminPageProps } from "@/web/dashboard/components/pages/AdminPage.tsx";
import { listAllProjects, listUsers, setProjectQuota } from "@/auth/admin.ts";
import {
  createInvite,
  INVITE_MAX_DAYS,
  INVITE_MIN_DAYS,
  inviteDaysProblem,
  inviteNoteProblem,
  listInvites,
  revokeInvite,
} from "@/auth/invites.ts";
import { MAX_PROJECT_QUOTA } from "@/core/config.ts";
import { isUuid } from "@/core/ids.ts";
import { setUserDisabled } from "@/auth/users.ts";
import { readForm } from "@/web/dashboard/csrf.ts";
import { withFlash } from "@/web/dashboard/flash.ts";
import { isAppError, pageRenderer } from "@/web/dashboard/http.ts";
import type { AppContext, AppEnv } from "@/web/http/types.ts";
import { notFound } from "@/core/errors.ts";

const PAGE_SIZE = 100;
const DAYS_PROBLEM =
  `An invite expires after a whole number of days from ${INVITE_MIN_DAYS} to ${INVITE_MAX_DAYS}.`;

/** /dashboard/admin: users (disable, enable, quota), invites and everyone's projects. Admins only. */
export function adminPages(deps: AppDeps) {
  const render = pageRenderer(deps.dashboard);
  const app = new Hono<AppEnv>();
  // Not an admin: the page does not exist for them (no hint that it does).
  app.use("*", async (c, next) => {
    if (c.var.actor.role !== "admin") throw notFound("No such page");
    await next();
  });

  /** The page, with the invite form's state or the invite just made when there is one. */
  const adminPage = async (
    c: AppContext,
    extra: Pick<AdminPageProps, "inviteForm" | "createdInvite"> = {},
    status = 200,
  ) => {
    const users = await listUsers(deps.sql, {
      limit: PAGE_SIZE,
      cursor: c.req.query("users") || undefined,
    });
    const projects = await listAllProjects(deps.sql, {
      limit: PAGE_SIZE,
      cursor: c.req.query("projects") || undefined,
    });
    const invites = await listInvites(deps.auth, {
      limit: PAGE_SIZE,
      cursor: c.req.query("invites") || undefined,
    });
    return render(
      c,
      <AdminPage
        users={{ rows: users.rows, next: users.nextCursor }}
        projects={{ rows: projects.rows, next: projects.nextCursor }}
        defaultQuota={deps.config.defaultProjectQuota}
        invites={{ rows: invites.rows, next: invites.nextCursor }}
        registration={deps.config.registration}
        {...extra}
      />,
      status,
    );
  };

  app.get("/", (c) => adminPage(c));

  // The answer is the page itself, not a redirect: the code is in this response only (pages
  // are never cached), and no URL ever carries it.
  app.post("/invites", async (c) => {
    const form = await readForm(c);
    const days = (form.expires_in_days ?? "").trim();
    const note = form.note ?? "";
    const daysValue = /^\d{1,3}$/.test(days) ? Number(days) : NaN;
    const errors = {
      days: inviteDaysProblem(daysValue) ? DAYS_PROBLEM : undefined,
      note: inviteNoteProblem(note) ? `The note ${inviteNoteProblem(note)}.` : undefined,
    };
    if (errors.days || errors.note) {
      return adminPage(c, { inviteForm: { days, note, errors } }, 422);
    }
    const created = await createInvite(deps.auth, c.var.actor, {
      expiresInDays: daysValue,
      note,
    });
    return adminPage(c, {
      createdInvite: {
        code: created.code,
        signupUrl: created.signup_url,
        expiresAt: created.expires_at,
        note: created.note,
      },
    }, 201);
  });

  app.post("/invites/:id/revoke", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw notFound("No such invite");
    try {
      await revokeInvite(deps.auth, id, c.var.actor);
    } catch (err) {
      if (isAppError(err, "invite_used")) {
        return c.redirect(withFlash("/dashboard/admin", "invite_already_used"), 303);
      }
      throw err;
    }
    return c.redirect(withFlash("/dashboard/admin", "invite_revoked"), 303);
  });

  app.post("/users/:id/:action{disable|enable}", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw notFound("No such user");
    const disable = c.req.param("action") === "disable";
    try {
      await setUserDisabled(deps.auth, id, disable, c.var.actor);
    } catch (err) {
      if (isAppError(err, "invalid_state")) {
        return c.redirect(withFlash("/dashboard/admin", "cannot_disable_self"), 303);
      }
      throw err;
    }
    return c.redirect(
      withFlash("/dashboard/admin", disable ? "user_disabled" : "user_enabled"),
      303,
    );
  });

  app.post("/users/:id/quota", async (c) => {
    const id = c.req.param("id");
    if (!isUuid(id)) throw notFound("No such user");
    const quota = parseQuota((await readForm(c)).project_quota ?? "");
    if (quota === undefined) return c.redirect(withFlash("/dashboard/admin", "quota_invalid"), 303);
    await setProjectQuota(deps.auth, id, quota, c.var.actor);
    return c.redirect(withFlash("/dashboard/admin", "quota_set"), 303);
  });

  return app;
}

/** Empty: the default (null); else a whole number up to the maximum; else undefined. */
function parseQuota(field: string): number | null | undefined {
  const text = field.trim();
  if (text === "") return null;
  if (!/^\d{1,4}$/.test(text)) return undefined;
  const quota = Number(text);
  return quota <= MAX_PROJECT_QUOTA ? quota : undefined;
}
