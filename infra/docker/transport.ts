import { DockerError, engineMessageOf, errorFromStatus } from "./errors.ts";

/** The highest API version this client speaks; every field we use exists from 1.24 on. */
export const MAX_API_VERSION = "1.41";

export type QueryValue = string | number | boolean | undefined | null;

export interface CallOptions {
  query?: Record<string, QueryValue>;
  /** Sent as a JSON body. */
  json?: unknown;
  /** Sent as is (tar uploads). */
  body?: Uint8Array | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** `/version` and `/_ping` also answer without the version prefix; negotiation needs that. */
  unversioned?: boolean;
}

export interface TransportOptions {
  socketPath: string;
  apiVersion?: string;
  timeoutMs?: number;
}

/** Escapes a path segment; image references keep their `/` (the engine routes `{name:.*}`). */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

export function refPath(ref: string): string {
  return ref.split("/").map(encodeURIComponent).join("/");
}

export function normalizeApiVersion(v: string): string {
  return v.startsWith("v") ? v.slice(1) : v;
}

/** Compares dotted versions numerically ("1.9" < "1.41"). */
export function compareApiVersions(a: string, b: string): number {
  const pa = normalizeApiVersion(a).split(".").map(Number);
  const pb = normalizeApiVersion(b).split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * A timer that aborts one call. Our own rather than AbortSignal.timeout so that it is
 * cleared as soon as the call ends (no stray timers) and so we know it was the deadline,
 * not something else, that cut the call.
 */
class Deadline {
  readonly controller = new AbortController();
  fired = false;
  #timer: ReturnType<typeof setTimeout>;
  constructor(readonly ms: number) {
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`deadline of ${ms} ms passed`));
    }, ms);
  }
  clear() {
    clearTimeout(this.#timer);
  }
}

/**
 * HTTP to the engine over its unix socket. Owns the one piece of state every call shares
 * (socket, version prefix, default deadline) and turns every failure into a DockerError.
 */
export class Transport {
  readonly socketPath: string;
  readonly timeoutMs: number;
  /** Without the leading "v": "1.41". */
  apiVersion: string;
  #client: Deno.HttpClient;

  constructor(opts: TransportOptions) {
    this.socketPath = opts.socketPath;
    this.apiVersion = normalizeApiVersion(opts.apiVersion ?? MAX_API_VERSION);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.#client = Deno.createHttpClient({ proxy: { transport: "unix", path: this.socketPath } });
  }

  close(): void {
    this.#client.close();
  }

  /** The request path as the engine sees it, for the hijacked connections that skip fetch. */
  pathFor(path: string, query?: Record<string, QueryValue>, unversioned = false): string {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) qs.set(k, String(v));
    }
    const q = qs.toString();
    return `${unversioned ? "" : `/v${this.apiVersion}`}${path}${q ? `?${q}` : ""}`;
  }

  /** Failure without an HTTP answer: the message says where we tried and why it failed. */
  transportError(op: string, err: unknown, deadlineMs?: number, timedOut = false): DockerError {
    if (err instanceof DockerError) return err;
    if (timedOut) {
      return new DockerError(
        0,
        op,
        `timed out after ${deadlineMs} ms waiting for the container engine at ${this.socketPath}`,
        { cause: err },
      );
    }
    const cause = err instanceof Error ? (err.cause instanceof Error ? err.cause : err) : null;
    // Drop hyper's "error sending request for url (http://docker/...)": the op says that.
    const detail = (cause ? cause.message : String(err))
      .replace(/^error sending request for url \([^)]*\): /, "");
    return new DockerError(
      0,
      op,
      `container engine unreachable at ${this.socketPath}: ${detail}`,
      { cause: err },
    );
  }

  async #fetch(
    op: string,
    method: string,
    path: string,
    opts: CallOptions,
    deadline: Deadline,
  ): Promise<Response> {
    const url = "http://docker" + this.pathFor(path, opts.query, opts.unversioned);
    const headers: Record<string, string> = { ...opts.headers };
    let body: BodyInit | undefined;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers["Content-Type"] ??= "application/x-tar";
      body = opts.body as BodyInit;
    }
    try {
      return await fetch(url, {
        method,
        headers,
        body,
        client: this.#client,
        signal: deadline.controller.signal,
        // A stream body must be declared half duplex; harmless for the others.
        duplex: "half",
      } as RequestInit);
    } catch (err) {
      throw this.transportError(op, err, deadline.ms, deadline.fired);
    }
  }

  /** One call whose answer is small: reads the whole body within the deadline. */
  async send(
    op: string,
    method: string,
    path: string,
    opts: CallOptions = {},
  ): Promise<{ status: number; text: string }> {
    const deadline = new Deadline(opts.timeoutMs ?? this.timeoutMs);
    try {
      const res = await this.#fetch(op, method, path, opts, deadline);
      try {
        return { status: res.status, text: await res.text() };
      } catch (err) {
        throw this.transportError(op, err, deadline.ms, deadline.fired);
      }
    } finally {
      deadline.clear();
    }
  }

  /** Throws unless the status is 2xx or listed in `accept` (e.g. 304 for start/stop). */
  async expect(
    op: string,
    method: string,
    path: string,
    opts: CallOptions = {},
    accept: number[] = [],
  ): Promise<{ status: number; text: string }> {
    const r = await this.send(op, method, path, opts);
    if ((r.status >= 200 && r.status < 300) || accept.includes(r.status)) return r;
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }

  async json<T>(op: string, method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const r = await this.expect(op, method, path, opts);
    try {
      return JSON.parse(r.text) as T;
    } catch {
      throw new DockerError(r.status, op, `engine answered non-JSON: ${r.text.slice(0, 200)}`);
    }
  }

  /** For inspect-style calls where "does not exist" is an answer, not an error. */
  async jsonOrNull<T>(
    op: string,
    method: string,
    path: string,
    opts: CallOptions = {},
  ): Promise<T | null> {
    const r = await this.send(op, method, path, opts);
    if (r.status === 404) return null;
    if (r.status < 200 || r.status >= 300) {
      const err = errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
      if (err.status === 404) return null; // gone while we asked (see isGoneMidRemoval)
      throw err;
    }
    try {
      return JSON.parse(r.text) as T;
    } catch {
      throw new DockerError(r.status, op, `engine answered non-JSON: ${r.text.slice(0, 200)}`);
    }
  }

  /**
   * A call whose answer is a stream (pull/push progress, tar archives). The deadline runs
   * until the stream is read to its end or cancelled, so a stalled engine cannot hang us;
   * read errors surface as DockerError too.
   */
  async stream(
    op: string,
    method: string,
    path: string,
    opts: CallOptions = {},
  ): Promise<{ status: number; headers: Headers; body: ReadableStream<Uint8Array> }> {
    const deadline = new Deadline(opts.timeoutMs ?? this.timeoutMs);
    let res: Response;
    try {
      res = await this.#fetch(op, method, path, opts, deadline);
    } catch (err) {
      deadline.clear();
      throw err;
    }
    if (res.status < 200 || res.status >= 300) {
      let text = "";
      try {
        text = await res.text();
      } catch {
        // the status says enough
      } finally {
        deadline.clear();
      }
      throw errorFromStatus(res.status, op, engineMessageOf(text, `HTTP ${res.status}`));
    }
    if (!res.body) {
      deadline.clear();
      return {
        status: res.status,
        headers: res.headers,
        body: new ReadableStream({ start: (c) => c.close() }),
      };
    }
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { done, value } = await reader.read();
          if (done) {
            deadline.clear();
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (err) {
          deadline.clear();
          controller.error(this.transportError(op, err, deadline.ms, deadline.fired));
        }
      },
      cancel: async (reason) => {
        deadline.clear();
        await reader.cancel(reason).catch(() => {});
      },
    });
    return { status: res.status, headers: res.headers, body };
  }
}
