import type { DockerClient } from "@/infra/docker/mod.ts";
import { isNotFound } from "@/infra/docker/mod.ts";
import type { Logger } from "@/core/log.ts";
import { ApiUnavailable, type InternalApi, type Validation } from "./api-client.ts";
import { serveConnection } from "./connection.ts";
import { ShellLimits } from "./limits.ts";
import {
  clampSize,
  Close,
  DEFAULT_COLS,
  DEFAULT_ROWS,
  MAX_COLS,
  MAX_ROWS,
  reconnectIdPattern,
} from "./protocol.ts";
import { type ShellClaim, ShellSession } from "./session.ts";
import type { TerminalSettings } from "./settings.ts";
import { isUuid } from "@/core/ids.ts";

export interface TerminalProxyOptions {
  engine: Pick<DockerClient, "execTty" | "signalMarked">;
  api: Pick<InternalApi, "validate" | "reportActivity">;
  log: Logger;
  settings: TerminalSettings;
  hostname?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  /** Activity is reported at most this often per connection while bytes flow. */
  activityIntervalMs?: number;
}

export interface TerminalProxy {
  addr: Deno.NetAddr;
  /** Shells alive right now, attached or waiting for a reconnect. */
  shellCount(): number;
  /** Closes every socket (1001), ends every shell, stops listening. */
  shutdown(): Promise<void>;
  /** shutdown(), for `await using proxy = startTerminalProxy(...)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A shell that may be re-attached, by project and the client's reconnect id. */
interface Reconnectable {
  userId: string;
  shell: Promise<ShellSession>;
  /** Set once started: a shell that is already ending is not worth re-attaching to. */
  started?: ShellSession;
}

/** The shell a connection will get: a fresh one, or one it re-attaches to. */
const terminalPath = /^\/terminal\/([^/]+)\/?$/;
const HANDSHAKE_DEADLINE_MS = 15_000;
/** How long shutdown waits for open sockets to take their 1001 before it cuts them. */
const CLOSE_FRAME_GRACE_MS = 2_000;

/**
 * The terminal proxy: GET /terminal/{project_id} → (POST /internal/validate) → WebSocket ⇄
 * exec TTY in the project's container. See docs/TERMINAL.md for the protocol.
 */
export function startTerminalProxy(opts: TerminalProxyOptions): TerminalProxy {
  const { settings, log } = opts;
  const limits = new ShellLimits(settings.maxConnectionsPerUser, settings.maxConnectionsPerProject);
  const shells = new Set<ShellSession>();
  const reconnectable = new Map<string, Reconnectable>();
  const sockets = new Set<WebSocket>();
  let stopping = false;

  const openShell = (
    v: Validation & { containerId: string },
    projectId: string,
    size: { cols: number; rows: number },
    release: () => void,
    reconnectKey: string | null,
  ): Promise<ShellSession> => {
    const forget = () => {
      release();
      if (reconnectKey && reconnectable.get(reconnectKey)?.shell === promise) {
        reconnectable.delete(reconnectKey);
      }
    };
    const promise = ShellSession.open(opts.engine, {
      containerId: v.containerId,
      cols: size.cols,
      rows: size.rows,
      replayBytes: reconnectKey ? settings.replayBufferBytes : 0,
      // The slot and the reconnect id go as soon as the shell starts ending, so a quick
      // reload is not refused while the old shell's hang-up finishes.
      onClosing: forget,
      onClosed: () => {
        shells.delete(shell);
        log.info("terminal: shell ended", { project_id: projectId, user_id: v.userId });
      },
    }).catch((err) => {
      forget();
      throw err;
    });
    let shell!: ShellSession;
    promise.then((s) => {
      shell = s;
      shells.add(s);
      log.info("terminal: shell started", { project_id: projectId, user_id: v.userId });
    }, () => {});
    if (reconnectKey) {
      const entry: Reconnectable = { userId: v.userId, shell: promise };
      promise.then((s) => (entry.started = s), () => {});
      reconnectable.set(reconnectKey, entry);
    }
    return promise;
  };

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    const match = terminalPath.exec(url.pathname);
    if (!match) return problem(404, "not_found", "No such route");
    if (req.method !== "GET") {
      return problem(405, "method_not_allowed", "Use GET", { Allow: "GET" });
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return problem(426, "upgrade_required", "Connect with a WebSocket", { Upgrade: "websocket" });
    }
    if (stopping) return refuse(req, Close.goingAway, "the terminal proxy is shutting down");

    // One spelling of the id for everything below (validation, the limits, reconnect ids,
    // logs): the database compares UUIDs case-insensitively, so "ABC…" and "abc…" are one
    // project and must share one count. An id that is no UUID names no project.
    const projectId = canonicalProjectId(match[1]);
    if (!projectId) return refuse(req, Close.notRunning, "no such project");
    const q = url.searchParams;
    const token = q.get("ticket") ?? q.get("token") ?? "";
    const reconnectId = q.get("reconnect");
    const size = {
      cols: clampSize(q.get("cols"), MAX_COLS) ?? DEFAULT_COLS,
      rows: clampSize(q.get("rows"), MAX_ROWS) ?? DEFAULT_ROWS,
    };
    if (!token) return refuse(req, Close.unauthorized, "a ticket or token is required");
    if (reconnectId !== null && !reconnectIdPattern.test(reconnectId)) {
      return refuse(req, Close.badRequest, "reconnect must be 8-64 of A-Z a-z 0-9 _ -");
    }

    let v: Validation | null;
    try {
      v = await opts.api.validate(token, projectId);
    } catch (err) {
      log.warn("terminal: validation unavailable", { error: (err as Error).message });
      const why = err instanceof ApiUnavailable ? "the API did not answer" : "validation failed";
      return refuse(req, Close.tryAgainLater, why);
    }
    if (!v) return refuse(req, Close.unauthorized, "invalid, spent or expired credentials");
    if (v.status !== "running" || !v.containerId) {
      return refuse(req, Close.notRunning, "the project is not running");
    }
    const valid = { ...v, containerId: v.containerId };

    const graceMs = reconnectId ? settings.reconnectGraceSeconds * 1000 : 0;
    const reconnectKey = reconnectId && graceMs > 0 ? `${projectId}/${reconnectId}` : null;
    let claim: ShellClaim;
    let existing = reconnectKey ? reconnectable.get(reconnectKey) : undefined;
    if (existing?.started?.closed) {
      reconnectable.delete(reconnectKey!); // ending (exited, or the grace ran out): start afresh
      existing = undefined;
    }
    if (existing) {
      if (existing.userId !== v.userId) {
        return refuse(req, Close.replaced, "this reconnect id is taken");
      }
      claim = { shell: existing.shell, state: "resumed", abandon: () => {} };
    } else {
      const release = limits.acquire(v.userId, projectId);
      if (!release) return refuse(req, Close.tooMany, "too many open terminals");
      let started: Promise<ShellSession> | null = null;
      let abandoned = false;
      claim = {
        state: "new",
        // Lazily: the shell starts when the socket opens, so a handshake that fails
        // leaves nothing running.
        get shell() {
          if (abandoned) return Promise.reject(new Error("abandoned"));
          return started ??= openShell(valid, projectId, size, release, reconnectKey);
        },
        abandon: () => {
          if (started) return;
          abandoned = true;
          release();
        },
      };
    }

    const { socket, response } = Deno.upgradeWebSocket(req, {
      idleTimeout: settings.pingIntervalSeconds,
    });
    sockets.add(socket);
    socket.addEventListener("close", () => sockets.delete(socket));
    const deadline = setTimeout(() => {
      if (socket.readyState !== WebSocket.CONNECTING) return;
      // The client hung up before the upgrade: Deno never opens nor closes this socket.
      sockets.delete(socket);
      claim.abandon();
    }, HANDSHAKE_DEADLINE_MS);
    socket.addEventListener("open", () => clearTimeout(deadline));
    socket.addEventListener("close", () => {
      clearTimeout(deadline);
      if (claim.state === "new") claim.abandon();
    });
    serveConnection(socket, claim, {
      projectId,
      userId: v.userId,
      reconnectId: reconnectKey ? reconnectId : null,
      graceMs,
      settings,
      api: opts.api,
      log,
      activityIntervalMs: opts.activityIntervalMs ?? 60_000,
      closeCodeFor: (err) =>
        (isNotFound(err) || isNotRunning(err)) ? Close.notRunning : Close.internalError,
    });
    return response;
  }

  // Shutdown is forced (the abort), never graceful: a client that hangs up while it is being
  // let in leaves a socket Deno keeps CONNECTING for good, and server.shutdown() waits for it
  // without end. Sockets that are open get their 1001 first.
  const cut = new AbortController();
  const server = Deno.serve({
    signal: cut.signal,
    hostname: opts.hostname ?? "0.0.0.0",
    port: opts.port ?? 9000,
    onListen: ({ hostname, port }) =>
      log.info("terminal proxy listening", { url: `http://${hostname}:${port}` }),
  }, (req) =>
    handle(req).catch((err) => {
      log.error("terminal: request failed", { error: (err as Error).message });
      return problem(500, "internal_error", "Something went wrong on our side");
    }));

  const proxy: TerminalProxy = {
    addr: server.addr,
    shellCount: () => shells.size,
    [Symbol.asyncDispose]: () => proxy.shutdown(),
    async shutdown() {
      stopping = true;
      const open = [...sockets].filter((s) => s.readyState === WebSocket.OPEN);
      for (const s of sockets) safeClose(s, Close.goingAway, "the terminal proxy is shutting down");
      const pending = [...reconnectable.values()].map((r) => r.shell.catch(() => null));
      const all = new Set([...shells, ...(await Promise.all(pending)).filter((s) => s !== null)]);
      await Promise.all([...all].map((s) => s.close(Close.goingAway, "shutting down")));
      await closedWithin(open, CLOSE_FRAME_GRACE_MS);
      cut.abort();
      await server.finished;
    },
  };
  return proxy;
}

/** Resolves once every socket has closed, or after `ms`. */
async function closedWithin(sockets: WebSocket[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closed = sockets.map((s) =>
    s.readyState === WebSocket.CLOSED
      ? Promise.resolve()
      : new Promise<void>((resolve) => s.addEventListener("close", () => resolve()))
  );
  await Promise.race([
    Promise.all(closed),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

/** The project id of a path segment, lowercased; null unless it decodes to a UUID. */
function canonicalProjectId(segment: string): string | null {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return null; // a malformed escape (%E0%A4%A)
  }
  return isUuid(id) ? id.toLowerCase() : null;
}

/** The engine says the container is not running (Docker 409, Podman 500 "state improper"). */
function isNotRunning(err: unknown): boolean {
  const e = err as { status?: number; message?: string };
  return e?.status === 409 || /not running|state improper/i.test(e?.message ?? "");
}

/**
 * Browsers cannot read the status of a refused handshake, so a refusal is a WebSocket
 * that opens and closes at once with a code that says why. Nothing else is ever sent on it.
 */
function refuse(req: Request, code: number, reason: string): Response {
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.onopen = () => safeClose(socket, code, reason);
  return response;
}

export function safeClose(socket: WebSocket, code: number, reason: string) {
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  try {
    socket.close(code, reason);
  } catch {
    // already closing
  }
}

function problem(status: number, code: string, detail: string, headers: HeadersInit = {}) {
  return Response.json({ detail, code }, { status, headers });
}
