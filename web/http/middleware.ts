import type { Hono, MiddlewareHandler } from "hono";
import { PatternRouter } from "hono/router/pattern-router";
import { routePath } from "hono/route";
import { AppError } from "@/core/errors.ts";
import type { Logger } from "@/core/log.ts";
import { resolveClientIp } from "./client-ip.ts";
import type { Metrics } from "./metrics.ts";
import type { AppEnv } from "./types.ts";

const wellFormedRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** c.var.request (request id, client IP, user agent), one log line and the metrics of every request. */
export function observe(
  log: Logger,
  metrics: Metrics,
  trustedProxies: string[],
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && wellFormedRequestId.test(incoming)
      ? incoming
      : crypto.randomUUID();
    const ip = resolveClientIp(c, trustedProxies);
    c.set("request", { ip, requestId, userAgent: c.req.header("user-agent") });
    try {
      await next();
    } finally {
      c.res.headers.set("X-Request-Id", requestId);
      const matched = routePath(c, -1);
      const route = matched === "/*" || matched === "*" ? "unmatched" : matched;
      const seconds = (performance.now() - started) / 1000;
      metrics.observeRequest(c.req.method, route, c.res.status, seconds);
      log.info("request", {
        method: c.req.method,
        route,
        status: c.res.status,
        duration_ms: Math.round(seconds * 10000) / 10,
        request_id: requestId,
        ip,
      });
    }
  };
}

/**
 * requireJsonBody for every route under `prefix` except those of `formRoutes` (mounted at
 * `prefix`), which take HTML forms or form-encoded OAuth requests and check the type
 * themselves. Read off those routes, so it holds wherever they are mounted.
 */
export function jsonBodiesExcept(
  prefix: string,
  // deno-lint-ignore no-explicit-any -- any router's routes
  formRoutes: Hono<any, any, any>,
): MiddlewareHandler<AppEnv> {
  const takesForms = new PatternRouter<true>();
  for (const r of formRoutes.routes) {
    if (r.method !== "ALL") takesForms.add(r.method, `${prefix}${r.path}`, true);
  }
  return (c, next) =>
    takesForms.match(c.req.method, c.req.path)[0].length > 0 ? next() : requireJsonBody(c, next);
}

/** API bodies are JSON; anything else with a body is refused before a handler reads it. */
const requireJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const length = c.req.header("content-length");
  let hasBody = c.req.raw.body !== null && length !== "0";
  if (hasBody && length === undefined && !c.req.header("transfer-encoding")) {
    // Deno.serve hands a bodiless POST or DELETE (`curl -X DELETE`, fetch) an empty stream
    // rather than null; without framing headers, look (Hono caches what is read for the handler).
    hasBody = (await c.req.arrayBuffer()).byteLength > 0;
  }
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (hasBody && !["GET", "HEAD"].includes(c.req.method) && type !== "application/json") {
    throw new AppError(
      "unsupported_media_type",
      415,
      "Send the body as application/json",
    );
  }
  await next();
};
