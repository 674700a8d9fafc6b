import { Hono } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import { requirePageCsrf } from "@/web/dashboard/csrf.ts";
import { loadViewer, requireViewer } from "@/web/dashboard/session.ts";
import type { AppEnv } from "@/web/http/types.ts";
import { serveAsset } from "@/web/dashboard/static.ts";
import { adminPages } from "./admin.tsx";
import { authPages } from "./auth.tsx";
import { projectPages } from "./projects.tsx";

/**
 * The dashboard: server-rendered pages, their form posts, and /static/. Middleware is
 * bound to the page paths only, so API requests never pay for a session lookup.
 */
export function pageRoutes(deps: AppDeps) {
  const { auth, config, dashboard } = deps;
  const app = new Hono<AppEnv>();
  app.get("/static/:file", serveAsset(dashboard.assets));

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
  return app;
}
