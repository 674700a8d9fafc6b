import { createExec, envArray, newMarker, signalMarked, waitForExec } from "./exec.ts";
import { isNotFound } from "./errors.ts";
import { hijack } from "./hijack.ts";
import { seg, type Transport } from "./transport.ts";
import type { TtyOptions, TtySession } from "./types.ts";

export async function resizeExec(t: Transport, execId: string, cols: number, rows: number) {
  await t.expect("exec resize", "POST", `/exec/${seg(execId)}/resize`, {
    query: { h: Math.max(1, Math.round(rows)), w: Math.max(1, Math.round(cols)) },
  });
}

const HANGUP_GRACE_MS = 2_000;

/**
 * An interactive process on a pseudo-terminal, for the web terminal. Neither Docker nor
 * Podman ends an exec when its attach connection goes away, so close() hangs up the way
 * a terminal would: SIGHUP to every process of the session (found by its marker), and
 * SIGKILL if the session's first process survives that. Processes that ignore SIGHUP on
 * purpose (nohup) outlive a hang-up, as they would over SSH, unless that escalation runs.
 */
export async function execTty(
  t: Transport,
  containerId: string,
  cmd: string[],
  opts: TtyOptions,
): Promise<TtySession> {
  const marker = newMarker();
  const execId = await createExec(t, containerId, {
    Cmd: cmd,
    Env: [...envArray(opts.env), marker],
    User: opts.user,
    WorkingDir: opts.workingDir,
    Tty: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
  });
  const h = await hijack(t, "exec tty", t.pathFor(`/exec/${seg(execId)}/start`), {
    Detach: false,
    Tty: true,
  }, t.timeoutMs);

  // API 1.41 has no initial console size on exec create; size it as soon as it runs.
  // The engine may not list the session as running for a moment, so retry briefly.
  for (let i = 0;; i++) {
    try {
      await resizeExec(t, execId, opts.cols, opts.rows);
      break;
    } catch (err) {
      if (isNotFound(err) || i >= 10) break; // a wrong size beats no terminal
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  let markEnded!: () => void;
  const ended = new Promise<void>((resolve) => (markEnded = resolve));
  const reader = h.readable.getReader();
  const readable = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) {
        markEnded();
        controller.close();
      } else {
        controller.enqueue(value);
      }
    },
    cancel: async () => {
      markEnded();
      await reader.cancel().catch(() => {});
    },
  });

  const exited = ended
    .then(() => waitForExec(t, execId, 2 * HANGUP_GRACE_MS + 10_000))
    .then((r) => r.exitCode)
    .catch(() => null);

  // Scan as the session's user as well as root: see signalMarked.
  const users = [opts.user && opts.user !== "root" ? opts.user : "0", "0"];
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      h.close();
      markEnded();
      let state = await waitForExec(t, execId, 100).catch(() => null);
      if (!state?.running) return;
      await signalMarked(t, containerId, marker, "HUP", users).catch(() => 0);
      state = await waitForExec(t, execId, HANGUP_GRACE_MS).catch(() => null);
      if (!state?.running) return;
      await signalMarked(t, containerId, marker, "KILL", users).catch(() => 0);
      await waitForExec(t, execId, HANGUP_GRACE_MS).catch(() => null);
    })();
    return closing;
  };

  return {
    execId,
    readable,
    write: (bytes) => h.write(bytes),
    resize: (cols, rows) => resizeExec(t, execId, cols, rows),
    close,
    exited,
  };
}
