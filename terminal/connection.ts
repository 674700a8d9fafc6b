import type { Logger } from "@/core/log.ts";
import type { InternalApi } from "./api-client.ts";
import { Close, parseControl, type SessionMessage } from "./protocol.ts";
import type { ShellClaim, ShellSession, Viewer } from "./session.ts";
import type { TerminalSettings } from "./settings.ts";

export interface ConnectionContext {
  projectId: string;
  userId: string;
  /** Set when the client asked for a reconnectable shell (and the feature is on). */
  reconnectId: string | null;
  /** How long the shell waits for this socket to come back once it closes. */
  graceMs: number;
  settings: TerminalSettings;
  api: Pick<InternalApi, "reportActivity">;
  log: Logger;
  activityIntervalMs: number;
  /** The close code for a shell that could not start (4404 when the container is gone). */
  closeCodeFor(err: unknown): number;
}

/** Frames that arrive while the shell is still starting wait, up to this much. */
const MAX_EARLY_BYTES = 1024 * 1024;

/**
 * One WebSocket, from open to close: frames to the shell, its output to the socket, the
 * idle timeout, and activity reports to the API while bytes flow.
 */
export function serveConnection(socket: WebSocket, claim: ShellClaim, ctx: ConnectionContext) {
  socket.binaryType = "arraybuffer";
  const idleMs = ctx.settings.idleTimeoutSeconds * 1000;
  let shell: ShellSession | null = null;
  let socketGone = false;
  let lastTrafficAt = Date.now();
  // /internal/validate stamped the project's activity just now: the next report can wait.
  let lastReportAt = Date.now();
  const early: (ArrayBuffer | string)[] = [];
  let earlyBytes = 0;

  const closeSocket = (code: number, reason: string) => {
    if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
    try {
      socket.close(code, reason);
    } catch {
      // already closing
    }
  };

  const viewer: Viewer = {
    send(bytes) {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(bytes);
      traffic();
    },
    bufferedAmount: () => socket.bufferedAmount,
    end: closeSocket,
  };

  /** Ends the shell too (no grace): the reasons for this are not network hiccups. */
  const endAll = (code: number, reason: string) => {
    if (shell) void shell.close(code, reason);
    closeSocket(code, reason);
  };

  function traffic() {
    const now = Date.now();
    lastTrafficAt = now;
    if (now - lastReportAt < ctx.activityIntervalMs) return;
    lastReportAt = now;
    ctx.api.reportActivity(ctx.projectId, ctx.userId).then((answer) => {
      if (answer === "gone") endAll(Close.notRunning, "the project is no longer running");
    }, (err) => {
      ctx.log.warn("terminal: activity report failed", {
        project_id: ctx.projectId,
        error: (err as Error).message,
      });
    });
  }

  const idleCheck = setInterval(() => {
    if (Date.now() - lastTrafficAt >= idleMs) endAll(Close.idle, "idle timeout");
  }, Math.min(Math.max(idleMs / 4, 50), 10_000));

  function frameSize(data: ArrayBuffer | string): number {
    // A string's UTF-8 size is at least its length; only long ones need the exact count.
    if (typeof data !== "string") return data.byteLength;
    return data.length * 3 <= ctx.settings.maxFrameBytes
      ? data.length
      : new TextEncoder().encode(data).length;
  }

  function handleFrame(s: ShellSession, data: ArrayBuffer | string) {
    if (frameSize(data) > ctx.settings.maxFrameBytes) {
      endAll(Close.tooBig, "frame too big");
      return;
    }
    traffic();
    if (typeof data === "string") {
      const msg = parseControl(data);
      if (msg?.type === "resize") s.resize(msg.cols, msg.rows);
      return;
    }
    if (!s.write(new Uint8Array(data))) {
      endAll(Close.tooBig, "input arrives faster than the shell reads it");
    }
  }

  socket.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
    if (shell) return handleFrame(shell, e.data);
    earlyBytes += frameSize(e.data);
    if (earlyBytes > MAX_EARLY_BYTES) {
      return endAll(Close.tooBig, "too much input before the shell started");
    }
    early.push(e.data);
  };

  socket.onopen = async () => {
    let s: ShellSession;
    try {
      s = await claim.shell;
    } catch (err) {
      ctx.log.warn("terminal: could not start a shell", {
        project_id: ctx.projectId,
        error: (err as Error).message,
      });
      closeSocket(ctx.closeCodeFor(err), "could not start a shell");
      clearInterval(idleCheck);
      return;
    }
    if (s.closed) {
      closeSocket(Close.normal, "the shell has ended");
      clearInterval(idleCheck);
      return;
    }
    const replay = s.attach(viewer);
    if (socketGone) {
      // Closed while the shell was starting: the shell gets the same grace as any other.
      s.detach(viewer, ctx.graceMs);
      return;
    }
    shell = s;
    if (ctx.reconnectId) {
      const hello: SessionMessage = {
        type: "session",
        reconnect: ctx.reconnectId,
        state: claim.state,
        replay_bytes: replay.length,
      };
      socket.send(JSON.stringify(hello));
      if (replay.length > 0) socket.send(replay);
    }
    for (const data of early.splice(0)) handleFrame(s, data);
  };

  socket.onclose = () => {
    socketGone = true;
    clearInterval(idleCheck);
    shell?.detach(viewer, ctx.graceMs);
  };
  socket.onerror = () => {
    // A close event follows; it does the cleanup.
  };
}
