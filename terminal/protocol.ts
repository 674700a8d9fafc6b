/**
 * The terminal WebSocket protocol (docs/TERMINAL.md). Binary frames carry terminal bytes
 * both ways; text frames carry JSON control messages.
 */

/** Close codes: the 4xxx ones mirror the HTTP status a plain request would have had. */
export const Close = {
  /** The shell exited. */
  normal: 1000,
  /** The proxy is shutting down. */
  goingAway: 1001,
  /** A frame over TERMINAL_MAX_FRAME_BYTES, or input arriving faster than the shell takes it. */
  tooBig: 1009,
  /** The engine failed to start or run the shell. */
  internalError: 1011,
  /** The API could not be asked; try again. */
  tryAgainLater: 1013,
  /** A malformed request (e.g. a bad reconnect id). */
  badRequest: 4400,
  /** The ticket or token is missing, spent, expired, not the owner's, or its user is gone. */
  unauthorized: 4401,
  /** The project does not exist for this user or is not running. */
  notRunning: 4404,
  /** No traffic either way for TERMINAL_IDLE_TIMEOUT_SECONDS. */
  idle: 4408,
  /** Another connection attached to this reconnect id. */
  replaced: 4409,
  /** Too many open terminals for this user or project. */
  tooMany: 4429,
} as const;

export const MAX_COLS = 1000;
export const MAX_ROWS = 500;
export const DEFAULT_COLS = 80;
export const DEFAULT_ROWS = 24;

export type ControlMessage = { type: "resize"; cols: number; rows: number };

/**
 * Parses a text frame. Unknown types and malformed JSON give null: clients newer than the
 * proxy may send messages it does not know, and a typo must not kill a shell.
 */
export function parseControl(text: string): ControlMessage | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof msg !== "object" || msg === null) return null;
  const m = msg as Record<string, unknown>;
  if (m.type === "resize") {
    const cols = clampSize(m.cols, MAX_COLS), rows = clampSize(m.rows, MAX_ROWS);
    if (cols === null || rows === null) return null;
    return { type: "resize", cols, rows };
  }
  return null;
}

/** A terminal dimension from a message or query string, within 1..max; null if not a number. */
export function clampSize(value: unknown, max: number): number | null {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) return null;
  return Math.min(max, Math.max(1, Math.round(n)));
}

/** Reconnect ids are chosen by the client (a UUID is ideal); anything else is refused. */
export const reconnectIdPattern = /^[A-Za-z0-9_-]{8,64}$/;

/** Server → client text frame, sent only to clients that asked for a reconnectable shell. */
export interface SessionMessage {
  type: "session";
  reconnect: string;
  /** "new": a fresh shell; "resumed": the same shell as before, replayed output follows. */
  state: "new" | "resumed";
  /** Bytes of recent output in the binary frame that follows (0: none follows). */
  replay_bytes: number;
}
