import { ErrorPage } from "./components/pages/ErrorPage.tsx";
import type { AppError } from "@/core/errors.ts";
import { toAppError } from "@/web/http/errors.ts";
import type { Logger } from "@/core/log.ts";
import type { Dashboard } from "./mod.ts";
import { renderPage } from "./render.tsx";
import type { AppContext } from "@/web/http/types.ts";

export function notFoundPage(c: AppContext, dashboard: Dashboard): Promise<Response> {
  return renderPage(
    dashboard,
    <ErrorPage
      status={404}
      title="Page not found"
      message="There is nothing here. The link may be old, or the project may have been deleted."
    />,
    { viewer: c.var.viewer ?? null, url: c.req.url, status: 404 },
  );
}

/**
 * A thrown error as a friendly page: a login redirect for a lost session, a short
 * explanation for the expected ones, and for anything unexpected a logged error and a
 * 500 page that shows nothing of it.
 */
export function errorPage(
  c: AppContext,
  dashboard: Dashboard,
  log: Logger,
  err: unknown,
): Promise<Response> | Response {
  const known = toAppError(err);
  if (known?.status === 401) {
    return c.redirect(`/login?next=${encodeURIComponent(c.req.path)}`, 303);
  }
  if (known?.status === 404) return notFoundPage(c, dashboard);
  if (!known || known.status >= 500) {
    log.error("page error", {
      request_id: c.var.request.requestId,
      route: c.req.path,
      error: err instanceof Error ? { name: err.name, message: err.message } : String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
  }
  const { title, message } = explain(known);
  const status = known && known.status < 500 ? known.status : 500;
  const res = renderPage(
    dashboard,
    <ErrorPage
      status={status}
      title={title}
      message={message}
      requestId={c.var.request.requestId}
    />,
    { viewer: c.var.viewer ?? null, url: c.req.url, status },
  );
  return known?.extra.headers
    ? res.then((r) => {
      for (const [k, v] of Object.entries(known.extra.headers!)) r.headers.set(k, v);
      return r;
    })
    : res;
}

function explain(err: AppError | null): { title: string; message: string } {
  switch (err?.code) {
    case "csrf_failed":
      return {
        title: "This form could not be sent",
        message:
          "It was sent from another site or from a page that is too old. Go back, reload the page and try again.",
      };
    case "rate_limited":
      return {
        title: "Too many requests",
        message: `Please wait ${
          err.extra.headers?.["Retry-After"] ?? "a minute"
        } seconds and try again.`,
      };
    case "payload_too_large":
      return { title: "Too much data", message: "That form sent more data than we accept." };
    case "validation_error":
    case "bad_json":
      return { title: "That request was not valid", message: "Go back and try again." };
    case "forbidden":
    case "quota_exceeded":
    case "invalid_state":
      return { title: "Not possible", message: err.message };
  }
  if (err && err.status < 500) return { title: "That did not work", message: err.message };
  return {
    title: "Something went wrong",
    message: "Something went wrong on our side. It has been logged; please try again in a moment.",
  };
}
