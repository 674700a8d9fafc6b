/** Small JSON-over-HTTPS helper for Google's REST APIs (IAM, Cloud Storage JSON API). */
import type { AccessTokenSource } from "./credentials.ts";
import { DEFAULT_TIMEOUT_MS } from "./credentials.ts";
import { GcpError, gcpErrorFromResponse, gcpErrorFromThrown } from "./errors.ts";

export const IAM_BASE_URL = "https://iam.googleapis.com";
export const STORAGE_BASE_URL = "https://storage.googleapis.com";

/** Connection options shared by every infra/gcp call. Only the base URLs differ in tests. */
export interface GcpApiOptions {
  /** Where access tokens come from (see loadCredentials). */
  credentials: AccessTokenSource;
  /** Default https://iam.googleapis.com */
  iamBaseUrl?: string;
  /** Default https://storage.googleapis.com */
  storageBaseUrl?: string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
}

export function iamUrl(opts: GcpApiOptions, path: string): string {
  return trimSlash(opts.iamBaseUrl ?? IAM_BASE_URL) + path;
}

export function storageUrl(opts: GcpApiOptions, path: string): string {
  return trimSlash(opts.storageBaseUrl ?? STORAGE_BASE_URL) + path;
}

function trimSlash(s: string): string {
  return s.replace(/\/+$/, "");
}

/**
 * Send one authenticated JSON request. Resolves with the parsed body of a 2xx answer; any
 * other answer (or a transport failure / timeout) rejects with a GcpError.
 */
export async function gcpRequest<T>(
  opts: GcpApiOptions,
  operation: string,
  method: string,
  url: string,
  body?: unknown,
): Promise<T> {
  const token = await opts.credentials.getAccessToken();
  const headers = new Headers({ authorization: `Bearer ${token}`, accept: "application/json" });
  if (body !== undefined) headers.set("content-type", "application/json; charset=utf-8");
  const doFetch = opts.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  } catch (err) {
    throw gcpErrorFromThrown(operation, err);
  }
  if (!res.ok) throw await gcpErrorFromResponse(operation, res);
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw gcpErrorFromThrown(operation, err);
  }
  try {
    return (text ? JSON.parse(text) : {}) as T;
  } catch {
    throw new GcpError({
      status: res.status,
      operation,
      googleMessage: "response is not JSON",
    });
  }
}
