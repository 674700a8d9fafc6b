import { DockerError } from "./errors.ts";
import { hijack } from "./hijack.ts";
import { concatBytes } from "@/core/bytes.ts";
import { FrameDemuxer } from "./streams.ts";
import { seg, type Transport } from "./transport.ts";
import type { ExecInfo, ExecOptions, ExecResult } from "./types.ts";

export function envArray(env: Record<string, string> | undefined): string[] {
  return Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
}

/**
 * Every exec we start carries this variable with a fresh value. Its descendants inherit
 * it, which lets us find (and signal) the whole process tree from inside the container:
 * the engine only tells us the exec's host PID, which means nothing in the container.
 */
export const MARKER_VAR = "POMODEX_EXEC";

export function newMarker(): string {
  return `${MARKER_VAR}=${crypto.randomUUID()}`;
}

// Scans /proc for processes whose environment holds the marker line and signals them;
// prints how many it signalled. Needs only sh, tr, grep and kill (coreutils or busybox).
// Root in an unprivileged container (no CAP_SYS_PTRACE) cannot read another user's
// /proc/PID/environ, so the scan runs as each user whose processes it must find.
const SIGNAL_SCRIPT = `m="$1"; s="$2"; n=0
for d in /proc/[0-9]*; do
  p="\${d#/proc/}"
  [ "$p" = "$$" ] && continue
  if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF -- "$m"; then
    kill -"$s" "$p" 2>/dev/null && n=$((n+1))
  fi
done
echo "$n"`;

export interface ExecCreate {
  Cmd: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Tty: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
}

export async function createExec(t: Transport, containerId: string, body: ExecCreate) {
  const r = await t.json<{ Id: string }>(
    "exec create",
    "POST",
    `/containers/${seg(containerId)}/exec`,
    { json: body },
  );
  return r.Id;
}

export function inspectExec(t: Transport, execId: string): Promise<ExecInfo | null> {
  return t.jsonOrNull<ExecInfo>("exec inspect", "GET", `/exec/${seg(execId)}/json`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The attach stream can end a moment before the engine records the exit code, so poll.
 * Returns the exit code, or null if the exec is gone or still runs at the deadline.
 */
export async function waitForExec(
  t: Transport,
  execId: string,
  withinMs: number,
): Promise<{ running: boolean; exitCode: number | null }> {
  const until = Date.now() + withinMs;
  let wait = 20;
  while (true) {
    const info = await inspectExec(t, execId);
    if (!info) return { running: false, exitCode: null };
    if (!info.Running) return { running: false, exitCode: info.ExitCode ?? null };
    if (Date.now() >= until) return { running: true, exitCode: null };
    await sleep(wait);
    wait = Math.min(wait * 2, 200);
  }
}

/**
 * Sends `signal` ("HUP", "KILL", "0") to every process carrying `marker`, scanning as each
 * of `users` (the session's user, and root for what it started with sudo); returns the count.
 */
export async function signalMarked(
  t: Transport,
  containerId: string,
  marker: string,
  signal: string,
  users: string[] = ["0"],
): Promise<number> {
  const counts = await Promise.all([...new Set(users)].map(async (user) => {
    const r = await runExec(
      t,
      containerId,
      ["sh", "-c", SIGNAL_SCRIPT, "pomodex-signal", marker, signal],
      { user, timeoutMs: 10_000 },
      null,
    );
    return Number(new TextDecoder().decode(r.stdout).trim()) || 0;
  }));
  return counts.reduce((a, b) => a + b, 0);
}

export function exec(
  t: Transport,
  containerId: string,
  cmd: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  return runExec(t, containerId, cmd, opts, newMarker());
}

async function runExec(
  t: Transport,
  containerId: string,
  cmd: string[],
  opts: ExecOptions,
  marker: string | null,
): Promise<ExecResult> {
  const op = "exec";
  const timeoutMs = opts.timeoutMs ?? t.timeoutMs;
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const env = envArray(opts.env);
  if (marker) env.push(marker);
  const id = await createExec(t, containerId, {
    Cmd: cmd,
    Env: env,
    User: opts.user,
    WorkingDir: opts.workingDir,
    Tty: false,
    AttachStdin: opts.stdin !== undefined,
    AttachStdout: true,
    AttachStderr: true,
  });
  const h = await hijack(t, op, t.pathFor(`/exec/${seg(id)}/start`), {
    Detach: false,
    Tty: false,
  }, left());

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    h.close();
  }, left());
  const demux = new FrameDemuxer();
  try {
    // Written concurrently with reading: a process that echoes a large stdin would
    // otherwise fill its output pipe and never read the rest.
    const writing = opts.stdin === undefined
      ? Promise.resolve()
      : h.write(opts.stdin).catch(() => {}).finally(() => h.closeWrite());
    for await (const chunk of h.readable) demux.push(chunk);
    await writing;
  } finally {
    clearTimeout(timer);
    h.close();
  }
  if (timedOut) {
    let note = "";
    if (marker) {
      const n = await signalMarked(t, containerId, marker, "KILL").catch(() => -1);
      note = n >= 0 ? `; killed ${n} process(es)` : "; could not kill it";
    }
    throw new DockerError(
      0,
      op,
      `timed out after ${timeoutMs} ms running ${JSON.stringify(cmd)}${note}`,
    );
  }
  const end = await waitForExec(t, id, Math.max(left(), 2_000));
  if (end.exitCode === null) {
    throw new DockerError(0, op, `no exit code for ${JSON.stringify(cmd)} (exec ${id})`);
  }
  return {
    exitCode: end.exitCode,
    stdout: concatBytes(...demux.stdout),
    stderr: concatBytes(...demux.stderr),
  };
}
