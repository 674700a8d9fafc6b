import type { VNode } from "preact";
import { AppError } from "@/core/errors.ts";
import type { AppContext } from "@/web/http/types.ts";
import type { Dashboard } from "./mod.ts";
import { renderPage } from "./render.tsx";

/** Renders a page for this request's viewer. */
export function pageRenderer(dashboard: Dashboard) {
  return (c: AppContext, page: VNode, status = 200) =>
    renderPage(dashboard, page, { viewer: c.var.viewer ?? null, url: c.req.url, status });
}

/** A rate-limit error's wait, in whole seconds, from its Retry-After header. */
export function retryAfterSeconds(err: AppError): number {
  return Math.max(1, Number(err.extra.headers?.["Retry-After"] ?? 60) || 60);
}

export const isAppError = (err: unknown, ...codes: string[]): err is AppError =>
  err instanceof AppError && (codes.length === 0 || codes.includes(err.code));
