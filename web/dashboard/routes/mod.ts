import { Hono } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import { requirePageCsrf } from "@/web/dashboard/csrf.ts";
import { errorPage, notFoundPage } from "@/web/dashboard/errors.tsx";
import { loadViewer, requireViewer } from "@/web/dashboard/session.ts";
import { serveAsset } from "@/web/dashboard/static.ts";
import type { AppEnv } from "@/web/http/types.ts";
import { adminPages } from "./admin.tsx";
import { authPages } from "./auth.tsx";
import { projectPages } from "./projects.tsx";

/**
 * The dashboard: server-rendered pages, their form posts, and /static/. Middleware is
 * bound to the page paths only, so API requests never pay for a session lookup. Its
 * errors are its own: Hono keeps a sub-app's onError for the routes it mounts, so what
 * goes wrong on a page is a friendly page, while the API keeps its JSON.
 */
export function pageRoutes(deps: AppDeps) {
  const { auth, config, dashboard, log } = deps;
  const app = new Hono<AppEnv>();

  const viewer = loadViewer(auth);
  const originOnly = requirePageCsrf(config, dashboard.csrfKey, { token: false });
  const originAndToken = requirePageCsrf(config, dashboard.csrfKey, { token: true });
  for (const path of ["/", "/login", "/signup"]) app.use(path, viewer, originOnly);
  // "/dashboard/*" matches /dashboard itself too.
  for (const path of ["/logout", "/dashboard/*"]) app.use(path, viewer, originAndToken);
  app.use("/dashboard/*", requireViewer);

  app.route("/", authPages(deps));
  app.route("/dashboard/admin", adminPages(deps));
  app.route("/dashboard", projectPages(deps));

  // The 404 page for anything else under /dashboard, and for a page path asked with a
  // method it does not answer (Hono would fall through to the API's JSON 404).
  const notFound = (c: Parameters<typeof notFoundPage>[0]) => notFoundPage(c, dashboard);
  const pagePaths = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => r.path));
  for (const path of pagePaths) app.all(path, notFound);
  app.all("/dashboard/*", notFound);

  app.get("/static/:file", serveAsset(dashboard.assets));
  app.onError((err, c) => errorPage(c, dashboard, log, err));
  return app;
}
