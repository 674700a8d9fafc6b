import { HTTPException } from "hono/http-exception";
import type { Context } from "hono";
import { AppError, messageOf, validationError } from "@/core/errors.ts";
import type { Logger } from "@/core/log.ts";
import type { AppEnv } from "./types.ts";

/** postgres.js's own connection failures, and the server's "going away / not yet up" codes. */
const databaseGone = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01", // admin_shutdown: terminating connection due to administrator command
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the database system is starting up / shutting down
  "53300", // too_many_connections
]);

/**
 * The database cannot be reached (down, restarting, refusing): a 503 that says so, instead
 * of a 500. Socket errors count when they come from a connect (postgres.js is the only
 * client in a request's path that surfaces raw socket errors).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; syscall?: unknown } | null;
  if (typeof e?.code !== "string") return false;
  if (databaseGone.has(e.code) || /^08[0-9A-Z]{3}$/.test(e.code)) return true;
  const socketErrors = [
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "ENOTFOUND",
  ];
  // A write to a socket the server closed ("This socket has been ended by the other party")
  // is EPIPE with no syscall.
  return socketErrors.includes(e.code) &&
    (e.code === "EPIPE" || ["connect", "getaddrinfo", "read", "write"].includes(String(e.syscall)));
}

export const databaseUnavailable = () =>
  new AppError("database_unavailable", 503, "The database is unavailable; try again shortly", {
    headers: { "Retry-After": "5" },
  });

/**
 * PostgreSQL cannot store U+0000 in text (22021). A field that lets one through its
 * validation still gets a 422, not a 500 (the fuzzer found four: two names, two searches).
 */
function isNulRejected(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === "PostgresError" && e.code === "22021";
}

/** The one place where errors become responses: `{detail, code}` and the right status. */
export function toAppError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (isDatabaseUnavailable(err)) return databaseUnavailable();
  if (isNulRejected(err)) {
    return validationError([{ path: "(request)", message: "must not contain NUL characters" }]);
  }
  if (err instanceof HTTPException) {
    if (err.status === 400) return new AppError("bad_json", 400, "The body is not valid JSON");
    if (err.status === 413) {
      return new AppError("payload_too_large", 413, "The request body is too large");
    }
    return new AppError("http_error", err.status as 400, err.message || "Request failed");
  }
  return null;
}

export function errorResponse(c: Context<AppEnv>, err: AppError): Response {
  const body: Record<string, unknown> = { detail: err.message, code: err.code };
  if (err.extra.errors) body.errors = err.extra.errors;
  return c.json(body, err.status, err.extra.headers);
}

export function createErrorHandler(log: Logger) {
  return (err: unknown, c: Context<AppEnv>): Response => {
    const known = toAppError(err);
    if (known?.code === "database_unavailable") {
      log.warn("database unavailable", {
        request_id: c.var.request?.requestId,
        route: c.req.path,
        error: messageOf(err),
      });
    }
    if (known) return errorResponse(c, known);
    log.error("unhandled error", {
      request_id: c.var.request?.requestId,
      route: c.req.path,
      error: describeError(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
    return errorResponse(
      c,
      new AppError("internal_error", 500, "Something went wrong on our side"),
    );
  };
}

/** What the log says of an unexpected error: for PostgreSQL's, the SQLSTATE and routine too. */
function describeError(err: unknown): Record<string, unknown> | string {
  if (!(err instanceof Error)) return String(err);
  const { code, routine } = err as { code?: unknown; routine?: unknown };
  return { name: err.name, message: err.message, code, routine };
}
