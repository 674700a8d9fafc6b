import { api, SessionEnded } from "./api.ts";

/** What the terminal screen needs from xterm (kept small so this file does not import it). */
export interface Screen {
  write(data: Uint8Array | string): void;
  reset(): void;
  readonly cols: number;
  readonly rows: number;
}

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected" }
  | { kind: "waiting"; retryInSeconds: number; why: string }
  | { kind: "ended"; why: string; canReconnect: boolean };

// docs/TERMINAL.md's close codes that a retry would not fix, with what to tell the user.
const final: Record<number, { why: string; canReconnect: boolean }> = {
  1000: { why: "The shell exited.", canReconnect: true },
  4400: { why: "The terminal refused the connection request.", canReconnect: false },
  4401: { why: "Your session has ended. Reload the page to log in again.", canReconnect: false },
  4404: { why: "The project is not running.", canReconnect: false },
  4408: { why: "Disconnected after a long time without activity.", canReconnect: true },
  4409: { why: "This terminal was opened in another tab.", canReconnect: true },
  4429: {
    why: "Too many terminals are open for this project. Close one, then reconnect.",
    canReconnect: true,
  },
};

const BACKOFF_SECONDS = [1, 2, 4, 8, 15, 30];
const encoder = new TextEncoder();

/**
 * One terminal's link to the proxy: a single-use ticket from the API, then a WebSocket
 * with binary frames both ways and JSON resize messages. A network drop (or the proxy
 * restarting) reconnects with backoff under the same reconnect id, so the proxy hands the
 * same shell back and replays its recent output; a refusal (4401, 4404, ...) stops and says
 * why.
 */
export class TerminalConnection {
  #ws: WebSocket | null = null;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reconnectId: string;
  #replayNext = false;
  #connectedBefore = false;
  #disposed = false;

  constructor(
    private readonly projectId: string,
    private readonly screen: Screen,
    private readonly onState: (state: ConnectionState) => void,
    /** The shell to re-attach to (kept across page loads by the caller), if any. */
    reconnectId: string | null,
    private readonly onReconnectId: (id: string) => void,
  ) {
    this.#reconnectId = reconnectId ?? this.#newShellId();
  }

  connect() {
    clearTimeout(this.#timer);
    if (this.#disposed) return;
    this.onState({ kind: "connecting" });
    this.#open().catch((err) => {
      if (err instanceof SessionEnded || this.#disposed) return;
      this.#retry("The terminal service did not answer.");
    });
  }

  /** After the shell ended: a fresh shell, not the old one. */
  reconnectFresh() {
    this.#connectedBefore = false;
    this.#reconnectId = this.#newShellId();
    this.#attempt = 0;
    this.connect();
  }

  send(data: string | Uint8Array) {
    if (this.#ws?.readyState !== WebSocket.OPEN) return;
    this.#ws.send(typeof data === "string" ? encoder.encode(data) : data);
  }

  resize(cols: number, rows: number) {
    if (this.#ws?.readyState !== WebSocket.OPEN) return;
    this.#ws.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  dispose() {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#ws?.close(1000);
  }

  async #open() {
    const res = await api(`/projects/${encodeURIComponent(this.projectId)}/terminal-ticket`, {
      method: "POST",
    });
    if (res.status === 409 || res.status === 404) {
      await res.body?.cancel();
      this.onState({ kind: "ended", why: final[4404].why, canReconnect: false });
      return;
    }
    if (res.status === 429) {
      const wait = Number(res.headers.get("retry-after")) || 10;
      await res.body?.cancel();
      this.#retry("Too many connection attempts.", wait);
      return;
    }
    if (!res.ok) throw new Error(`ticket: ${res.status}`);
    const { ticket, terminal_url } = await res.json() as { ticket: string; terminal_url: string };
    if (this.#disposed) return;
    const url = new URL(terminal_url);
    url.searchParams.set("ticket", ticket);
    url.searchParams.set("reconnect", this.#reconnectId);
    url.searchParams.set("cols", String(this.screen.cols));
    url.searchParams.set("rows", String(this.screen.rows));

    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    ws.onopen = () => {
      this.#attempt = 0;
      this.onState({ kind: "connected" });
      this.resize(this.screen.cols, this.screen.rows);
    };
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data === "string") return this.#control(e.data);
      const bytes = new Uint8Array(e.data);
      if (this.#replayNext) {
        // Re-attached: the replay is the shell's recent output, so it replaces the screen.
        this.#replayNext = false;
        this.screen.reset();
      }
      this.screen.write(bytes);
    };
    ws.onclose = (e) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      if (this.#disposed) return;
      const known = final[e.code];
      if (known) {
        this.onState({ kind: "ended", ...known });
        if (e.code === 1000) this.#reconnectId = this.#newShellId();
        return;
      }
      this.#retry("The connection dropped.");
    };
  }

  #control(text: string) {
    try {
      const msg = JSON.parse(text) as { type?: string; state?: string; replay_bytes?: number };
      if (msg.type === "session") {
        this.#replayNext = msg.state === "resumed" && (msg.replay_bytes ?? 0) > 0;
        // The old shell is gone (it outlived its grace period, or the proxy restarted).
        if (msg.state === "new" && this.#connectedBefore) {
          this.screen.write("\r\n\x1b[2m[connection restored: this is a new shell]\x1b[0m\r\n");
        }
        this.#connectedBefore = true;
      }
    } catch {
      // unknown control messages are ignored, as the protocol asks
    }
  }

  #newShellId(): string {
    const id = crypto.randomUUID().replace(/-/g, "");
    this.onReconnectId(id);
    return id;
  }

  #retry(why: string, atLeastSeconds = 0) {
    const seconds = Math.max(
      atLeastSeconds,
      BACKOFF_SECONDS[Math.min(this.#attempt, BACKOFF_SECONDS.length - 1)],
    );
    this.#attempt++;
    this.onState({ kind: "waiting", retryInSeconds: seconds, why });
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.connect(), seconds * 1000);
  }
}
