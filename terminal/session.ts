import type { DockerClient } from "@/infra/docker/mod.ts";
import type { TtySession } from "@/infra/docker/types.ts";
import { hangUp, SESSION_VAR } from "./hangup.ts";
import { Close } from "./protocol.ts";
import { RingBuffer } from "./ring.ts";

/** Where a shell's output goes: one WebSocket at a time. */
export interface Viewer {
  send(bytes: Uint8Array): void;
  /** Bytes handed to the socket but not yet sent. */
  bufferedAmount(): number;
  /** The shell is done with this viewer (it ended, or another viewer took over). */
  end(code: number, reason: string): void;
}

/** A login shell, as the user a person gets over SSH, in the workspace. */
export const SHELL_COMMAND = ["/bin/bash", "-l"];
export const SHELL_USER = "agent";
export const SHELL_ENV = { TERM: "xterm-256color", LANG: "C.UTF-8", COLORTERM: "truecolor" };
export const SHELL_DIR = "/home/agent";

/**
 * Output is read from the engine only while the socket has less than this queued: a slow
 * client slows the shell down (as a slow terminal would) instead of filling our memory.
 */
const SOCKET_HIGH_WATER = 256 * 1024;
/**
 * Input cannot be paused (a WebSocket in Deno has no receive backpressure), so keystrokes
 * the shell has not taken yet are bounded instead; past this the connection is closed.
 */
const MAX_PENDING_INPUT = 4 * 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ShellOptions {
  containerId: string;
  cols: number;
  rows: number;
  replayBytes: number;
  /**
   * Called once, synchronously, when the shell starts ending: from then on it neither takes
   * input nor counts against the limits (the hang-up that follows is bounded).
   */
  onClosing?: () => void;
  /** Called once, when the shell has ended and its processes are gone. */
  onClosed?: () => void;
}

/**
 * One shell in one project and the socket watching it. The shell can outlive its socket
 * for a grace period (reconnect): its output keeps being read into the replay buffer, so
 * it never blocks on a full terminal, and a socket that re-attaches gets that buffer.
 */
export class ShellSession {
  readonly #tty: TtySession;
  readonly #engine: Pick<DockerClient, "signalMarked">;
  readonly #containerId: string;
  readonly #marker: string;
  readonly #ring: RingBuffer;
  readonly #onClosing?: () => void;
  readonly #onClosed?: () => void;
  #viewer: Viewer | null = null;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #pendingInput = 0;
  #writing: Promise<void> = Promise.resolve();
  #resizing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | null = null;
  #pumping: Promise<void> | null = null;

  private constructor(
    tty: TtySession,
    engine: Pick<DockerClient, "signalMarked">,
    marker: string,
    opts: ShellOptions,
  ) {
    this.#tty = tty;
    this.#engine = engine;
    this.#containerId = opts.containerId;
    this.#marker = marker;
    this.#ring = new RingBuffer(opts.replayBytes);
    this.#onClosing = opts.onClosing;
    this.#onClosed = opts.onClosed;
  }

  static async open(
    engine: Pick<DockerClient, "execTty" | "signalMarked">,
    opts: ShellOptions,
  ): Promise<ShellSession> {
    const id = crypto.randomUUID();
    const tty = await engine.execTty(opts.containerId, SHELL_COMMAND, {
      user: SHELL_USER,
      env: { ...SHELL_ENV, [SESSION_VAR]: id },
      workingDir: SHELL_DIR,
      cols: opts.cols,
      rows: opts.rows,
    });
    return new ShellSession(tty, engine, `${SESSION_VAR}=${id}`, opts);
  }

  get execId(): string {
    return this.#tty.execId;
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Makes `viewer` the one socket of this shell and returns the recent output for it to
   * replay. A previous viewer is told it was replaced; a pending grace timer is cancelled.
   */
  attach(viewer: Viewer): Uint8Array {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const previous = this.#viewer;
    this.#viewer = viewer;
    if (previous && previous !== viewer) {
      previous.end(Close.replaced, "another connection took over this terminal");
    }
    const replay = this.#ring.snapshot();
    // Output is read from the first attach on, so the first viewer misses nothing.
    this.#pumping ??= this.#pump();
    return replay;
  }

  /** The viewer's socket went away: end the shell, or keep it `graceMs` for a re-attach. */
  detach(viewer: Viewer, graceMs: number): void {
    if (this.#viewer !== viewer) return;
    this.#viewer = null;
    if (graceMs <= 0) {
      void this.close(Close.normal, "connection closed");
      return;
    }
    this.#graceTimer = setTimeout(
      () => void this.close(Close.normal, "nobody re-attached"),
      graceMs,
    );
  }

  /** Queues keystrokes in order. False when too much is already waiting (see above). */
  write(bytes: Uint8Array): boolean {
    if (this.closed) return true;
    if (this.#pendingInput + bytes.length > MAX_PENDING_INPUT) return false;
    this.#pendingInput += bytes.length;
    this.#writing = this.#writing
      .then(() => this.#tty.write(bytes))
      .catch(() => {}) // the shell ended: its pump closes the session
      .finally(() => (this.#pendingInput -= bytes.length));
    return true;
  }

  /** Resizes in order, so the last size asked for is the one that stays. */
  resize(cols: number, rows: number): void {
    if (this.closed) return;
    this.#resizing = this.#resizing
      .then(() => this.#tty.resize(cols, rows))
      .catch(() => {}); // a resize racing the shell's exit is harmless
  }

  /**
   * Ends the shell and tells the viewer why. Resolves once every process started from it
   * is gone: hang-up first (SIGHUP, then SIGKILL for survivors, see hangup.ts), then the
   * engine connection. Idempotent.
   */
  close(code: number = Close.normal, reason = "closed"): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#graceTimer);
      const viewer = this.#viewer;
      this.#viewer = null;
      viewer?.end(code, reason);
      this.#onClosing?.();
      try {
        await hangUp(this.#engine, this.#containerId, this.#marker, SHELL_USER);
        await this.#tty.close();
      } finally {
        this.#onClosed?.();
      }
    })();
    return this.#closing;
  }

  async #pump(): Promise<void> {
    const reader = this.#tty.readable.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        this.#ring.push(value);
        const viewer = this.#viewer;
        if (!viewer) continue;
        viewer.send(value);
        while (this.#viewer === viewer && viewer.bufferedAmount() > SOCKET_HIGH_WATER) {
          await sleep(5);
        }
      }
    } catch {
      // The connection to the engine broke: the shell is as good as gone.
    } finally {
      reader.releaseLock();
    }
    await this.close(Close.normal, "shell exited");
  }
}

/** A shell handed to a connection: new, or resumed by its reconnect id. */
export interface ShellClaim {
  shell: Promise<ShellSession>;
  state: "new" | "resumed";
  /** For a fresh shell whose socket never opened: give back its slot. */
  abandon(): void;
}
