import { useEffect, useRef, useState } from "preact/hooks";
import type { ConnectionState, TerminalConnection } from "./browser/terminal-connection.ts";

export interface TerminalProps {
  projectId: string;
  /** The CSP nonce xterm's own <style> elements need (the page allows no other inline style). */
  styleNonce: string;
}

type State = { kind: "closed" } | { kind: "loading" } | ConnectionState;

/**
 * The web terminal: xterm.js over a TerminalConnection, fitted to its box and resized with
 * the window. It opens on request: a shell counts as activity (it keeps the project from
 * auto-stopping) and xterm is most of a page's JavaScript, so a visit that only looks at
 * the project costs neither. Once opened, it reopens by itself on reloads in this tab,
 * re-attaching to the same shell while the proxy keeps it (TERMINAL_RECONNECT_GRACE_SECONDS).
 */
export default function Terminal(props: TerminalProps) {
  const storageKey = `pomodex.terminal.${props.projectId}`;
  const box = useRef<HTMLDivElement>(null);
  const after = useRef<HTMLParagraphElement>(null);
  const connection = useRef<TerminalConnection | null>(null);
  const [hydrated, setHydrated] = useState(false);
  const [open, setOpen] = useState(false);
  const [state, setState] = useState<State>({ kind: "closed" });

  useEffect(() => {
    setHydrated(true);
    if (sessionStorage.getItem(storageKey)) setOpen(true);
  }, []);

  useEffect(() => {
    if (!open) return;
    let disposed = false;
    const cleanups: (() => void)[] = [];
    setState({ kind: "loading" });
    (async () => {
      const [{ Terminal: XTerm }, { FitAddon }, { TerminalConnection }] = await Promise.all([
        import("@xterm/xterm"),
        import("@xterm/addon-fit"),
        import("./browser/terminal-connection.ts"),
      ]);
      if (disposed || !box.current) return;
      const term = new XTerm({
        cursorBlink: true,
        fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
        fontSize: 14,
        scrollback: 5000,
      });
      const fit = new FitAddon();
      term.loadAddon(fit);
      withStyleNonce(props.styleNonce, () => term.open(box.current!));
      fit.fit();

      const conn = new TerminalConnection(
        props.projectId,
        term,
        (s) => !disposed && setState(s),
        sessionStorage.getItem(storageKey),
        (id) => sessionStorage.setItem(storageKey, id),
      );
      connection.current = conn;
      const input = term.onData((data) => conn.send(data));
      const binary = term.onBinary((data) =>
        conn.send(Uint8Array.from(data, (ch) => ch.charCodeAt(0)))
      );
      const resized = term.onResize(({ cols, rows }) => conn.resize(cols, rows));
      // Tab belongs to the shell; Shift+Escape is the keyboard's way out of the terminal.
      term.attachCustomKeyEventHandler((e) => {
        if (e.type === "keydown" && e.key === "Escape" && e.shiftKey) {
          after.current?.focus();
          return false;
        }
        return true;
      });

      let frame = 0;
      const observer = new ResizeObserver(() => {
        cancelAnimationFrame(frame);
        frame = requestAnimationFrame(() => fit.fit());
      });
      observer.observe(box.current);
      const online = () => conn.connect();
      addEventListener("online", online);
      conn.connect();
      term.focus();

      cleanups.push(() => {
        removeEventListener("online", online);
        observer.disconnect();
        input.dispose();
        binary.dispose();
        resized.dispose();
        conn.dispose();
        term.dispose();
      });
    })().catch(() => {
      if (!disposed) {
        setState({ kind: "ended", why: "The terminal could not load.", canReconnect: false });
      }
    });
    return () => {
      disposed = true;
      cleanups.forEach((f) => f());
    };
  }, [open]);

  const close = () => {
    sessionStorage.removeItem(storageKey);
    connection.current = null;
    setOpen(false);
    setState({ kind: "closed" });
  };

  if (!hydrated) return <div class="terminal terminal-idle" />;
  if (!open) {
    return (
      <div class="terminal terminal-idle">
        <p>
          A shell in the project, in your browser. It counts as activity while it is open.
        </p>
        <button type="button" class="button button-primary" onClick={() => setOpen(true)}>
          Open terminal
        </button>
      </div>
    );
  }
  return (
    <div class="terminal">
      <div class="terminal-bar">
        <span
          class={`terminal-state terminal-${state.kind}`}
          id="terminal-state"
          data-state={state.kind}
          role="status"
          aria-live="polite"
        >
          {describe(state)}
        </span>
        <span class="button-row">
          {(state.kind === "waiting" || (state.kind === "ended" && state.canReconnect)) && (
            <button
              type="button"
              class="button button-small"
              onClick={() =>
                state.kind === "ended"
                  ? connection.current?.reconnectFresh()
                  : connection.current?.connect()}
            >
              Reconnect now
            </button>
          )}
          <button type="button" class="button button-small" onClick={close}>
            Close terminal
          </button>
        </span>
      </div>
      <div class="terminal-screen" ref={box} />
      <p class="hint" ref={after} tabIndex={-1}>
        In the terminal, Tab goes to the shell. Press Shift+Escape to move focus out of it.
      </p>
    </div>
  );
}

function describe(state: State): string {
  switch (state.kind) {
    case "closed":
      return "Closed";
    case "loading":
      return "Loading the terminal…";
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected";
    case "waiting":
      return `${state.why} Reconnecting in ${state.retryInSeconds} s…`;
    case "ended":
      return state.why;
  }
}

/**
 * xterm adds <style> elements when it opens. The page's CSP allows inline styles only with
 * the response's nonce, so the elements created during open() get it.
 */
function withStyleNonce(nonce: string, open: () => void) {
  const create = document.createElement;
  document.createElement = function (
    this: Document,
    tag: string,
    options?: ElementCreationOptions,
  ) {
    const el = create.call(this, tag, options);
    if (tag.toLowerCase() === "style") (el as HTMLStyleElement).nonce = nonce;
    return el;
  } as typeof document.createElement;
  try {
    open();
  } finally {
    document.createElement = create;
  }
}
