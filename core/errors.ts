/** The HTTP statuses an AppError answers with: client and server errors that carry a body. */
export type ErrorStatus =
  | 400
  | 401
  | 403
  | 404
  | 405
  | 409
  | 410
  | 413
  | 415
  | 422
  | 429
  | 500
  | 502
  | 503
  | 504;

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
    readonly status: ErrorStatus,
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

/** An error's message, whatever was thrown. */
export const messageOf = (err: unknown): string => err instanceof Error ? err.message : String(err);

/** An error's message, bounded, as a status reason or an audit detail stores it. */
export const reasonOf = (err: unknown): string => messageOf(err).slice(0, 500);
