/**
 * The one error type of infra/gcp (and of the GCS backup store): what failed, the HTTP status
 * and Google's own message. Built only from Google's error JSON or a transport failure, never
 * from request data, so no access token, JWT assertion or key material can end up in it.
 */

/** Google's error envelope: `{ error: { code, message, status } }`. */
export interface GoogleErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    errors?: { reason?: string; message?: string }[];
  };
}

export class GcpError extends Error {
  /** HTTP status; 0 when no response came (network failure, timeout). */
  readonly status: number;
  /** What we were doing, e.g. "iam.serviceAccounts.create". */
  readonly operation: string;
  /** Google's message (redacted), or a description of the transport failure. */
  readonly googleMessage: string;
  /** Google's canonical status name, e.g. "ALREADY_EXISTS", when it sent one. */
  readonly googleStatus?: string;

  constructor(
    init: { status: number; operation: string; googleMessage: string; googleStatus?: string },
  ) {
    const googleMessage = redactSecrets(init.googleMessage);
    const what = init.status
      ? `HTTP ${init.status}${init.googleStatus ? ` ${init.googleStatus}` : ""}`
      : "no response";
    super(`${init.operation} failed (${what}): ${googleMessage}`);
    this.name = "GcpError";
    this.status = init.status;
    this.operation = init.operation;
    this.googleMessage = googleMessage;
    this.googleStatus = init.googleStatus;
  }
}

/** Build a GcpError from a non-2xx fetch Response (reads the body). */
export async function gcpErrorFromResponse(operation: string, res: Response): Promise<GcpError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // body unreadable: the status alone will have to do
  }
  let message = res.statusText || "request failed";
  let googleStatus: string | undefined;
  try {
    const body = JSON.parse(text) as GoogleErrorBody;
    if (body?.error?.message) message = body.error.message;
    if (body?.error?.status) googleStatus = body.error.status;
    else if (body?.error?.errors?.[0]?.reason) googleStatus = body.error.errors[0].reason;
  } catch {
    if (text && text.length < 300 && !/[<{]/.test(text)) message = text.trim();
  }
  return new GcpError({ status: res.status, operation, googleMessage: message, googleStatus });
}

/** Build a GcpError from a thrown transport error (fetch TypeError, AbortSignal timeout...). */
export function gcpErrorFromThrown(operation: string, err: unknown): GcpError {
  if (err instanceof GcpError) return err;
  const e = err as { name?: string; message?: string; code?: unknown; status?: unknown };
  if (e?.name === "TimeoutError") {
    return new GcpError({ status: 0, operation, googleMessage: "timed out" });
  }
  // Client-library errors (ApiError, GaxiosError) carry Google's status in `code`/`status`.
  const status = typeof e?.code === "number"
    ? e.code
    : typeof e?.status === "number"
    ? e.status
    : 0;
  return new GcpError({
    status,
    operation,
    googleMessage: typeof e?.message === "string" ? e.message : String(err),
  });
}

/**
 * Remove anything that looks like a credential from a message: bearer/OAuth access tokens,
 * JWTs, PEM blocks and long base64 runs. Google's messages do not echo credentials, but
 * transport errors from client libraries sometimes include request details.
 */
export function redactSecrets(message: string): string {
  return message
    .replace(/-----BEGIN [^-]+-----[\s\S]*?(-----END [^-]+-----|$)/g, "[redacted key]")
    .replace(/\bBearer\s+[A-Za-z0-9._~+/=-]+/gi, "Bearer [redacted]")
    .replace(/\bya29\.[A-Za-z0-9._~+/=-]+/g, "[redacted token]")
    .replace(/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, "[redacted jwt]")
    .replace(
      /(access_token|assertion|private_key|privateKeyData)(["'=:\s]+)[^\s"'&,}]+/gi,
      "$1$2[redacted]",
    )
    .replace(/[A-Za-z0-9+/]{200,}={0,2}/g, "[redacted]");
}
