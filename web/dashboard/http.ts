import type { Context } from "hono";
import type { VNode } from "preact";
import type { RequestMeta } from "@/core/actor.ts";
import { AppError } from "@/core/errors.ts";
import type { AppContext } from "@/web/http/types.ts";
import type { Dashboard } from "./mod.ts";
import { renderPage } from "./render.tsx";
import type { PageEnv, Viewer } from "./session.ts";

/** A page route's Hono context (not to be confused with the render-time PageContext). */
export type PageRequest = Context<PageEnv>;

/** Page routes share auth's helpers, which are typed for the API's context. */
export const asAppContext = (c: PageRequest) => c as unknown as AppContext;

export function metaOf(c: PageRequest): RequestMeta {
  return {
    ip: c.get("clientIp"),
    requestId: c.get("requestId"),
    userAgent: c.req.header("user-agent"),
  };
}

/** The viewer as projects wants an actor (for ownership checks and the audit log). */
export function actorOf(c: PageRequest, viewer: Viewer) {
  return { userId: viewer.userId, ip: c.get("clientIp"), requestId: c.get("requestId") };
}

/** Renders a page for this request's viewer. */
export function pageRenderer(dashboard: Dashboard) {
  return (c: PageRequest, page: VNode, status = 200) =>
    renderPage(dashboard, page, { viewer: c.var.viewer ?? null, url: c.req.url, status });
}

/** A rate-limit error's wait, in whole seconds, from its Retry-After header. */
export function retryAfterSeconds(err: AppError): number {
  return Math.max(1, Number(err.extra.headers?.["Retry-After"] ?? 60) || 60);
}

export const isAppError = (err: unknown, ...codes: string[]): err is AppError =>
  err instanceof AppError && (codes.length === 0 || codes.includes(err.code));
