import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { AppError, notFound } from "./core/errors.ts";
import { createErrorHandler, errorResponse } from "./web/http/errors.ts";
import { allowedMethodsFinder } from "./web/http/method-not-allowed.ts";
import { createMetrics } from "./web/http/metrics.ts";
import { jsonBodiesExcept, observe } from "./web/http/middleware.ts";
import type { AppEnv } from "./web/http/types.ts";
import type { AppDeps } from "./web/deps.ts";
import { healthRoutes } from "./web/api/health.ts";
import { internalOnly, internalRoutes } from "./web/api/internal.ts";
import { adminRoutes } from "./web/api/admin.ts";
import { apiKeyRoutes } from "./web/api/api-keys.ts";
import { authFormRoutes, authRoutes, wellKnownRoutes } from "./web/api/auth.ts";
import { projectRoutes } from "./web/api/projects.ts";
import { errorPage, notFoundPage } from "./web/dashboard/errors.tsx";
import { pageRoutes } from "./web/dashboard/routes/mod.ts";

/** Wires middleware and the route modules; no I/O happens here. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { config, log } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const app = new OpenAPIHono<AppEnv>();

  app.use(observe(log, metrics, config.trustedProxies));
  // Before anything that could answer first (CORS, body limits, JSON checks): outsiders must
  // get the 404 of a route that does not exist, for every /internal path.
  app.use("/internal", internalOnly);
  app.use("/internal/*", internalOnly);
  app.use(secureHeaders({ crossOriginResourcePolicy: "same-origin" }));
  if (config.corsOrigins.length > 0) {
    app.use(cors({ origin: config.corsOrigins, credentials: true, maxAge: 600 }));
  }
  app.use(
    bodyLimit({
      maxSize: config.bodyLimitBytes,
      onError: () => {
        throw new AppError("payload_too_large", 413, "The request body is too large");
      },
    }),
  );
  // API bodies are JSON, except where browsers post HTML forms and OAuth clients post
  // form-encoded token requests (those routes check the type themselves).
  const authForms = authFormRoutes(deps);
  const jsonOnly = jsonBodiesExcept("/auth", authForms);
  for (const prefix of ["/auth", "/projects", "/admin", "/internal"]) {
    app.use(prefix, jsonOnly);
    app.use(`${prefix}/*`, jsonOnly);
  }

  const checks = { database: () => deps.sql`SELECT 1`.then(() => {}), ...deps.checks };
  app.route("/", healthRoutes(checks, metrics));
  app.route("/internal", internalRoutes(deps));
  app.route("/", wellKnownRoutes(deps));
  app.route("/auth/api-keys", apiKeyRoutes(deps));
  app.route("/auth", authForms);
  app.route("/auth", authRoutes(deps));
  app.route("/admin", adminRoutes(deps));
  app.route("/projects", projectRoutes(deps));
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Pomodex API", version: "1.0.0" },
  });
  // The API's first path segments, read off its own mounts: its paths keep JSON errors even
  // for a browser, as they always did; everything else is the dashboard's.
  const apiSegments = new Set(app.routes.map((r) => firstSegment(r.path)));
  apiSegments.delete("");
  apiSegments.delete("*");
  const isApiPath = (path: string) => apiSegments.has(firstSegment(path));

  // The dashboard: pages, their form posts and /static/, with its own error pages
  // (web/dashboard/routes/mod.ts).
  app.route("/", pageRoutes(deps));

  const allowedMethods = allowedMethodsFinder(app);
  // Reached by no route at all (the dashboard answers its own paths, 404s included).
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length > 0) {
      return errorResponse(
        c,
        new AppError("method_not_allowed", 405, "Method not allowed", {
          headers: { Allow: allow.join(", ") },
        }),
      );
    }
    // A browser that strays outside the API gets the dashboard's page; clients get JSON.
    if (!isApiPath(c.req.path) && (c.req.header("accept") ?? "").includes("text/html")) {
      return notFoundPage(c, deps.dashboard);
    }
    return errorResponse(c, notFound("No such route"));
  });
  // Errors the dashboard's own handler never sees (a body over the limit, refused by the
  // app's middleware before any route) still get a page on the dashboard's paths.
  const apiErrors = createErrorHandler(log);
  app.onError((err, c) =>
    isApiPath(c.req.path) ? apiErrors(err, c) : errorPage(c, deps.dashboard, log, err)
  );
  return app;
}

const firstSegment = (path: string) => path.split("/")[1] ?? "";
