import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface FieldError {
  path: string;
  message: string;
}

/**
 * The one error type of the domain. Routes and services throw it; the error
 * handler in web/http/errors.ts is the only place that turns it into a response.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: ContentfulStatusCode,
    message: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const notFound = (what = "Not found") => new AppError("not_found", 404, what);

export const unauthorized = (message = "Missing or invalid credentials") =>
  new AppError("unauthorized", 401, message, { headers: { "WWW-Authenticate": "Bearer" } });

export const forbidden = (message = "Forbidden") => new AppError("forbidden", 403, message);

export const invalidState = (message: string) => new AppError("invalid_state", 409, message);

export const validationError = (errors: FieldError[]) =>
  new AppError("validation_error", 422, "The request is not valid", { errors });

export const rateLimited = (retryAfterSeconds: number) =>
  new AppError("rate_limited", 429, "Too many requests; try again later", {
    headers: { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  });

export const unavailable = (message: string) => new AppError("service_unavailable", 503, message);
